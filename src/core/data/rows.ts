import * as tf from '@tensorflow/tfjs-core';
import { maxTensorBytes } from '../backend/webgpu/device.js';
import { assertInteger, GradientRoutingError } from '../errors.js';

/*
 * A WebGPU device binds at most `maxStorageBufferBindingSize` bytes of one buffer to a kernel:
 * 128 MiB on Mesa's llvmpipe and on many integrated GPUs, while MNIST's training set alone is
 * 188 MB as float32. A tensor above the limit is created without complaint but every kernel that
 * reads it fails validation. So training data lives in several tensors of whole rows, each below
 * the limit, and a batch is gathered from the chunks its rows lie in.
 */

/** Options of {@link ChunkedRows.fromArray}. */
export interface ChunkedRowsOptions {
  /**
   * The most bytes one chunk may hold. Default: what the active backend can bind
   * (`maxStorageBufferBindingSize` on WebGPU; unlimited, so one chunk, elsewhere). Set it lower
   * to test chunking at small sizes.
   */
  maxChunkBytes?: number;
}

type RowDType = 'float32' | 'int32';

const BYTES_PER_ELEMENT = 4;

/**
 * Rows of a dataset (its first axis), held as one or more tensors of consecutive rows so that
 * none exceeds the device's binding limit. `fit`, `probeLatentSlices` and `perLabelErrors` take it
 * wherever they take a tensor of training or test inputs; a batch gathered from it is the same,
 * bit for bit, as one gathered from a single tensor. Dispose it when done.
 */
export class ChunkedRows {
  /** The shape of the whole data, rows first. */
  readonly shape: readonly number[];
  readonly dtype: RowDType;
  /** The tensors of consecutive rows, in order; every one but the last has `rowsPerChunk` rows. */
  readonly chunks: readonly tf.Tensor[];
  readonly rowsPerChunk: number;
  private disposed = false;

  private constructor(
    shape: readonly number[],
    dtype: RowDType,
    chunks: tf.Tensor[],
    rowsPerChunk: number,
  ) {
    this.shape = shape;
    this.dtype = dtype;
    this.chunks = chunks;
    this.rowsPerChunk = rowsPerChunk;
  }

  /** Number of dimensions, as a tensor's `rank`. */
  get rank(): number {
    return this.shape.length;
  }

