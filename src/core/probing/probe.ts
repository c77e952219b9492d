import * as tf from '@tensorflow/tfjs-core';
import { checkGpuErrors } from '../backend/webgpu/device.js';
import { type ChunkedRows, gatherRows, sliceRows } from '../data/rows.js';
import { GradientRoutingError } from '../errors.js';
import { meanAbsoluteError, perExampleMeanAbsoluteError } from '../losses/mae.js';
import { type Region, validateRegions } from '../masks/regions.js';
import { torchAdam } from '../optim/adam.js';
import { formatShape } from '../routing/shapes.js';
import { seededPermutation, seededRandom } from '../util/random.js';
import { mlpProbeDecoder, type ProbeDecoderFactory } from './decoder.js';
import {
  type LabelPartition,
  perLabelMeans,
  type SplitRatio,
  splitRatio,
  validatePartition,
} from './split.js';

/** Reported after every epoch of every slice's decoder. */
export interface ProbeProgress {
  /** Index of the slice being trained. */
  slice: number;
  /** Epochs done for this slice, 1-based. */
  epoch: number;
  /** Epochs per slice. */
  epochs: number;
  /** Mean training MAE over the epoch's batches (weighted by batch size). */
  loss: number;
}

/** Reported after every training batch of every slice's decoder; reads nothing from the device. */
export interface ProbeStepProgress {
  /** Index of the slice being trained. */
  slice: number;
  /** The epoch of this slice, 1-based, of `epochs`. */
  epoch: number;
  epochs: number;
  /** Batches done in this epoch, 1-based, of `stepsPerEpoch`. */
  step: number;
  stepsPerEpoch: number;
}

/** Inputs of {@link probeLatentSlices}. */
export interface ProbeOptions {
  /** The frozen encoder. It is only ever called outside a gradient tape, on batches. */
  encode: (x: tf.Tensor2D) => tf.Tensor2D;
  /**
   * Training inputs `[N, F]`; the decoders learn to reconstruct them. {@link ChunkedRows} for data
   * above a WebGPU device's binding limit.
   */
  trainX: tf.Tensor2D | ChunkedRows;
  /** Test inputs `[M, F]`, a tensor or {@link ChunkedRows}. */
  testX: tf.Tensor2D | ChunkedRows;
  /** One integer label per test example, in `0..K-1`. */
  testLabels: tf.Tensor1D | ArrayLike<number>;
  /** The latent slices to probe, each `[start, end)` of the encoding's last axis; may overlap. */
  slices: readonly Region[];
  /** Groups of labels covering `0..K-1`, e.g. `[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]`. */
  partition: LabelPartition;
  /** Group each slice should encode, an index into `partition`. Default: slice `s` owns group `s`. */
  owners?: readonly number[];
  /** K. Default: one more than the largest label in `partition`. */
  numLabels?: number;
  /** Hidden widths of the default MLP decoder, input side first. Default `[128, 512]`. */
  hidden?: readonly number[];
  /** Builds each slice's decoder instead of the default MLP; overrides `hidden`. */
  decoder?: ProbeDecoderFactory;
  /** Passes over the training data per slice. Default 5. */
  epochs?: number;
  /** Default 256. */
  batchSize?: number;
  /** Adam learning rate. Default 1e-3. */
  learningRate?: number;
  /** Seed of the decoders' initialisation and of the shuffling. Default 0. */
  seed?: number;
  /** Batch size for encoding and evaluation (no gradients, so it can be large). Default 1024. */
  evalBatchSize?: number;
  /** Called after each epoch; reading the loss costs one device read per epoch. */
  onProgress?: (progress: ProbeProgress) => void;
  /** Called after each training batch, for progress within an epoch (free: no device read). */
  onStep?: (progress: ProbeStepProgress) => void;
}

/** One probed slice: its per-label test errors and split ratio. */
export interface SliceReport extends SplitRatio {
  /** The slice `[start, end)`. */
  region: Region;
  /** The group it should encode. */
  ownGroup: number;
  /** Test MAE per label: for each label, the mean over its examples of `mean(|dec(z) - x|)`. */
  perLabelMae: number[];
}

/** What {@link probeLatentSlices} finds. */
export interface ProbeResult {
  /** One entry per slice, in the order given. */
  slices: SliceReport[];
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new GradientRoutingError(
      `gradient-routing: probe option ${name} must be a positive integer, got ${value}.`,
    );
  }
  return value;
}

function checkInputs(x: tf.Tensor | ChunkedRows, name: string): void {
  if (x.rank !== 2 || x.dtype !== 'float32' || x.shape[0] === 0) {
    throw new GradientRoutingError(
      `gradient-routing: probe ${name} must be a non-empty float32 [N, F] tensor, got ` +
        `${x.dtype} ${formatShape(x.shape)}. Flatten the inputs and cast them to float32.`,
    );
  }
}

