// Training data in chunks below a device's binding limit: a batch gathered from chunks is the one
// gathered from a single tensor, so training, evaluation and probes give the same numbers.
// The limit is lowered to a few rows so that the chunking is exercised on cpu.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkGpuErrors,
  maxTensorBytes,
  watchGpuErrors,
} from '../src/core/backend/webgpu/device.js';
import { toChunkedTensors, toTensors } from '../src/core/data/dataset.js';
import { ChunkedRows, gatherRows, sliceRows } from '../src/core/data/rows.js';
import { Autoencoder } from '../src/core/models/autoencoder.js';
import { torchAdam } from '../src/core/optim/adam.js';
import { perLabelErrors } from '../src/core/probing/evaluate.js';
import { probeLatentSlices } from '../src/core/probing/probe.js';
import { fit as fitModel } from '../src/core/training/fit.js';
import { GradientRoutingError } from '../src/index.js';
import { expectNoLeak, useBackend } from './helpers/backends.js';
import { columnBlockImages } from './helpers/random.js';

/** Rows of `columns` values, row r holding r·1000 + column, so a wrong row or order shows. */
function numberedRows(count: number, columns: number): Float32Array {
  const values = new Float32Array(count * columns);
  for (let r = 0; r < count; r++) {
    for (let c = 0; c < columns; c++) values[r * columns + c] = r * 1000 + c;
  }
  return values;
}

const ROW_BYTES = 3 * 4;

beforeAll(async () => {
  await useBackend('cpu');
});

describe('ChunkedRows', () => {
  it('splits into chunks of whole rows no larger than the limit', () => {
    const rows = ChunkedRows.fromArray(numberedRows(10, 3), [10, 3], {
      maxChunkBytes: 4 * ROW_BYTES + 5,
    });
    expect(rows.rowsPerChunk).toBe(4);
    expect(rows.chunks.map((chunk) => chunk.shape)).toEqual([
      [4, 3],
      [4, 3],
      [2, 3],
    ]);
    expect(rows.shape).toEqual([10, 3]);
    expect(rows.rank).toBe(2);
    rows.dispose();
    expect(rows.isDisposed).toBe(true);
  });

  it('is one tensor when no limit applies (cpu has none)', () => {
    expect(maxTensorBytes()).toBe(Number.POSITIVE_INFINITY);
    const rows = ChunkedRows.fromArray(numberedRows(10, 3), [10, 3]);
    expect(rows.chunks).toHaveLength(1);
    rows.dispose();
  });

  it('gathers any rows, repeated and across chunks, in the order asked, as one tensor would', async () => {
    const values = numberedRows(10, 3);
    const whole = tf.tensor2d(values, [10, 3]);
    const chunked = ChunkedRows.fromArray(values, [10, 3], { maxChunkBytes: 3 * ROW_BYTES });
    expect(chunked.chunks).toHaveLength(4);
    const orders = [[9, 0, 3, 3, 7, 1, 8, 2], [5], [2, 1, 0], [9, 9, 9]];
    await expectNoLeak(async () => {
      for (const order of orders) {
        const host = Int32Array.from(order);
        const onDevice = tf.tensor1d(host, 'int32');
        const expected = tf.gather(whole, onDevice);
        const got = gatherRows(chunked, host, onDevice);
        expect(got.shape).toEqual([order.length, 3]);
        expect(Array.from(await got.data())).toEqual(Array.from(await expected.data()));
        tf.dispose([onDevice, expected, got]);
      }
    });
    expect(() => chunked.gather(Int32Array.from([10]))).toThrow(/row 10 is outside the 10 rows/);
    tf.dispose(whole);
    chunked.dispose();
  });

  it('slices consecutive rows across chunk boundaries', async () => {
    const values = numberedRows(10, 3);
    const whole = tf.tensor2d(values, [10, 3]);
    const chunked = ChunkedRows.fromArray(values, [10, 3], { maxChunkBytes: 3 * ROW_BYTES });
    await expectNoLeak(async () => {
      for (const [start, size] of [
        [0, 10],
        [2, 5],
        [3, 3],
        [9, 1],
        [4, 1],
      ] as const) {
        const got = sliceRows(chunked, start, size);
        const expected = sliceRows(whole, start, size);
        expect(Array.from(await got.data())).toEqual(Array.from(await expected.data()));
        tf.dispose([got, expected]);
      }
    });
    expect(() => chunked.slice(8, 3)).toThrow(/rows 8\.\.10 are outside the 10 rows/);
    tf.dispose(whole);
    chunked.dispose();
  });

  it('keeps int32 rows of any rank, e.g. token ids [N, T]', async () => {
    const tokens = Int32Array.from({ length: 5 * 4 }, (_, i) => i);
    const rows = ChunkedRows.fromArray(tokens, [5, 4], { maxChunkBytes: 2 * 4 * 4 });
    expect(rows.dtype).toBe('int32');
    const got = rows.gather(Int32Array.from([4, 0]));
    expect(got.dtype).toBe('int32');
    expect(Array.from(await got.data())).toEqual([16, 17, 18, 19, 0, 1, 2, 3]);
    tf.dispose(got);
    rows.dispose();
  });

  it('says what is wrong with its input, and refuses use after dispose', () => {
    expect(() => ChunkedRows.fromArray(new Float32Array(7), [2, 3])).toThrow(
      /7 values do not fill the shape \[2, 3\]/,
    );
    expect(() => ChunkedRows.fromArray(new Float32Array(6), [2, 3], { maxChunkBytes: 8 })).toThrow(
      /one row of \[2, 3\] takes 12 bytes, more than the 8 bytes/,
    );
    expect(() => ChunkedRows.fromArray(new Float32Array(6), [2, 3], { maxChunkBytes: 0 })).toThrow(
      GradientRoutingError,
    );
    const rows = ChunkedRows.fromArray(new Float32Array(6), [2, 3]);
    rows.dispose();
    expect(() => rows.slice(0, 1)).toThrow(/disposed/);
  });
});