  /**
   * Splits `values` (row after row, each row-major) of the given `shape` into chunks of whole
   * rows, each at most `maxChunkBytes`.
   *
   * @throws {@link GradientRoutingError} when `values` does not fill `shape`, or a single row is
   *   larger than the limit.
   */
  static fromArray(
    values: Float32Array | Int32Array,
    shape: readonly number[],
    options: ChunkedRowsOptions = {},
  ): ChunkedRows {
    const dtype: RowDType = values instanceof Int32Array ? 'int32' : 'float32';
    const rows = shape[0] ?? 0;
    const rowSize = shape.slice(1).reduce((product, size) => product * size, 1);
    if (shape.length === 0 || rows * rowSize !== values.length) {
      throw new GradientRoutingError(
        `${values.length} values do not fill the shape [${shape.join(', ')}]; give one row of ` +
          'values per example, row-major.',
      );
    }
    const maxChunkBytes = options.maxChunkBytes ?? maxTensorBytes();
    if (!(maxChunkBytes > 0)) {
      throw new GradientRoutingError(
        `maxChunkBytes must be a positive number, got ${maxChunkBytes}.`,
        'invalid-argument',
        maxChunkBytes,
      );
    }
    const rowBytes = Math.max(rowSize, 1) * BYTES_PER_ELEMENT;
    if (rowBytes > maxChunkBytes) {
      throw new GradientRoutingError(
        `one row of [${shape.join(', ')}] takes ${rowBytes} bytes, more than the ${maxChunkBytes} ` +
          'bytes one tensor may hold on this device; use smaller examples or another backend.',
      );
    }
    const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(maxChunkBytes / rowBytes)));
    const chunks: tf.Tensor[] = [];
    for (let start = 0; start < rows || chunks.length === 0; start += rowsPerChunk) {
      const count = Math.min(rowsPerChunk, rows - start);
      const part = values.subarray(start * rowSize, (start + count) * rowSize);
      chunks.push(tf.tensor(part, [count, ...shape.slice(1)], dtype));
    }
    return new ChunkedRows([...shape], dtype, chunks, rowsPerChunk);
  }

  /**
   * The rows at `indices`, in that order, as one tensor (the caller disposes it).
   *
   * @param indices - Row numbers on the host.
   * @param onDevice - The same indices as an int32 tensor, when the caller has them on the device
   *   already: with a single chunk they are used as they are, so nothing is uploaded.
   */
  gather(indices: Int32Array, onDevice?: tf.Tensor1D): tf.Tensor {
    this.assertUsable();
    if (this.chunks.length === 1) {
      return onDevice === undefined
        ? tf.tidy(() => tf.gather(this.chunks[0]!, tf.tensor1d(indices, 'int32')))
        : tf.gather(this.chunks[0]!, onDevice);
    }
    const rows = this.shape[0]!;
    const local: number[][] = this.chunks.map(() => []);
    const positions: number[][] = this.chunks.map(() => []);
    for (let i = 0; i < indices.length; i++) {
      const row = indices[i]!;
      if (!(row >= 0 && row < rows)) {
        throw new GradientRoutingError(
          `row ${row} is outside the ${rows} rows of this data.`,
          'invalid-argument',
          row,
        );
      }
      const chunk = Math.floor(row / this.rowsPerChunk);
      local[chunk]!.push(row - chunk * this.rowsPerChunk);
      positions[chunk]!.push(i);
    }
    // Rows come out grouped by chunk; one more gather puts them back in the order asked for,
    // so a batch is the same as from one tensor (gathers copy values exactly).
    const inverse = new Int32Array(indices.length);
    let grouped = 0;
    for (const chunkPositions of positions) {
      for (const position of chunkPositions) inverse[position] = grouped++;
    }
    return tf.tidy(() => {
      const parts = this.chunks.flatMap((chunk, c) =>
        local[c]!.length === 0 ? [] : [tf.gather(chunk, tf.tensor1d(local[c]!, 'int32'))],
      );
      const byChunk = parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
      return tf.gather(byChunk, tf.tensor1d(inverse, 'int32'));
    });
  }

  /** `size` consecutive rows from `start`, as one tensor (the caller disposes it). */
  slice(start: number, size: number): tf.Tensor {
    this.assertUsable();
    const rows = this.shape[0]!;
    assertInteger(start, 'start', 0);
    assertInteger(size, 'size');
    if (start + size > rows) {
      throw new GradientRoutingError(
        `rows ${start}..${start + size - 1} are outside the ${rows} rows of this data.`,
        'invalid-argument',
        start + size,
      );
    }
    return tf.tidy(() => {
      const parts: tf.Tensor[] = [];
      for (let row = start; row < start + size; ) {
        const chunk = Math.floor(row / this.rowsPerChunk);
        const offset = row - chunk * this.rowsPerChunk;
        const take = Math.min(this.rowsPerChunk - offset, start + size - row);
        const source = this.chunks[chunk]!;
        const begin = [offset, ...source.shape.slice(1).map(() => 0)];
        parts.push(tf.slice(source, begin, [take, ...source.shape.slice(1)]));
        row += take;
      }
      return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
    });
  }

  /** Whether {@link dispose} has been called. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees every chunk; later gathers and slices throw. Calling it again does nothing. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose([...this.chunks]);
  }

  private assertUsable(): void {
    if (this.disposed) {
      throw new GradientRoutingError(
        'these ChunkedRows were disposed; keep them until training and evaluation are done.',
        'disposed',
      );
    }
  }
}

/** Rows of data: one tensor, or {@link ChunkedRows} for data above a device's binding limit. */
export type Rows = tf.Tensor | ChunkedRows;

/** The rows at host `indices` (also given on the device as `onDevice`), as one tensor. */
export function gatherRows(rows: Rows, indices: Int32Array, onDevice: tf.Tensor1D): tf.Tensor {
  return rows instanceof ChunkedRows ? rows.gather(indices, onDevice) : tf.gather(rows, onDevice);
}

/** `size` consecutive rows of `rows` from `start`, as one tensor. */
export function sliceRows(rows: Rows, start: number, size: number): tf.Tensor {
  if (rows instanceof ChunkedRows) return rows.slice(start, size);
  return tf.slice(
    rows,
    [start, ...rows.shape.slice(1).map(() => 0)],
    [size, ...rows.shape.slice(1)],
  );
}
