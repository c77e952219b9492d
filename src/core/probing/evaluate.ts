import * as tf from '@tensorflow/tfjs-core';
import { checkGpuErrors } from '../backend/webgpu/device.js';
import { type ChunkedRows, sliceRows } from '../data/rows.js';
import { assertInteger, GradientRoutingError } from '../errors.js';
import { perExampleMeanAbsoluteError } from '../losses/mae.js';
import type { Autoencoder } from '../models/autoencoder.js';
import { perLabelMeans } from './split.js';

/** Per-label mean absolute errors of an autoencoder on a dataset. */
export interface PerLabelErrors {
  /** The decoder on the whole latent, one entry per label (NaN for a label with no example). */
  decoder: number[];
  /** Each certificate, in the order of {@link Autoencoder.certificateSlices}. */
  certificates: number[][];
}

/** Options of {@link perLabelErrors}. */
export interface PerLabelErrorsOptions {
  /** Examples per evaluation batch (no gradients, so it can be large). Default 1000. */
  batchSize?: number;
  /** Labels are integers in `[0, numClasses)`. Default: the largest label + 1. */
  numClasses?: number;
  /** Called after every batch with the examples scored so far, for progress over large sets. */
  onProgress?: (evaluated: number, total: number) => void;
}

/**
 * Per-label MAE of the decoder and of each certificate on a dataset, computed in batches and read
 * back asynchronously (so it runs on every backend, WebGPU included). Label `k`'s entry is the
 * mean over its examples of the per-example MAE (NaN if it has none). `x` may be
 * {@link ChunkedRows}, for data above a WebGPU device's binding limit.
 */
export async function perLabelErrors(
  model: Autoencoder,
  x: tf.Tensor2D | ChunkedRows,
  labels: ArrayLike<number>,
  options: PerLabelErrorsOptions = {},
): Promise<PerLabelErrors> {
  const batchSize = assertInteger(options.batchSize ?? 1000, 'batchSize');
  const count = x.shape[0]!;
  if (labels.length !== count) {
    throw new GradientRoutingError(
      `evaluation got ${count} examples but ${labels.length} labels; give one label per example.`,
    );
  }
  let largest = -1;
  for (let i = 0; i < labels.length; i++) largest = Math.max(largest, labels[i]!);
  const numClasses = options.numClasses ?? largest + 1;
  const heads = 1 + model.certificateDecoders.length;
  const perExample = Array.from({ length: heads }, () => new Float32Array(count));
  for (let start = 0; start < count; start += batchSize) {
    const size = Math.min(batchSize, count - start);
    const errors = tf.tidy(() => {
      const batch = sliceRows(x, start, size) as tf.Tensor2D;
      const z = model.encode(batch);
      const outputs = [model.decode(z), ...model.certify(z)];
      return tf.stack(outputs.map((out) => perExampleMeanAbsoluteError(out, batch)));
    });
    const values = (await errors.data()) as Float32Array;
    errors.dispose();
    checkGpuErrors();
    perExample.forEach((head, h) => {
      head.set(values.subarray(h * size, (h + 1) * size), start);
    });
    options.onProgress?.(start + size, count);
  }
  const [decoder, ...certificates] = perExample.map((head) =>
    perLabelMeans(head, labels, numClasses),
  );
  return { decoder: decoder!, certificates };
}