describe('training and evaluation on chunked data', () => {
  const dataset = columnBlockImages(50, 3);
  const features = 36;
  // 7 rows per chunk: 50 rows make 8 chunks, and every batch spans several.
  const smallChunks = { maxChunkBytes: 7 * features * 4 };

  function autoencoder(): Autoencoder {
    return new Autoencoder({ inputDim: features, hidden: [12], latentDim: 4, seed: 5 });
  }

  async function train(chunked: boolean) {
    const model = autoencoder();
    const optimizer = torchAdam({ learningRate: 1e-2 });
    const { x, y } = chunked ? toChunkedTensors(dataset, smallChunks) : toTensors(dataset);
    const seenIndices: number[][] = [];
    const result = await fitModel(
      (batch) => {
        seenIndices.push(Array.from(batch.indices.dataSync()));
        return tf.tidy(() => {
          const z = model.encode(batch.x as tf.Tensor2D);
          return tf.mean(tf.abs(tf.sub(model.decode(z), batch.x))) as tf.Scalar;
        });
      },
      model.trainableVariables,
      optimizer,
      { x, labels: y },
      { epochs: 2, batchSize: 16, seed: 4, lossEvery: 1 },
    );
    const weights = await Promise.all(model.trainableVariables.map((v) => v.data()));
    tf.dispose(y);
    x.dispose();
    optimizer.dispose();
    return { model, losses: result.losses.map((point) => point.loss), seenIndices, weights };
  }

  it('fit trains to the same losses and weights, bit for bit, and leaks nothing', async () => {
    let plain: Awaited<ReturnType<typeof train>> | undefined;
    let chunked: Awaited<ReturnType<typeof train>> | undefined;
    await expectNoLeak(async () => {
      plain = await train(false);
      chunked = await train(true);
      plain.model.dispose();
      chunked.model.dispose();
    });
    expect(chunked!.losses).toHaveLength(8);
    expect(chunked!.losses).toEqual(plain!.losses);
    expect(chunked!.seenIndices).toEqual(plain!.seenIndices);
    chunked!.weights.forEach((values, i) => {
      expect(Array.from(values)).toEqual(Array.from(plain!.weights[i]!));
    });
    // Training moved the weights: the comparison is not between two untouched models.
    expect(chunked!.losses.at(-1)!).toBeLessThan(chunked!.losses[0]!);
  });

  it('fit checks chunked labels chunk by chunk', async () => {
    const model = autoencoder();
    const optimizer = torchAdam();
    const x = ChunkedRows.fromArray(dataset.images, [50, features], smallChunks);
    const labels = ChunkedRows.fromArray(dataset.labels, [50], { maxChunkBytes: 20 * 4 });
    const checked: number[] = [];
    await fitModel(
      (batch) => tf.mean(model.encode(batch.x as tf.Tensor2D)) as tf.Scalar,
      model.trainableVariables,
      optimizer,
      { x, labels },
      { epochs: 1, batchSize: 25, checkLabels: (chunk) => void checked.push(chunk.shape[0]!) },
    );
    expect(checked).toEqual([20, 20, 10]);
    model.dispose();
    optimizer.dispose();
    x.dispose();
    labels.dispose();
  });

  it('perLabelErrors and the probes give the same numbers on chunks', async () => {
    const model = autoencoder();
    const { x: plainX } = toTensors(dataset);
    const chunkedX = ChunkedRows.fromArray(dataset.images, [50, features], smallChunks);
    await expectNoLeak(async () => {
      const options = { numClasses: 3, batchSize: 9 };
      const plainErrors = await perLabelErrors(model, plainX, dataset.labels, options);
      const chunkedErrors = await perLabelErrors(model, chunkedX, dataset.labels, options);
      expect(chunkedErrors).toEqual(plainErrors);
      const probe = (trainX: tf.Tensor2D | ChunkedRows) =>
        probeLatentSlices({
          encode: (batch) => model.encode(batch),
          trainX,
          testX: trainX,
          testLabels: dataset.labels,
          slices: [
            [0, 2],
            [2, 4],
          ],
          partition: [[0], [1, 2]],
          hidden: [8],
          epochs: 2,
          batchSize: 16,
          evalBatchSize: 11,
        });
      const plainProbe = await probe(plainX);
      const chunkedProbe = await probe(chunkedX);
      expect(chunkedProbe).toEqual(plainProbe);
      expect(plainProbe.slices[0]!.perLabelMae.every(Number.isFinite)).toBe(true);
    });
    model.dispose();
    plainX.dispose();
    chunkedX.dispose();
  });
});

describe('GPU error checks off WebGPU', () => {
  it('watch nothing and never throw on cpu', () => {
    expect(watchGpuErrors()).toBe(false);
    expect(() => checkGpuErrors()).not.toThrow();
  });
});