/** Runs `fn(start, size)` on consecutive row batches of `n` rows and concatenates the results. */
function mapRowBatches(
  n: number,
  batchSize: number,
  fn: (start: number, size: number) => tf.Tensor,
): tf.Tensor {
  const parts: tf.Tensor[] = [];
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      parts.push(tf.tidy(() => fn(start, size)));
    }
    return parts.length === 1 ? parts.pop()! : tf.concat(parts, 0);
  } finally {
    tf.dispose(parts);
  }
}

function rows(x: tf.Tensor2D | ChunkedRows, start: number, size: number): tf.Tensor2D {
  return sliceRows(x, start, size) as tf.Tensor2D;
}

function encodeAll(
  options: ProbeOptions,
  x: tf.Tensor2D | ChunkedRows,
  batchSize: number,
): tf.Tensor2D {
  return mapRowBatches(x.shape[0], batchSize, (start, size) => {
    const z = options.encode(rows(x, start, size));
    if (!(z instanceof tf.Tensor) || z.rank !== 2 || z.shape[0] !== size) {
      throw new GradientRoutingError(
        `gradient-routing: the probe's encode function must return a [B, D] tensor for a batch ` +
          `of ${size}, got ${z instanceof tf.Tensor ? formatShape(z.shape) : typeof z}.`,
      );
    }
    return tf.cast(z, 'float32');
  }) as tf.Tensor2D;
}

/** Every test label must lie in the partition and every partition label must occur. */
function checkLabels(labels: ArrayLike<number>, numLabels: number): void {
  const counts = new Array<number>(numLabels).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= numLabels) {
      throw new GradientRoutingError(
        `gradient-routing: test example ${i} has label ${label}, which is in no group of the ` +
          `partition (labels 0..${numLabels - 1}). Add it to a group, or pass numLabels.`,
      );
    }
    counts[label]! += 1;
  }
  const missing = counts.indexOf(0);
  if (missing >= 0) {
    throw new GradientRoutingError(
      `gradient-routing: label ${missing} of the partition has no test examples, so its error is ` +
        'undefined. Add test examples of it, or drop it from the partition.',
    );
  }
}

function sliceColumns(z: tf.Tensor2D, [start, end]: Region): tf.Tensor2D {
  return tf.slice(z, [0, start], [-1, end - start]);
}

/**
 * Trains a fresh decoder on each latent slice of a frozen encoder and reports, per slice, the
 * test error per label and the split ratio: how much worse the slice reconstructs the labels
 * outside its own group than those in it (the paper's post-hoc probe, for any slices, any
 * number of labels and any partition).
 *
 * The encoder runs once over the training and test data, in batches, outside any gradient
 * tape, so nothing is trained but the decoders. Each decoder is trained with Adam on MAE over
 * all training examples, shuffled per epoch by a permutation drawn from `seed`.
 *
 * @returns Per-slice per-label errors and split ratios.
 * @throws If a slice is outside the encoding, the partition is invalid, a test label is
 *   outside the partition or a partition label has no test examples, or an option is invalid.
 *   All checks run before any training.
 *
 * @example
 * ```ts
 * const { slices } = await probeLatentSlices({
 *   encode: (x) => model.encode(x), trainX, testX, testLabels,
 *   slices: [[0, 16], [16, 32]], partition: [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], epochs: 20,
 * });
 * slices.map((s) => s.ratio);
 * ```
 */
