import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { IdxData } from './idx.js';
import { ChunkedRows, type ChunkedRowsOptions } from './rows.js';

/** Pixel scaling: `[0, 1]` is `x / 255`; `[-1, 1]` is then `(x - 0.5) / 0.5`, as in torchvision. */
export type PixelRange = readonly [0, 1] | readonly [-1, 1];

/** Options for {@link imageDatasetFromIdx}. */
export interface ImageDatasetOptions {
  /** How to scale pixels; default `[0, 1]`. */
  range?: PixelRange;
  /** Keep only the first `limit` examples (all of them when the file has fewer). */
  limit?: number;
  /** When given, the images must be `[rows, cols]`, e.g. `[28, 28]` for MNIST. */
  imageSize?: readonly [rows: number, cols: number];
  /**
   * The classes the labels may take, `[0, numClasses)`; a label outside is an error naming the
   * example. MNIST loaders pass 10. Without it, labels are not range-checked.
   */
  numClasses?: number;
}

/** Images and labels in the MNIST layout, ready for training. */
export interface ImageDataset {
  /** `count * rows * cols` scaled pixels, image after image, each row-major. */
  images: Float32Array;
  /** One class label per image. */
  labels: Int32Array;
  /** Number of examples. */
  count: number;
  /** Image height in pixels. */
  rows: number;
  /** Image width in pixels. */
  cols: number;
}

/**
 * The 256 possible scaled pixel values. Each step is rounded to float32 as PyTorch's float32 ops
 * round it (`ToTensor` then `Normalize`), so the values match the reference bit for bit; a table
 * also keeps the per-pixel loop to one typed-array read.
 */
function pixelTable(range: PixelRange): Float32Array {
  const [low, high] = range;
  const centred = low === -1 && high === 1;
  if (!centred && !(low === 0 && high === 1)) {
    throw new GradientRoutingError(
      `gradient-routing: unsupported pixel range [${range.join(', ')}]; use [0, 1] or [-1, 1].`,
    );
  }
  const table = new Float32Array(256);
  for (let value = 0; value < 256; value++) {
    const unit = Math.fround(value / 255);
    table[value] = centred ? Math.fround(unit - 0.5) / 0.5 : unit;
  }
  return table;
}

/**
 * Checks a pair of parsed IDX files in the MNIST layout (uint8 images `[count, rows, cols]`, uint8
 * labels `[count]`) and scales the images to floats. Image size and count come from the headers,
 * so Fashion-MNIST and other sizes work too.
 *
 * @param names - What to call the two files in error messages, such as their paths.
 * @throws When a file has the wrong type or rank, the counts differ, the size differs from
 * `imageSize`, or `limit` is not a positive integer.
 */
export function imageDatasetFromIdx(
  images: IdxData,
  labels: IdxData,
  options: ImageDatasetOptions = {},
  names: { images: string; labels: string } = { images: 'the images', labels: 'the labels' },
): ImageDataset {
  const { range = [0, 1], limit, imageSize, numClasses } = options;
  if (numClasses !== undefined && (!Number.isInteger(numClasses) || numClasses < 1)) {
    throw new GradientRoutingError(
      `gradient-routing: numClasses must be a positive integer, got ${numClasses}; pass the number of classes the labels declare (10 for MNIST).`,
    );
  }
  if (images.type !== 'uint8' || images.dims.length !== 3) {
    throw new GradientRoutingError(
      `gradient-routing: ${names.images} must be 3-dimensional uint8 [count, rows, cols], got ${images.type} [${images.dims.join(', ')}]; pass the images file, not the labels.`,
    );
  }
  if (labels.type !== 'uint8' || labels.dims.length !== 1) {
    throw new GradientRoutingError(
      `gradient-routing: ${names.labels} must be 1-dimensional uint8 [count], got ${labels.type} [${labels.dims.join(', ')}]; pass the labels file, not the images.`,
    );
  }
  const [total, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== total) {
    throw new GradientRoutingError(
      `gradient-routing: ${names.images} has ${total} images but ${names.labels} has ${labels.dims[0]} labels; use the images and labels of the same split.`,
    );
  }
  if (imageSize !== undefined && (imageSize[0] !== rows || imageSize[1] !== cols)) {
    throw new GradientRoutingError(
      `gradient-routing: ${names.images} holds ${rows}x${cols} images, expected ${imageSize[0]}x${imageSize[1]}; pass the right files or change imageSize.`,
    );
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new GradientRoutingError(
      `gradient-routing: limit must be a positive integer, got ${limit}; omit it to load every example.`,
    );
  }
  const count = Math.min(total, limit ?? total);
  if (numClasses !== undefined) {
    // Checked over the whole file, not just the kept examples: a bad label means a bad file.
    const values = labels.data;
    for (let i = 0; i < values.length; i++) {
      const label = values[i]!;
      if (label >= numClasses) {
        throw new GradientRoutingError(
          `gradient-routing: ${names.labels} has label ${label} at example ${i}, but the dataset declares ${numClasses} classes [0, ${numClasses}); fix or drop that example, or pass the right numClasses.`,
          'invalid-label',
          label,
        );
      }
    }
  }
  const table = pixelTable(range);
  const pixels = images.data;
  const scaled = new Float32Array(count * rows * cols);
  for (let i = 0; i < scaled.length; i++) scaled[i] = table[pixels[i]!]!;
  return {
    images: scaled,
    labels: Int32Array.from(labels.data.subarray(0, count)),
    count,
    rows,
    cols,
  };
}

/**
 * Wraps a dataset as tensors: `x` is float32 `[count, rows * cols]` (flattened for an MLP) and
 * `y` int32 `[count]`. Dispose them when done. On the cpu backend the tensors may share memory
 * with the arrays, so do not modify the arrays afterwards.
 */
export function toTensors(dataset: ImageDataset): { x: tf.Tensor2D; y: tf.Tensor1D } {
  return {
    x: tf.tensor2d(dataset.images, [dataset.count, dataset.rows * dataset.cols], 'float32'),
    y: tf.tensor1d(dataset.labels, 'int32'),
  };
}

/**
 * A dataset's images and labels as tensors, the images as {@link ChunkedRows}: tensors of whole rows, each
 * small enough for the active backend to bind (on WebGPU, its device's
 * `maxStorageBufferBindingSize`; one tensor elsewhere). Use it for training data that may exceed
 * that limit, such as MNIST's 188 MB training set on a 128 MiB device. Dispose both when done.
 */
export function toChunkedTensors(
  dataset: ImageDataset,
  options: ChunkedRowsOptions = {},
): { x: ChunkedRows; y: tf.Tensor1D } {
  const x = ChunkedRows.fromArray(
    dataset.images,
    [dataset.count, dataset.rows * dataset.cols],
    options,
  );
  return { x, y: tf.tensor1d(dataset.labels, 'int32') };
}
