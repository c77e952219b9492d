import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { type ProbeOptions, probeLatentSlices } from '../src/core/probing/probe.js';
import { perLabelMeans, splitRatio, splitRatios } from '../src/core/probing/split.js';
import { seededPermutation, seededRandom } from '../src/core/util/random.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

describe('seededPermutation', () => {
  it('is a permutation, reproducible from the seed and different across seeds', () => {
    const a = seededPermutation(100, 7);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(seededPermutation(100, 7)).toEqual(a);
    expect(seededPermutation(100, 8)).not.toEqual(a);
    // A stream gives a different permutation each draw, the same sequence for the same seed.
    const r1 = seededRandom(3);
    const r2 = seededRandom(3);
    const first = seededPermutation(20, r1);
    expect(seededPermutation(20, r1)).not.toEqual(first);
    expect(seededPermutation(20, r2)).toEqual(first);
    expect(() => seededPermutation(-1, 0)).toThrow(/gradient-routing: a permutation length/);
  });
});

describe('split ratio arithmetic', () => {
  it('averages per label, NaN where a label has no examples', () => {
    expect(perLabelMeans([1, 3, 10, 2, 4], [0, 0, 1, 2, 2], 4)).toEqual([2, 10, 3, Number.NaN]);
    expect(() => perLabelMeans([1, 2], [0, 5], 3)).toThrow(/example 1 has label 5, outside 0\.\.2/);
    expect(() => perLabelMeans([1, 2], [0], 3)).toThrow(/2 values and 1 labels/);
  });

  it('divides the mean over the other labels by the mean over its own (summarize.py)', () => {
    expect(
      splitRatio(
        [1, 1, 3, 3],
        [
          [0, 1],
          [2, 3],
        ],
        0,
      ),
    ).toEqual({ own: 1, other: 3, ratio: 3 });
    expect(
      splitRatio(
        [1, 1, 3, 3],
        [
          [0, 1],
          [2, 3],
        ],
        1,
      ),
    ).toEqual({
      own: 3,
      other: 1,
      ratio: 1 / 3,
    });
    // Unequal groups: each label weighs the same.
    const unequal = splitRatio([1, 2, 4, 5], [[0], [1, 2, 3]], 1);
    expect(unequal.own).toBeCloseTo(11 / 3, 12);
    expect(unequal.other).toBe(1);
    // Three groups: "other" is every label outside the own group.
    const three = splitRatio([1, 2, 3, 4, 5, 6], [[0], [1, 2], [3, 4, 5]], 1);
    expect(three).toEqual({ own: 2.5, other: 4, ratio: 1.6 });
    const both = splitRatios(
      [
        [1, 1, 3, 3],
        [4, 4, 2, 2],
      ],
      [
        [0, 1],
        [2, 3],
      ],
    );
    expect(both.map((r) => r.ratio)).toEqual([3, 2]);
  });

  it('rejects partitions that do not split the labels, and undefined errors', () => {
    const table = [1, 1, 3, 3];
    expect(() => splitRatio(table, [[0, 1], []], 0)).toThrow(
      /group 1 of the label partition is empty/,
    );
    expect(() => splitRatio(table, [[0, 1], [2]], 0)).toThrow(/label 3 is in no group/);
    expect(() =>
      splitRatio(
        table,
        [
          [0, 1],
          [2, 3, 4],
        ],
        0,
      ),
    ).toThrow(/label 4 in group 1/);
    expect(() =>
      splitRatio(
        table,
        [
          [0, 1, 2],
          [2, 3],
        ],
        0,
      ),
    ).toThrow(/label 2 is in groups 0 and 1/);
    expect(() => splitRatio(table, [[0, 1, 2, 3]], 0)).toThrow(/at least 2 groups/);
    expect(() =>
      splitRatio(
        table,
        [
          [0, 1],
          [2, 3],
        ],
        2,
      ),
    ).toThrow(/own group 2 is not a group/);
    expect(() =>
      splitRatio(
        [1, Number.NaN, 3, 3],
        [
          [0, 1],
          [2, 3],
        ],
        0,
      ),
    ).toThrow(/per-label error of label 1 is NaN/);
    expect(() =>
      splitRatios(
        [table],
        [
          [0, 1],
          [2, 3],
        ],
        [0, 1],
      ),
    ).toThrow(/1 rows .* 2 owner/);
  });
});

