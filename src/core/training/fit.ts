import * as tf from '@tensorflow/tfjs-core';
import { checkGpuErrors, watchGpuErrors } from '../backend/webgpu/device.js';
import { ChunkedRows, gatherRows, type Rows } from '../data/rows.js';
import { assertInteger, GradientRoutingError } from '../errors.js';
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

/** One minibatch, as {@link fit} hands it to the loss function. */
export interface TrainingBatch {
  /** The batch's inputs: rows of the training inputs. */
  x: tf.Tensor;
  /** The batch's labels: rows of the training labels (per example or per token). */
  labels: tf.Tensor;
  /** The dataset index of each example, int32 `[B]` (what oversight rules read). */
  indices: tf.Tensor1D;
}

/** Options of {@link fit}. */
export interface FitOptions {
  epochs: number;
  batchSize: number;
  /** Seed of the per-epoch shuffles. Default 0. */
  seed?: number;
  /**
   * Read the loss back every this many steps (and at the end of each epoch). Each read is a
   * device sync, which costs nothing on cpu and wasm but stalls a GPU pipeline. Default 10.
   */
  lossEvery?: number;
  /**
   * Smallest batch worth a step: a final batch with fewer examples is skipped (the correlation
   * penalty needs two). Default 2.
   */
  minBatch?: number;
  /**
   * Stop with a `diverged` error when a read loss exceeds this many times the first one (or is
   * not finite). Default 1000; `Infinity` checks only for NaN and ±Infinity.
   */
  divergenceFactor?: number;
  /** Called after every step. */
  onProgress?: (progress: FitProgress) => void;
  /**
   * Checks the training labels once, before the first step; e.g. a label rule's
   * `rule.checkLabels`, so that a label in no route stops training with an error naming the
   * example instead of silently training nothing. With {@link ChunkedRows} labels it is called
   * once per chunk.
   */
  checkLabels?: (labels: tf.Tensor) => Promise<void> | void;
}

/** What {@link fit} returns. */
export interface FitResult {
  losses: LossPoint[];
  steps: number;
}

/**
 * The training data of {@link fit}: inputs and labels with the same first axis. Either may be
 * {@link ChunkedRows} (see `toChunkedTensors`), which keeps data above a WebGPU device's binding
 * limit usable.
 */
export interface TrainingData {
  x: Rows;
  labels: Rows;
}

/**
 * Trains `variables` to minimise `loss` over minibatches, shuffled each epoch from one seed.
 * Batches are gathered on the device; the loss is read only every `lossEvery` steps (and is then
 * checked for divergence). On WebGPU, a validation or out-of-memory error of the device stops
 * training at the first check after it is reported (see `checkGpuErrors`): in Node, the step it
 * happened in; in a browser, which reports it asynchronously, by the next loss read. Works for
 * any model: the loss function runs the model, usually with a routing plan through
 * `forwardContext`.
 *
 * @param loss - The loss of a batch, a scalar; called inside the optimiser's tape.
 * @throws {@link GradientRoutingError} on bad options or data shapes (before training), and with
 *   code `diverged` when the loss becomes NaN or explodes, and with code `gpu` when the WebGPU
 *   device rejects work, runs out of memory or is lost.
 *
 * @example
 * ```ts
 * const objective = splitObjective({ routes }, 32);
 * const { losses } = await fit(
 *   (batch) => objective.loss(model, batch.x as tf.Tensor2D, batch.labels as tf.Tensor1D).total,
 *   model.trainableVariables, torchAdam({ weightDecay: 5e-5 }), { x, labels },
 *   { epochs: 2, batchSize: 256 },
 * );
 * ```
 */