export async function probeLatentSlices(options: ProbeOptions): Promise<ProbeResult> {
  const { trainX, testX, slices, partition } = options;
  checkInputs(trainX, 'trainX');
  checkInputs(testX, 'testX');
  const features = trainX.shape[1];
  if (testX.shape[1] !== features) {
    throw new GradientRoutingError(
      `gradient-routing: probe trainX has ${features} features but testX has ${testX.shape[1]}. ` +
        'Give both the same feature layout.',
    );
  }
  const epochs = positiveInteger(options.epochs ?? 5, 'epochs');
  const batchSize = positiveInteger(options.batchSize ?? 256, 'batchSize');
  const evalBatchSize = positiveInteger(options.evalBatchSize ?? 1024, 'evalBatchSize');
  const seed = options.seed ?? 0;
  if (slices.length === 0) {
    throw new GradientRoutingError(
      'gradient-routing: give the probe at least one latent slice [start, end).',
    );
  }
  const owners = options.owners ?? slices.map((_, s) => s);
  if (owners.length !== slices.length) {
    throw new GradientRoutingError(
      `gradient-routing: the probe got ${slices.length} slices but ${owners.length} owners. ` +
        'Give one owner group per slice (or one slice per group and no owners).',
    );
  }
  const numLabels = options.numLabels ?? Math.max(-1, ...partition.flat()) + 1;
  validatePartition(partition, numLabels);
  for (const owner of owners) {
    if (!Number.isInteger(owner) || partition[owner] === undefined) {
      throw new GradientRoutingError(
        `gradient-routing: probe owner group ${owner} is not a group of the partition; use an ` +
          `index 0..${partition.length - 1}.`,
      );
    }
  }
  const labels =
    options.testLabels instanceof tf.Tensor ? await options.testLabels.data() : options.testLabels;
  if (labels.length !== testX.shape[0]) {
    throw new GradientRoutingError(
      `gradient-routing: the probe got ${labels.length} test labels for ${testX.shape[0]} test ` +
        'examples. Give one label per test example.',
    );
  }
  checkLabels(labels, numLabels);

  const makeDecoder: ProbeDecoderFactory =
    options.decoder ??
    ((inputSize, outputSize, decoderSeed) =>
      mlpProbeDecoder([inputSize, ...(options.hidden ?? [128, 512]), outputSize], decoderSeed));

  const zTrain = encodeAll(options, trainX, evalBatchSize);
  const zTest = encodeAll(options, testX, evalBatchSize);
  try {
    const latentSize = zTrain.shape[1];
    for (const slice of slices) validateRegions(latentSize, [slice]);
    const results: SliceReport[] = [];
    for (const [s, region] of slices.entries()) {
      const perLabelMae = await trainAndEvaluate(
        s,
        region,
        { zTrain, zTest, labels, numLabels, features, epochs, batchSize, evalBatchSize, seed },
        makeDecoder,
        options,
      );
      const ownGroup = owners[s]!;
      results.push({
        region,
        ownGroup,
        perLabelMae,
        ...splitRatio(perLabelMae, partition, ownGroup),
      });
    }
    return { slices: results };
  } finally {
    zTrain.dispose();
    zTest.dispose();
  }
}

interface Prepared {
  zTrain: tf.Tensor2D;
  zTest: tf.Tensor2D;
  labels: ArrayLike<number>;
  numLabels: number;
  features: number;
  epochs: number;
  batchSize: number;
  evalBatchSize: number;
  seed: number;
}

async function trainAndEvaluate(
  s: number,
  region: Region,
  prep: Prepared,
  makeDecoder: ProbeDecoderFactory,
  options: ProbeOptions,
): Promise<number[]> {
  const { trainX, testX } = options;
  const n = prep.zTrain.shape[0];
  // One stream per slice, so a slice's result does not depend on which slices precede it.
  const random = seededRandom(Math.imul(prep.seed ^ 0x9e3779b9, 31) + s);
  const decoder = makeDecoder(region[1] - region[0], prep.features, Math.floor(random() * 2 ** 31));
  const optimizer = torchAdam({ learningRate: options.learningRate ?? 1e-3 });
  const zSlice = sliceColumns(prep.zTrain, region);
  const variables = [...decoder.variables];
  let total: tf.Scalar | undefined;
  try {
    for (let epoch = 1; epoch <= prep.epochs; epoch++) {
      const perm = seededPermutation(n, random);
      total = tf.scalar(0);
      const stepsPerEpoch = Math.ceil(n / prep.batchSize);
      for (let start = 0; start < n; start += prep.batchSize) {
        const idx = perm.subarray(start, Math.min(start + prep.batchSize, n));
        const sum: tf.Scalar = total;
        total = tf.tidy(() => {
          const picked = tf.tensor1d(idx, 'int32');
          const z = tf.gather(zSlice, picked);
          const x = gatherRows(trainX, idx, picked);
          const loss = optimizer.minimize(
            () => meanAbsoluteError(decoder.apply(z), x),
            true,
            variables,
          )!;
          return tf.add(sum, tf.mul(loss, idx.length)) as tf.Scalar;
        });
        sum.dispose();
        checkGpuErrors();
        options.onStep?.({
          slice: s,
          epoch,
          epochs: prep.epochs,
          step: start / prep.batchSize + 1,
          stepsPerEpoch,
        });
      }
      if (options.onProgress) {
        const lossSum = (await total.data())[0]!;
        options.onProgress({ slice: s, epoch, epochs: prep.epochs, loss: lossSum / n });
      } else {
        // Lets a browser page repaint between epochs.
        await tf.nextFrame();
      }
      total.dispose();
    }
    const testSlice = sliceColumns(prep.zTest, region);
    const errors = mapRowBatches(testX.shape[0], prep.evalBatchSize, (start, size) =>
      perExampleMeanAbsoluteError(
        decoder.apply(rows(testSlice, start, size)),
        rows(testX, start, size),
      ),
    );
    testSlice.dispose();
    const values = await errors.data();
    errors.dispose();
    return perLabelMeans(values, prep.labels, prep.numLabels);
  } finally {
    total?.dispose();
    zSlice.dispose();
    optimizer.dispose();
    decoder.dispose();
  }
}