const LATENT = 8;
const HALF = 4;
const EXTRA = 12;

/**
 * Inputs `x = [z, tanh(z P)]` (the latent followed by a random nonlinear view of it); the
 * encoder just reads `z` back. With `separated`, labels 0-1 only use latent dims 0-3 (the rest
 * are 0) and labels 2-3 only dims 4-7, so each half knows only its own group. Otherwise every
 * example uses all dims and labels are assigned at random.
 */
function syntheticData(n: number, seed: number, separated: boolean) {
  // The same projection for every split: train and test come from one distribution.
  const fixed = seededRandom(99);
  const projection = Array.from({ length: LATENT * EXTRA }, () => 2 * fixed() - 1);
  const random = seededRandom(seed);
  const x = new Float32Array(n * (LATENT + EXTRA));
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = i % 4;
    labels[i] = label;
    const z = Array.from({ length: LATENT }, () => 2 * random() - 1);
    if (separated) {
      const unused = label < 2 ? [HALF, LATENT] : [0, HALF];
      for (let j = unused[0]!; j < unused[1]!; j++) z[j] = 0;
    }
    const row = i * (LATENT + EXTRA);
    for (let j = 0; j < LATENT; j++) x[row + j] = z[j]!;
    for (let k = 0; k < EXTRA; k++) {
      let s = 0;
      for (let j = 0; j < LATENT; j++) s += z[j]! * projection[j * EXTRA + k]!;
      x[row + LATENT + k] = Math.tanh(s);
    }
  }
  return { x: tf.tensor2d(x, [n, LATENT + EXTRA]), labels };
}

const encode = (x: tf.Tensor2D): tf.Tensor2D => tf.slice(x, [0, 0], [-1, LATENT]);

function baseOptions(separated: boolean): ProbeOptions & { dispose(): void } {
  const train = syntheticData(512, 1, separated);
  const test = syntheticData(256, 2, separated);
  return {
    encode,
    trainX: train.x,
    testX: test.x,
    testLabels: test.labels,
    slices: [
      [0, HALF],
      [HALF, LATENT],
    ],
    partition: [
      [0, 1],
      [2, 3],
    ],
    hidden: [32],
    epochs: 6,
    batchSize: 32,
    learningRate: 1e-2,
    seed: 0,
    dispose() {
      tf.dispose([train.x, test.x]);
    },
  };
}

