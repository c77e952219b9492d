import * as tf from '@tensorflow/tfjs-core';
import { checkGpuErrors } from '../core/backend/webgpu/device.js';
import { toChunkedTensors, toTensors } from '../core/data/dataset.js';
import { assertInteger } from '../core/errors.js';
import { trainStep } from '../core/training/fit.js';
import {
  Autoencoder,
  type AutoencoderConfig,
  type FitOptions,
  type FitProgress,
  fit,
  GradientRoutingError,
  type ImageDataset,
  type LabelPartition,
  type LabelRoute,
  type LossPoint,
  type ProbeOptions,
  perLabelErrors,
  probeLatentSlices,
  type Region,
  type SliceReport,
  type SplitLossWeights,
  type SplitObjectiveOptions,
  splitObjective,
  splitRatio,
  type TorchAdamConfig,
  torchAdam,
} from '../index.js';

/** The named configurations of the split experiment. */
export type SplitPresetName = 'smoke' | 'quick' | 'paper';

/**
 * Everything that defines one run of the split experiment (the paper's Section 4.1), grouped by
 * the primitive each part configures.
 */
export interface SplitExperimentConfig {
  /** The autoencoder (its input size comes from the data, its certificates from the weights). */
  model: Required<Pick<AutoencoderConfig, 'hidden' | 'latentDim' | 'seed'>>;
  /** The split objective: routing on or off (the control) and the loss weights. */
  objective: Required<Pick<SplitObjectiveOptions, 'routed'>> & {
    weights: Required<SplitLossWeights>;
  };
  /** Adam with PyTorch-style weight decay (added to the gradient). */
  optimizer: Required<Pick<TorchAdamConfig, 'learningRate' | 'weightDecay'>>;
  /** The training loop; its seed drives the shuffles. */
  fit: Required<Pick<FitOptions, 'epochs' | 'batchSize' | 'seed'>>;
  /** Post-hoc probes on the frozen encoder; `epochs: 0` skips them. */
  probe: Required<Pick<ProbeOptions, 'epochs' | 'batchSize' | 'learningRate'>>;
  /**
   * Groups of labels; group `g` is routed to the `g`-th equal block of the latent, and gets a
   * certificate decoder on that block. The paper's is `[[0..4], [5..9]]`.
   */
  partition: number[][];
  /** Use only the first this many training / test examples (all when absent). */
  trainLimit?: number;
  testLimit?: number;
}

/** The paper's configuration exactly (Section 4.1 and its code). */
const paper: SplitExperimentConfig = {
  model: { hidden: [2048, 512], latentDim: 32, seed: 0 },
  objective: { routed: true, weights: { l1: 3e-3, correlation: 0.1, certificates: 1 } },
  optimizer: { learningRate: 1e-3, weightDecay: 5e-5 },
  fit: { epochs: 200, batchSize: 2048, seed: 0 },
  probe: { epochs: 20, batchSize: 2048, learningRate: 1e-3 },
  partition: [
    [0, 1, 2, 3, 4],
    [5, 6, 7, 8, 9],
  ],
};

/**
 * The presets of the MNIST split experiment. `paper` is the paper's configuration exactly;
 * `smoke` runs in seconds on a subset and only checks the pipeline (its numbers mean nothing).
 * `quick` is sized for about five minutes on a 2-core CPU with the wasm backend: a smaller network
 * ([512, 128]), a smaller batch and a higher learning rate (more, cheaper steps), and no concurrent
 * certificates (they read the stopped latent, so dropping them changes nothing else in training);
 * two epochs of post-hoc probes measure the split instead. Both differ from `paper` only where
 * they say.
 */
export const splitPresets: Readonly<Record<SplitPresetName, Readonly<SplitExperimentConfig>>> = {
  paper,
  quick: {
    ...paper,
    model: { ...paper.model, hidden: [512, 128] },
    objective: { ...paper.objective, weights: { ...paper.objective.weights, certificates: 0 } },
    optimizer: { ...paper.optimizer, learningRate: 2e-3 },
    fit: { ...paper.fit, epochs: 9, batchSize: 128 },
    probe: { epochs: 2, batchSize: 128, learningRate: 2e-3 },
  },
  smoke: {
    ...paper,
    model: { ...paper.model, hidden: [64, 32] },
    fit: { ...paper.fit, epochs: 1, batchSize: 128 },
    probe: { epochs: 1, batchSize: 128, learningRate: 1e-3 },
    trainLimit: 2048,
    testLimit: 1000,
  },
};

/** The latent block of each group: group `g` of `G` gets `[g·D/G, (g+1)·D/G)`. */
export function partitionRegions(partition: LabelPartition, latentDim: number): Region[] {
  const groups = partition.length;
  if (groups < 1 || latentDim % groups !== 0) {
    throw new GradientRoutingError(
      `gradient-routing: a latent of ${latentDim} dims cannot be split into ${groups} equal blocks; choose a latent size divisible by the number of label groups.`,
    );
  }
  const width = latentDim / groups;
  return partition.map((_, g) => [g * width, (g + 1) * width] as const);
}