export async function fit(
  loss: (batch: TrainingBatch) => tf.Scalar,
  variables: tf.Variable[],
  optimizer: tf.Optimizer,
  data: TrainingData,
  options: FitOptions,
): Promise<FitResult> {
  const { epochs, batchSize, seed = 0, lossEvery = 10, minBatch = 2, onProgress } = options;
  const divergenceFactor = options.divergenceFactor ?? 1000;
  assertInteger(epochs, 'epochs');
  assertInteger(batchSize, 'batchSize');
  assertInteger(lossEvery, 'lossEvery');
  assertInteger(minBatch, 'minBatch');
  const count = data.x.shape[0] ?? 0;
  if (data.labels.shape[0] !== count || count === 0) {
    throw new GradientRoutingError(
      `got ${count} training examples but labels of shape [${data.labels.shape}]; give one label ` +
        '(or one row of token labels) per example, and at least one example.',
    );
  }
  const { checkLabels } = options;
  if (checkLabels !== undefined) {
    for (const labels of data.labels instanceof ChunkedRows ? data.labels.chunks : [data.labels]) {
      await checkLabels(labels);
    }
  }
  // From here on, a WebGPU error is recorded and stops training at the next step's check.
  watchGpuErrors();
  const random = seededRandom(seed);
  const stepsPerEpoch = countStepsPerEpoch(count, batchSize, minBatch);
  if (stepsPerEpoch < 1) {
    throw new GradientRoutingError(
      `${count} training examples make no batch of at least ${minBatch}; give more examples.`,
    );
  }
  const losses: LossPoint[] = [];
  let totalSteps = 0;
  let firstLoss: number | undefined;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const hostOrder = seededPermutation(count, random);
    const order = tf.tensor1d(hostOrder, 'int32');
    try {
      for (let step = 1; step <= stepsPerEpoch; step++) {
        const start = (step - 1) * batchSize;
        const size = Math.min(batchSize, count - start);
        const stepLoss = tf.tidy(() => {
          const indices = tf.slice(order, start, size);
          const hostIndices = hostOrder.subarray(start, start + size);
          const batch = {
            x: gatherRows(data.x, hostIndices, indices),
            labels: gatherRows(data.labels, hostIndices, indices),
            indices,
          };
          return trainStep(optimizer, () => loss(batch), variables);
        });
        totalSteps += 1;
        const read = totalSteps % lossEvery === 0 || step === stepsPerEpoch;
        const value = read ? (await stepLoss.data())[0]! : undefined;
        stepLoss.dispose();
        // Before the loss is judged: a loss read from a rejected command is garbage.
        checkGpuErrors();
        if (value !== undefined) {
          firstLoss ??= value;
          assertNotDiverged(value, firstLoss, divergenceFactor, totalSteps);
          losses.push({ step: totalSteps, epoch, loss: value });
        }
        onProgress?.({
          epoch,
          epochs,
          step,
          stepsPerEpoch,
          totalSteps,
          ...(value === undefined ? {} : { loss: value }),
        });
        if (read) await yieldToEventLoop();
      }
    } finally {
      order.dispose();
    }
  }
  return { losses, steps: totalSteps };
}

/**
 * The steps {@link fit} makes per epoch over `count` examples: one per batch, less a final batch
 * smaller than `minBatch` (default 2), which it skips.
 */
export function countStepsPerEpoch(count: number, batchSize: number, minBatch = 2): number {
  const remainder = count % batchSize;
  return Math.ceil(count / batchSize) - (remainder > 0 && remainder < minBatch ? 1 : 0);
}

/**
 * One optimisation step: minimises `loss` over `variables` and returns the loss as a scalar
 * tensor (the caller disposes it). Nothing is read back from the device.
 */
export function trainStep(
  optimizer: tf.Optimizer,
  loss: () => tf.Scalar,
  variables: tf.Variable[],
): tf.Scalar {
  const value = optimizer.minimize(loss, true, variables);
  if (value === null) throw new GradientRoutingError('the optimizer returned no loss.');
  return value;
}

/**
 * Lets the event loop run other tasks. On the wasm and cpu backends a read resolves at once, so
 * without this a browser page could neither repaint (progress, loss curve) nor handle input (a
 * Stop button) until training ends. A MessageChannel message rather than a timer: browsers clamp
 * chained timers to 4 ms and throttle them to about one a minute in background tabs.
 */
function yieldToEventLoop(): Promise<void> {
  if (typeof MessageChannel === 'undefined') {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

function assertNotDiverged(loss: number, first: number, factor: number, step: number): void {
  if (!Number.isFinite(loss) || Math.abs(loss) > factor * Math.max(Math.abs(first), 1e-12)) {
    throw new GradientRoutingError(
      `training diverged at step ${step}: the loss is ${loss} (the first was ${first}); ` +
        'lower the learning rate, or check the data for NaN or unscaled values.',
      'diverged',
      loss,
    );
  }
}
