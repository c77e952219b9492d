import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { RoutedAutoencoder, RoutedStepOptions } from '../models/autoencoder.js';
import { seededPermutation, seededRandom } from '../util/random.js';

/** Where training is, passed to {@link FitOptions.onProgress}. */
export interface FitProgress {
  /** 1-based epoch. */
  epoch: number;
  epochs: number;
  /** 1-based step within the epoch. */
  step: number;
  stepsPerEpoch: number;
  /** Steps done since the start of training. */
  totalSteps: number;
  /** The loss of this step, when it was read (every `lossEvery` steps and at each epoch's end). */
  loss?: number;
}

/** A recorded training loss. */
export interface LossPoint {
  /** Steps done since the start of training when the loss was read. */
  step: number;
  epoch: number;
  loss: number;
}

/** Options of {@link fitRoutedAutoencoder}. */
export interface FitOptions extends RoutedStepOptions {
  epochs: number;
  batchSize: number;
  /** Seed of the per-epoch shuffles. Default 0. */
  seed?: number;
  /**
   * Read the loss back every this many steps (and at the end of each epoch). Each read is a
   * device sync, which costs nothing on cpu and wasm but stalls a GPU pipeline. Default 10.
   */
  lossEvery?: number;
  /** Called after every step. */
  onProgress?: (progress: FitProgress) => void;
}

/** What {@link fitRoutedAutoencoder} returns. */
export interface FitResult {
  losses: LossPoint[];
  steps: number;
}

function positiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new GradientRoutingError(
      `gradient-routing: ${name} must be a positive integer, got ${value}. Pass a whole number >= 1.`,
    );
  }
}

/**
 * Trains a {@link RoutedAutoencoder} with minibatches, shuffled each epoch from one seed.
 * Batches are gathered on the device; the loss is read only every `lossEvery` steps.
 * A final batch of a single example is skipped: the correlation penalty needs two.
 *
 * @param x - All training inputs `[N, inputDim]`.
 * @param labels - Their integer labels `[N]` (int32).
 *
 * @example
 * ```ts
 * const { losses } = await fitRoutedAutoencoder(model, torchAdam({ weightDecay: 5e-5 }), x, y, {
 *   epochs: 2, batchSize: 256, onProgress: (p) => console.log(p.epoch, p.step, p.loss),
 * });
 * ```
 */
export async function fitRoutedAutoencoder(
  model: RoutedAutoencoder,
  optimizer: tf.Optimizer,
  x: tf.Tensor2D,
  labels: tf.Tensor1D,
  options: FitOptions,
): Promise<FitResult> {
  const { epochs, batchSize, seed = 0, lossEvery = 10, onProgress } = options;
  positiveInteger(epochs, 'epochs');
  positiveInteger(batchSize, 'batchSize');
  positiveInteger(lossEvery, 'lossEvery');
  const count = x.shape[0];
  if (labels.shape[0] !== count || labels.rank !== 1) {
    throw new GradientRoutingError(
      `gradient-routing: got ${count} training examples but labels of shape [${labels.shape}]; give one label per example.`,
    );
  }
  const random = seededRandom(seed);
  const stepsPerEpoch = Math.ceil(count / batchSize) - (count % batchSize === 1 ? 1 : 0);
  const losses: LossPoint[] = [];
  let totalSteps = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const order = tf.tensor1d(seededPermutation(count, random), 'int32');
    try {
      for (let step = 1; step <= stepsPerEpoch; step++) {
        const start = (step - 1) * batchSize;
        const size = Math.min(batchSize, count - start);
        const loss = tf.tidy(() => {
          const indices = tf.slice(order, start, size);
          return model.trainStep(
            optimizer,
            tf.gather(x, indices),
            tf.gather(labels, indices),
            options,
          );
        });
        totalSteps += 1;
        const read = totalSteps % lossEvery === 0 || step === stepsPerEpoch;
        const value = read ? (await loss.data())[0]! : undefined;
        loss.dispose();
        if (value !== undefined) losses.push({ step: totalSteps, epoch, loss: value });
        onProgress?.({
          epoch,
          epochs,
          step,
          stepsPerEpoch,
          totalSteps,
          ...(value === undefined ? {} : { loss: value }),
        });
      }
    } finally {
      order.dispose();
    }
  }
  return { losses, steps: totalSteps };
}