/** Everything a split experiment run measured. */
export interface SplitExperimentResult {
  config: SplitExperimentConfig;
  /** Per-label test MAE of the decoder on the whole latent. */
  decoderPerLabel: number[];
  /** Mean over labels of {@link SplitExperimentResult.decoderPerLabel}. */
  decoderMae: number;
  /** The concurrent certificate decoders, one per label group (none when their weight is 0). */
  certificates: SliceReport[];
  /** Post-hoc probes on the frozen encoder (empty when `probe.epochs` is 0). */
  probes: SliceReport[];
  losses: LossPoint[];
  steps: number;
  trainSeconds: number;
  /** The trained model; the caller disposes it. */
  model: Autoencoder;
}

/** The phases of {@link runSplitExperiment}, in order. */
export type SplitPhase = 'train' | 'evaluate' | 'probe';

/** Progress of the phases after training, which would otherwise run silently for minutes. */
export interface SplitPhaseProgress {
  readonly phase: 'evaluate' | 'probe';
  /**
   * Work done and total: test examples scored (`evaluate`), or probe training batches over all
   * latent slices (`probe`; slice after slice, each for `config.probe.epochs` epochs).
   */
  readonly done: number;
  readonly total: number;
  /** `probe`: the slice being probed, an index into the partition's regions. */
  readonly slice?: number;
  /** `probe`: the mean training MAE of the last finished probe epoch (none before the first). */
  readonly loss?: number;
}

/** Callbacks of {@link runSplitExperiment}. */
export interface SplitExperimentCallbacks {
  /** Called after every training step (see {@link FitProgress}). */
  onTrainProgress?: (progress: FitProgress) => void;
  /** Called when a phase starts: training, evaluation on the test set, post-hoc probes. */
  onPhase?: (phase: SplitPhase) => void;
  /** Called after every evaluation batch and every probe training batch. */
  onPhaseProgress?: (progress: SplitPhaseProgress) => void;
}

/**
 * Runs the split experiment: trains an `Autoencoder` with each label group routed to
 * its own latent block, then measures, per label, how well the decoder and each block's
 * certificate reconstruct the test images, and each block's split ratio.
 *
 * Works for any image dataset of the MNIST layout and any label partition.
 */
export async function runSplitExperiment(
  data: { train: ImageDataset; test: ImageDataset },
  config: SplitExperimentConfig,
  callbacks: SplitExperimentCallbacks = {},
): Promise<SplitExperimentResult> {
  const { regions, numClasses } = splitShape(config);
  if (config.objective.weights.certificates === 0 && config.probe.epochs === 0) {
    throw new GradientRoutingError(
      'with no certificate decoders (objective.weights.certificates 0) and no probes (probe.epochs 0) nothing would measure the split; enable one of them.',
    );
  }
  const train = limitDataset(data.train, config.trainLimit);
  const test = limitDataset(data.test, config.testLimit);
  const { objective, model, optimizer } = buildSplitTraining(config, train.rows * train.cols);
  // Every label is checked once, before any training: a label in no group would silently stop
  // its examples from training the encoder.
  try {
    await checkSplitLabels(objective.rule, train.labels, 'training');
    await checkSplitLabels(objective.rule, test.labels, 'test');
  } catch (error) {
    objective.dispose();
    model.dispose();
    optimizer.dispose();
    throw error;
  }
  // In chunks below the device's binding limit: MNIST's training set (188 MB) is above the
  // 128 MiB that llvmpipe and many integrated GPUs bind.
  const { x: trainX, y: trainY } = toChunkedTensors(train);
  const { x: testX, y: testY } = toChunkedTensors(test);
  try {
    callbacks.onPhase?.('train');
    const started = performance.now();
    const trained = await fit(
      (batch) => objective.loss(model, batch.x as tf.Tensor2D, batch.labels as tf.Tensor1D).total,
      model.trainableVariables,
      optimizer,
      { x: trainX, labels: trainY },
      {
        ...config.fit,
        ...(callbacks.onTrainProgress === undefined
          ? {}
          : { onProgress: callbacks.onTrainProgress }),
      },
    );
    const trainSeconds = (performance.now() - started) / 1000;
    callbacks.onPhase?.('evaluate');
    const { onPhaseProgress } = callbacks;
    const errors = await perLabelErrors(model, testX, test.labels, {
      numClasses,
      ...(onPhaseProgress && {
        onProgress: (done, total) => onPhaseProgress({ phase: 'evaluate', done, total }),
      }),
    });
    const certificates = errors.certificates.map((perLabelMae, g) => ({
      region: regions[g]!,
      ownGroup: g,
      perLabelMae,
      ...splitRatio(perLabelMae, config.partition, g),
    }));
    let probes: SliceReport[] = [];
    if (config.probe.epochs > 0) {
      callbacks.onPhase?.('probe');
      let probeLoss: { slice: number; loss: number } | undefined;
      const probe = await probeLatentSlices({
        ...config.probe,
        encode: (x) => model.encode(x),
        trainX,
        testX,
        testLabels: test.labels,
        slices: regions,
        partition: config.partition,
        numLabels: numClasses,
        hidden: [...config.model.hidden].reverse(),
        seed: config.fit.seed,
        ...(onPhaseProgress && {
          // The loss of the slice's last finished epoch rides along with the step counts.
          onProgress: ({ slice, loss }) => {
            probeLoss = { slice, loss };
          },
          onStep: ({ slice, epoch, epochs, step, stepsPerEpoch }) =>
            onPhaseProgress({
              phase: 'probe',
              done: (slice * epochs + epoch - 1) * stepsPerEpoch + step,
              total: regions.length * epochs * stepsPerEpoch,
              slice,
              ...(probeLoss?.slice === slice && { loss: probeLoss.loss }),
            }),
        }),
      });
      probes = probe.slices;
    }
    const decoderMae = mean(errors.decoder);
    return {
      config,
      decoderPerLabel: errors.decoder,
      decoderMae,
      certificates,
      probes,
      losses: trained.losses,
      steps: trained.steps,
      trainSeconds,
      model,
    };
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    optimizer.dispose();
    objective.dispose();
    tf.dispose([trainY, testY]);
    trainX.dispose();
    testX.dispose();
  }
}