describe.each(TEST_BACKENDS)('probeLatentSlices on %s', (backend) => {
  it('finds the split when each latent half encodes only its own group', async () => {
    await useBackend(backend);
    const options = baseOptions(true);
    let result: Awaited<ReturnType<typeof probeLatentSlices>> | undefined;
    await expectNoLeak(async () => {
      result = await probeLatentSlices(options);
    });
    const [a, b] = result!.slices;
    expect(a!.ratio).toBeGreaterThan(1.5);
    expect(b!.ratio).toBeGreaterThan(1.5);
    expect(a!.perLabelMae).toHaveLength(4);
    expect(a!.ownGroup).toBe(0);
    expect(b!.ownGroup).toBe(1);
    options.dispose();
  });

  it('finds no split when the latent is unrelated to the groups', async () => {
    await useBackend(backend);
    const options = baseOptions(false);
    const { slices } = await probeLatentSlices(options);
    for (const slice of slices) {
      expect(slice.ratio).toBeGreaterThan(0.8);
      expect(slice.ratio).toBeLessThan(1.25);
    }
    options.dispose();
  });

  it('is reproducible from the seed, reports progress and never trains the encoder', async () => {
    await useBackend(backend);
    const options = baseOptions(true);
    const encoderWeight = tf.variable(
      tf.tidy(() => tf.slice(tf.eye(LATENT + 4), [0, 0], [-1, LATENT])),
    );
    const progress: Array<[number, number]> = [];
    const encodedBatches: number[] = [];
    const trainable = {
      ...options,
      slices: [[0, HALF]] as const,
      epochs: 2,
      // A linear encoder with a variable: a probe must leave it untouched.
      encode: (x: tf.Tensor2D): tf.Tensor2D => {
        encodedBatches.push(x.shape[0]);
        return tf.matMul(tf.slice(x, [0, 0], [-1, LATENT + 4]), encoderWeight);
      },
      evalBatchSize: 200,
      onProgress: (p: { slice: number; epoch: number; loss: number }) => {
        expect(Number.isFinite(p.loss)).toBe(true);
        progress.push([p.slice, p.epoch]);
      },
    };
    const before = Array.from(encoderWeight.dataSync());
    const first = await probeLatentSlices(trainable);
    const again = await probeLatentSlices({ ...trainable, onProgress: undefined });
    const other = await probeLatentSlices({ ...trainable, seed: 5, onProgress: undefined });
    expect(progress).toEqual([
      [0, 1],
      [0, 2],
    ]);
    expect(again.slices[0]!.perLabelMae).toEqual(first.slices[0]!.perLabelMae);
    // Encoded once per run, in batches: 512 train rows and 256 test rows per run.
    expect(encodedBatches.slice(0, 5)).toEqual([200, 200, 112, 200, 56]);
    expect(encodedBatches).toHaveLength(15);
    expect(other.slices[0]!.perLabelMae).not.toEqual(first.slices[0]!.perLabelMae);
    expect(Array.from(encoderWeight.dataSync())).toEqual(before);
    encoderWeight.dispose();
    options.dispose();
  });

  it('works with three unequal groups and any slices', async () => {
    await useBackend(backend);
    const options = baseOptions(true);
    const { slices } = await probeLatentSlices({
      ...options,
      slices: [
        [0, HALF],
        [HALF, LATENT],
        [0, LATENT],
      ],
      partition: [[0, 1], [2], [3]],
      owners: [0, 1, 2],
      epochs: 3,
    });
    expect(slices).toHaveLength(3);
    // Dims 0-3 know labels 0-1 only; the other labels (2, 3) are all unknown to them.
    expect(slices[0]!.ratio).toBeGreaterThan(1.5);
    // The full latent owns label 3 but also knows labels 0-2, so it shows no split.
    expect(slices[2]!.ratio).toBeLessThan(1.3);
    expect(slices[2]!.region).toEqual([0, LATENT]);
    options.dispose();
  });

  it('rejects bad slices, labels and partitions before training', async () => {
    await useBackend(backend);
    const options = baseOptions(true);
    await expectNoLeak(async () => {
      await expect(probeLatentSlices({ ...options, slices: [[4, 10]] })).rejects.toThrow(
        /gradient-routing: region \[4, 10\) is out of bounds or empty; regions must satisfy 0 <= start < end <= 8/,
      );
      const labels = Int32Array.from(options.testLabels as Int32Array);
      labels[3] = 7;
      await expect(probeLatentSlices({ ...options, testLabels: labels })).rejects.toThrow(
        /test example 3 has label 7, which is in no group of the partition/,
      );
      await expect(
        probeLatentSlices({ ...options, partition: [[0, 1, 2, 3], []] }),
      ).rejects.toThrow(/group 1 of the label partition is empty/);
      await expect(
        probeLatentSlices({
          ...options,
          partition: [
            [0, 1],
            [2, 3, 4],
          ],
        }),
      ).rejects.toThrow(/label 4 of the partition has no test examples/);
      await expect(probeLatentSlices({ ...options, owners: [0, 2] })).rejects.toThrow(
        /owner group 2 is not a group/,
      );
      await expect(probeLatentSlices({ ...options, epochs: 0 })).rejects.toThrow(
        /option epochs must be a positive integer/,
      );
    });
    options.dispose();
  });
});
