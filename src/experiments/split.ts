import * as tf from '@tensorflow/tfjs-core';
import { type ImageDataset, toTensors } from '../core/data/dataset.js';
import { GradientRoutingError } from '../core/errors.js';
import type { LabelRoute } from '../core/masks/labels.js';
import type { Region } from '../core/masks/regions.js';
import { RoutedAutoencoder, type RoutedLossWeights } from '../core/models/autoencoder.js';
import { torchAdam } from '../core/optim/adam.js';
import { probeLatentSlices, type SliceProbe } from '../core/probing/probe.js';
import { type LabelPartition, type SplitRatio, splitRatio } from '../core/probing/split.js';
import { type FitProgress, fitRoutedAutoencoder, type LossPoint } from '../core/training/fit.js';

/** The named configurations of the split experiment. */
export type SplitPresetName = 'smoke' | 'quick' | 'paper';

/** Everything that defines one run of the split experiment (the paper's Section 4.1). */
export interface SplitExperimentConfig {
  /** Encoder hidden sizes; the decoders mirror them. */
  hidden: number[];
  latentDim: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** PyTorch-style weight decay, added to the gradient. */
  weightDecay: number;
  seed: number;
  /** False gives the control run: the same losses without routing. */
  routed: boolean;
  /** Loss weights (L1, correlation, certificates). */
  weights: Required<RoutedLossWeights>;
  /**
   * Groups of labels; group `g` is routed to the `g`-th equal block of the latent, and gets a
   * certificate decoder on that block. The paper's is `[[0..4], [5..9]]`.
   */
  partition: number[][];
  /** Use only the first this many training / test examples (all when absent). */
  trainLimit?: number;
  testLimit?: number;
  /** Epochs of the post-hoc probes on the frozen encoder; 0 skips them. */
  probeEpochs: number;
}

/** The paper's configuration exactly (Section 4.1 and its code). */
const paper: SplitExperimentConfig = {
  hidden: [2048, 512],
  latentDim: 32,
  epochs: 200,
  batchSize: 2048,
  learningRate: 1e-3,
  weightDecay: 5e-5,
  seed: 0,
  routed: true,
  weights: { l1: 3e-3, correlation: 0.1, certificates: 1 },
  partition: [
    [0, 1, 2, 3, 4],
    [5, 6, 7, 8, 9],
  ],
  probeEpochs: 20,
};

/**
 * The presets of the MNIST split experiment. `paper` is the paper's configuration exactly;
 * `smoke` runs in seconds on a subset, for CI. `quick` is sized for about five minutes on a
 * 2-core CPU with the wasm backend: a smaller network ([512, 128]), a smaller batch and a higher
 * learning rate (more, cheaper steps), and no concurrent certificates (they read the stopped
 * latent, so dropping them changes nothing else in training); two epochs of post-hoc probes
 * measure the split instead. Both differ from `paper` only where they say.
 */
export const splitPresets: Readonly<Record<SplitPresetName, Readonly<SplitExperimentConfig>>> = {
  paper,
  quick: {
    ...paper,
    hidden: [512, 128],
    epochs: 9,
    batchSize: 128,
    learningRate: 2e-3,
    weights: { ...paper.weights, certificates: 0 },
    probeEpochs: 2,
  },
  smoke: {
    ...paper,
    hidden: [64, 32],
    epochs: 1,
    batchSize: 128,
    trainLimit: 2048,
    testLimit: 1000,
    probeEpochs: 1,
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

/** One certificate's (or probe's) result. */
export interface SliceReport extends SplitRatio {
  region: Region;
  /** Index of the label group the slice is routed for. */
  ownGroup: number;
  perLabelMae: number[];
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
  /** Post-hoc probes on the frozen encoder (empty when `probeEpochs` is 0). */
  probes: SliceProbe[];
  losses: LossPoint[];
  steps: number;
  trainSeconds: number;
  /** The trained model; the caller disposes it. */
  model: RoutedAutoencoder;
}

/** Callbacks of {@link runSplitExperiment}. */
export interface SplitExperimentCallbacks {
  /** Called after every training step (see {@link FitProgress}). */
  onTrainProgress?: (progress: FitProgress) => void;
  /** Called when a phase starts: training, evaluation on the test set, post-hoc probes. */
  onPhase?: (phase: 'train' | 'evaluate' | 'probe') => void;
}

/**
 * Runs the split experiment: trains a {@link RoutedAutoencoder} with each label group routed to
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
  const regions = partitionRegions(config.partition, config.latentDim);
  const routes: LabelRoute[] = config.partition.map((labels, g) => ({
    labels,
    region: regions[g]!,
  }));
  const numClasses = Math.max(...config.partition.flat()) + 1;
  if (config.weights.certificates === 0 && config.probeEpochs === 0) {
    throw new GradientRoutingError(
      'gradient-routing: with no certificate decoders (weights.certificates 0) and no probes (probeEpochs 0) nothing would measure the split; enable one of them.',
    );
  }
  const train = limitDataset(data.train, config.trainLimit);
  const test = limitDataset(data.test, config.testLimit);
  const { x: trainX, y: trainY } = toTensors(train);
  const { x: testX, y: testY } = toTensors(test);
  const model = new RoutedAutoencoder({
    inputDim: train.rows * train.cols,
    hidden: config.hidden,
    latentDim: config.latentDim,
    routes,
    numClasses,
    seed: config.seed,
    // Certificates read the stopped latent, so leaving them out changes nothing else in training.
    certificates: config.weights.certificates === 0 ? [] : 'routes',
  });
  const optimizer = torchAdam({
    learningRate: config.learningRate,
    weightDecay: config.weightDecay,
  });
  try {
    callbacks.onPhase?.('train');
    const started = performance.now();
    const fit = await fitRoutedAutoencoder(model, optimizer, trainX, trainY, {
      epochs: config.epochs,
      batchSize: config.batchSize,
      seed: config.seed,
      routed: config.routed,
      weights: config.weights,
      ...(callbacks.onTrainProgress === undefined ? {} : { onProgress: callbacks.onTrainProgress }),
    });
    const trainSeconds = (performance.now() - started) / 1000;
    callbacks.onPhase?.('evaluate');
    const errors = await model.evaluate(testX, test.labels, { numClasses });
    const certificates = errors.certificates.map((perLabelMae, g) => ({
      region: regions[g]!,
      ownGroup: g,
      perLabelMae,
      ...splitRatio(perLabelMae, config.partition, g),
    }));
    let probes: SliceProbe[] = [];
    if (config.probeEpochs > 0) {
      callbacks.onPhase?.('probe');
      const probe = await probeLatentSlices({
        encode: (x) => model.encode(x),
        trainX,
        testX,
        testLabels: test.labels,
        slices: regions,
        partition: config.partition,
        numLabels: numClasses,
        hidden: [...config.hidden].reverse(),
        epochs: config.probeEpochs,
        batchSize: config.batchSize,
        learningRate: config.learningRate,
        seed: config.seed,
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
      losses: fit.losses,
      steps: fit.steps,
      trainSeconds,
      model,
    };
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    optimizer.dispose();
    tf.dispose([trainX, trainY, testX, testY]);
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