/** The latent block of each label group, and the number of classes the partition covers. */
function splitShape(config: SplitExperimentConfig): { regions: Region[]; numClasses: number } {
  return {
    regions: partitionRegions(config.partition, config.model.latentDim),
    numClasses: Math.max(...config.partition.flat()) + 1,
  };
}

/** The objective, model and optimiser of one run of `config`; the caller disposes all three. */
function buildSplitTraining(config: SplitExperimentConfig, inputDim: number) {
  const { regions, numClasses } = splitShape(config);
  const routes: LabelRoute[] = config.partition.map((labels, g) => ({
    labels,
    region: regions[g]!,
  }));
  const { weights, routed } = config.objective;
  const objective = splitObjective({ routes, numClasses, routed, weights }, config.model.latentDim);
  const model = new Autoencoder({
    ...config.model,
    inputDim,
    // Certificates read the stopped latent, so leaving them out changes nothing else in training.
    certificates: weights.certificates === 0 ? [] : regions.map((region) => [region]),
  });
  return { objective, model, optimizer: torchAdam(config.optimizer) };
}

/** What {@link timeSplitSteps} measured. */
export interface StepTiming {
  /** Steps timed (after the warm-up ones). */
  steps: number;
  /** Wall seconds they took together, up to the last one's loss being read back. */
  seconds: number;
}

/** Options of {@link timeSplitSteps}. */
export interface TimeSplitStepsOptions {
  /** Untimed steps first, which compile the backend's kernels. Default 2. */
  warmupSteps?: number;
  /** Timed steps. Default 5. */
  steps?: number;
}

/**
 * Times training steps of `config`'s model, objective and optimiser on the active backend, on the
 * first batch of `train` (uploaded once; the batch's data does not change a step's time). The
 * loss is read back only after the last step, as training reads it only every few steps.
 */
export async function timeSplitSteps(
  config: SplitExperimentConfig,
  train: ImageDataset,
  options: TimeSplitStepsOptions = {},
): Promise<StepTiming> {
  const warmupSteps = assertInteger(options.warmupSteps ?? 2, 'warmupSteps', 0);
  const steps = assertInteger(options.steps ?? 5, 'steps');
  const batch = limitDataset(train, Math.min(train.count, config.fit.batchSize));
  const { objective, model, optimizer } = buildSplitTraining(config, train.rows * train.cols);
  const { x, y } = toTensors(batch);
  const step = () =>
    trainStep(optimizer, () => objective.loss(model, x, y).total, model.trainableVariables);
  try {
    for (let i = 0; i < warmupSteps; i++) {
      const loss = step();
      await loss.data();
      loss.dispose();
    }
    const started = performance.now();
    let last: tf.Scalar | undefined;
    for (let i = 0; i < steps; i++) {
      last?.dispose();
      last = step();
    }
    await last!.data();
    last!.dispose();
    const seconds = (performance.now() - started) / 1000;
    checkGpuErrors();
    return { steps, seconds };
  } finally {
    tf.dispose([x, y]);
    model.dispose();
    optimizer.dispose();
    objective.dispose();
  }
}

/** Checks one split's labels, naming the split in the error. */
async function checkSplitLabels(
  rule: { checkLabels(labels: ArrayLike<number>): Promise<void> },
  labels: Int32Array,
  split: string,
): Promise<void> {
  try {
    await rule.checkLabels(labels);
  } catch (error) {
    if (!(error instanceof GradientRoutingError)) throw error;
    throw new GradientRoutingError(
      `in the ${split} set, ${error.message.replace('gradient-routing: ', '')} ` +
        'Every label must be in one group of the partition.',
      error.code,
      error.value,
      { cause: error },
    );
  }
}

function limitDataset(dataset: ImageDataset, limit: number | undefined): ImageDataset {
  if (limit === undefined || limit >= dataset.count) return dataset;
  const pixels = dataset.rows * dataset.cols;
  return {
    ...dataset,
    count: limit,
    images: dataset.images.subarray(0, limit * pixels),
    labels: dataset.labels.subarray(0, limit),
  };
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}
