import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { correlationPenalty, latentL1 } from '../src/core/losses/latent.js';
import {
  groupedMeanAbsoluteError,
  groupMeanAbsoluteErrors,
  meanAbsoluteError,
  perExampleMeanAbsoluteError,
} from '../src/core/losses/mae.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

type Matrix = number[][];

/** The reference's `corr_penalty` in plain float64 JS, with dead dims standardised to 0. */
function referenceCorrelation(z: Matrix, a: [number, number], b: [number, number]): number {
  const n = z.length;
  const d = z[0]!.length;
  const zn: Matrix = z.map((row) => row.slice());
  for (let j = 0; j < d; j++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += z[i]![j]! / n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (z[i]![j]! - mean) ** 2;
    const std = Math.sqrt(ss / (n - 1)); // unbiased, as torch.std
    for (let i = 0; i < n; i++) zn[i]![j] = std > 0 ? (z[i]![j]! - mean) / std : 0;
  }
  let total = 0;
  let count = 0;
  for (let p = a[0]; p < a[1]; p++) {
    for (let q = b[0]; q < b[1]; q++) {
      let c = 0;
      for (let i = 0; i < n; i++) c += zn[i]![p]! * zn[i]![q]!;
      total += Math.abs(c / n); // divides by n, not n - 1
      count++;
    }
  }
  return total / count;
}

function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

describe.each(TEST_BACKENDS)('losses on %s', (backend) => {
  it('meanAbsoluteError is the mean of |pred - target| over all elements', async () => {
    await useBackend(backend);
    const pred = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const target = tf.tensor2d([
      [0, 4],
      [3, 0],
    ]);
    await expectNoLeak(() => {
      const loss = meanAbsoluteError(pred, target);
      expect(loss.rank).toBe(0);
      expect(loss.dataSync()[0]).toBeCloseTo((1 + 2 + 0 + 4) / 4, 6);
      loss.dispose();
    });
    expect(() => meanAbsoluteError(pred, tf.zeros([2, 1]))).toThrow(
      /gradient-routing: meanAbsoluteError needs pred and target of the same shape, got \[2,2\] and \[2,1\]/,
    );
    tf.dispose([pred, target]);
  });

  it('perExampleMeanAbsoluteError averages every non-batch axis', async () => {
    await useBackend(backend);
    const pred = tf.tensor3d([
      [
        [1, 1],
        [1, 1],
      ],
      [
        [0, 2],
        [4, 6],
      ],
    ]);
    const target = tf.zeros([2, 2, 2]);
    await expectNoLeak(() => {
      const perExample = perExampleMeanAbsoluteError(pred, target);
      expect(perExample.shape).toEqual([2]);
      expect(values(perExample)).toEqual([1, 3]);
      perExample.dispose();
    });
    tf.dispose([pred, target]);
  });

  it('the mean absolute errors have the gradient of mean(|d|) built from stock ops, bit for bit', async () => {
    await useBackend(backend);
    // Residuals of every sign and some exactly 0, over odd sizes so 1/N is not exact.
    const pred = tf.tensor3d(
      Array.from({ length: 3 * 7 * 5 }, (_, i) => ((i * 37) % 11) / 3 - 1),
      [3, 7, 5],
    );
    const target = tf.tensor3d(
      Array.from({ length: 3 * 7 * 5 }, (_, i) => ((i * 13) % 7) / 3 - 1),
      [3, 7, 5],
    );
    const weights = tf.tensor1d([0.3, -1.7, 2.9]);
    const stockAbs = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([x]);
      return {
        value: tf.abs(x),
        gradFunc: (dy: tf.Tensor, [s]: tf.Tensor[]) => tf.mul(dy, tf.sign(s!)),
      };
    });
    const bits = async (t: tf.Tensor) => Array.from(new Uint32Array((await t.data()).buffer));
    await expectNoLeak(async () => {
      const cases: Array<[(p: tf.Tensor) => tf.Tensor, (p: tf.Tensor) => tf.Tensor]> = [
        [(p) => meanAbsoluteError(p, target), (p) => tf.mean(stockAbs(tf.sub(p, target)))],
        [
          (p) => tf.sum(tf.mul(perExampleMeanAbsoluteError(p, target), weights)),
          (p) => tf.sum(tf.mul(tf.mean(stockAbs(tf.sub(p, target)), [1, 2]), weights)),
        ],
      ];
      for (const [ours, stock] of cases) {
        const [a, b] = [tf.grad(ours)(pred), tf.grad(stock)(pred)];
        expect(await bits(a)).toEqual(await bits(b));
        // Not trivially equal: the gradient has both signs and zeros.
        const values = Array.from(await a.data());
        expect([values.some((v) => v > 0), values.some((v) => v < 0), values.includes(0)]).toEqual([
          true,
          true,
          true,
        ]);
        tf.dispose([a, b]);
      }
    });
    tf.dispose([pred, target, weights]);
  });

  describe('grouped MAE', () => {
    // Example errors |pred - target| per feature; labels pick groups.
    const pred = [
      [1, 1, 1],
      [2, 0, 2],
      [0, 0, 3],
      [5, 5, 5],
      [1, 2, 3],
    ];
    const target = [
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
      [1, 1, 1],
      [3, 2, 1],
    ];
    const group = [0, 1, 0, 1, 0];

    /** `mae(pred[group == g], target[group == g])` computed literally, by selecting rows. */
    function reference(g: number): number {
      const rows = pred.map((_, i) => i).filter((i) => group[i] === g);
      if (rows.length === 0) return 0;
      let sum = 0;
      for (const i of rows) {
        for (let j = 0; j < 3; j++) sum += Math.abs(pred[i]![j]! - target[i]![j]!);
      }
      return sum / (rows.length * 3);
    }

    it('gives each group the mean over its own examples, in all membership forms', async () => {
      await useBackend(backend);
      const p = tf.tensor2d(pred);
      const t = tf.tensor2d(target);
      const indices = tf.tensor1d(group, 'int32');
      const weights = tf.tensor2d(group.map((g) => [g === 0 ? 1 : 0, g === 1 ? 1 : 0]));
      const low = tf.tensor1d(group.map((g) => (g === 0 ? 1 : 0)));
      const expected = [reference(0), reference(1)];
      await expectNoLeak(() => {
        const fromIndices = groupMeanAbsoluteErrors(p, t, indices, { numGroups: 2 });
        const fromWeights = groupMeanAbsoluteErrors(p, t, weights);
        const fromOne = groupMeanAbsoluteErrors(p, t, low);
        const total = groupedMeanAbsoluteError(p, t, indices, { numGroups: 2 });
        for (const [i, v] of values(fromIndices).entries()) expect(v).toBeCloseTo(expected[i]!, 6);
        for (const [i, v] of values(fromWeights).entries()) expect(v).toBeCloseTo(expected[i]!, 6);
        expect(fromOne.shape).toEqual([1]);
        expect(fromOne.dataSync()[0]).toBeCloseTo(expected[0]!, 6);
        expect(total.dataSync()[0]).toBeCloseTo(expected[0]! + expected[1]!, 6);
        tf.dispose([fromIndices, fromWeights, fromOne, total]);
      });
      tf.dispose([p, t, indices, weights, low]);
    });

    it('gives an empty group exactly 0 and a finite zero gradient', async () => {
      await useBackend(backend);
      const p = tf.tensor2d(pred);
      const t = tf.tensor2d(target);
      const indices = tf.tensor1d(group, 'int32');
      await expectNoLeak(() => {
        // Group 2 has no examples.
        const perGroup = groupMeanAbsoluteErrors(p, t, indices, { numGroups: 3 });
        expect(values(perGroup)[2]).toBe(0);
        expect(values(perGroup)[0]).toBeCloseTo(reference(0), 6);
        const onlyEmpty = tf.tensor1d([0, 0, 0, 0, 0]);
        const grad = tf.grad((x: tf.Tensor) => groupedMeanAbsoluteError(x, t, onlyEmpty))(p);
        expect(values(grad).every((v) => v === 0)).toBe(true);
        tf.dispose([perGroup, onlyEmpty, grad]);
      });
      tf.dispose([p, t, indices]);
    });

    it('keeps a NaN prediction of one group out of the other group', async () => {
      await useBackend(backend);
      const bad = pred.map((row) => row.slice());
      bad[1]![0] = Number.NaN; // example 1 is in group 1
      const p = tf.tensor2d(bad);
      const t = tf.tensor2d(target);
      const indices = tf.tensor1d(group, 'int32');
      const perGroup = groupMeanAbsoluteErrors(p, t, indices, { numGroups: 2 });
      expect(values(perGroup)[0]).toBeCloseTo(reference(0), 6);
      expect(Number.isNaN(values(perGroup)[1])).toBe(true);
      const grad = tf.grad((x: tf.Tensor) =>
        tf.sum(tf.slice(groupMeanAbsoluteErrors(x, t, indices, { numGroups: 2 }), 0, 1)),
      )(p);
      expect(values(grad).every(Number.isFinite)).toBe(true);
      tf.dispose([p, t, indices, perGroup, grad]);
    });

    it('has the gradient of the selected-rows loss', async () => {
      await useBackend(backend);
      const p = tf.tensor2d(pred);
      const t = tf.tensor2d(target);
      const indices = tf.tensor1d(group, 'int32');
      const grad = tf.grad((x: tf.Tensor) =>
        groupedMeanAbsoluteError(x, t, indices, { numGroups: 2 }),
      )(p);
      // d/dpred of mae(pred[g], x[g]) = sign(pred - x) / (count_g * features), with PyTorch's
      // sign(0) = 0 at the exactly-zero residuals of this data.
      const counts = [3, 2];
      const expected = pred.flatMap((row, i) =>
        row.map((v, j) => Math.sign(v - target[i]![j]!) / (counts[group[i]!]! * 3)),
      );
      const got = values(grad);
      for (const [i, v] of expected.entries()) expect(got[i]).toBeCloseTo(v, 6);
      tf.dispose([p, t, indices, grad]);
    });

    it('rejects membership that does not fit', async () => {
      await useBackend(backend);
      const p = tf.zeros([3, 2]);
      const wrongLength = tf.tensor1d([1, 0]);
      const noCount = tf.tensor1d([0, 1, 0], 'int32');
      expect(() => groupMeanAbsoluteErrors(p, p, wrongLength)).toThrow(
        /gradient-routing: .*membership of shape \[2\] for a batch of 3/,
      );
      expect(() => groupMeanAbsoluteErrors(p, p, noCount)).toThrow(/options\.numGroups/);
      tf.dispose([p, wrongLength, noCount]);
    });
  });

  it('latentL1 is |z[:, region]|.mean(0).sum()', async () => {
    await useBackend(backend);
    const z = tf.tensor2d([
      [1, -2, 3, -4],
      [-1, 0, 1, 2],
    ]);
    await expectNoLeak(() => {
      const half = latentL1(z, [0, 2]);
      const both = latentL1(z, [
        [0, 1],
        [2, 4],
      ]);
      const all = latentL1(z);
      // mean(0) of |z| = [1, 1, 2, 3]
      expect(half.dataSync()[0]).toBeCloseTo(2, 6);
      expect(both.dataSync()[0]).toBeCloseTo(6, 6);
      // The seed notebook's |z|.sum() / B.
      expect(all.dataSync()[0]).toBeCloseTo(14 / 2, 6);
      tf.dispose([half, both, all]);
    });
    expect(() => latentL1(z, [2, 6])).toThrow(/gradient-routing: region \[2, 6\)/);
    z.dispose();
  });

  describe('correlationPenalty', () => {
    const z = [
      [0.5, -1.2, 2.0, 0.3],
      [1.5, 0.4, -0.7, 1.1],
      [-0.3, 0.9, 0.2, -2.2],
      [2.1, -0.5, 1.3, 0.6],
      [0.0, 1.7, -1.1, 0.9],
    ];

    it('matches the reference formula (unbiased std, divide by n)', async () => {
      await useBackend(backend);
      const zt = tf.tensor2d(z);
      await expectNoLeak(() => {
        const penalty = correlationPenalty(zt, [0, 2], [2, 4]);
        expect(penalty.dataSync()[0]).toBeCloseTo(referenceCorrelation(z, [0, 2], [2, 4]), 5);
        penalty.dispose();
      });
      zt.dispose();
    });

    it('gives (n-1)/n for perfectly correlated dims', async () => {
      await useBackend(backend);
      const zt = tf.tensor2d([
        [1, 2],
        [2, 4],
        [3, 6],
      ]);
      const penalty = correlationPenalty(zt, [0, 1], [1, 2]);
      expect(penalty.dataSync()[0]).toBeCloseTo(2 / 3, 5);
      tf.dispose([zt, penalty]);
    });

    it('has the gradient of the reference formula', async () => {
      await useBackend(backend);
      const zt = tf.tensor2d(z);
      const grad = tf.grad((x: tf.Tensor) => correlationPenalty(x, [0, 2], [2, 4]))(zt);
      const got = values(grad);
      const h = 1e-5;
      for (let i = 0; i < z.length; i++) {
        for (let j = 0; j < 4; j++) {
          const up = z.map((row) => row.slice());
          const down = z.map((row) => row.slice());
          up[i]![j]! += h;
          down[i]![j]! -= h;
          const numeric =
            (referenceCorrelation(up, [0, 2], [2, 4]) -
              referenceCorrelation(down, [0, 2], [2, 4])) /
            (2 * h);
          expect(got[i * 4 + j]).toBeCloseTo(numeric, 3);
        }
      }
      tf.dispose([zt, grad]);
    });

    it('treats a dead (constant) unit as uncorrelated, with a finite gradient', async () => {
      await useBackend(backend);
      const dead = z.map((row) => [row[0]!, 0, row[2]!, row[3]!]);
      const zt = tf.tensor2d(dead);
      await expectNoLeak(() => {
        const penalty = correlationPenalty(zt, [0, 2], [2, 4]);
        const value = penalty.dataSync()[0]!;
        expect(Number.isFinite(value)).toBe(true);
        expect(value).toBeCloseTo(referenceCorrelation(dead, [0, 2], [2, 4]), 5);
        const grad = tf.grad((x: tf.Tensor) => correlationPenalty(x, [0, 2], [2, 4]))(zt);
        expect(values(grad).every(Number.isFinite)).toBe(true);
        tf.dispose([penalty, grad]);
      });
      zt.dispose();
    });

    it('adds epsilon to the standard deviation', async () => {
      await useBackend(backend);
      const zt = tf.tensor2d([
        [1, 2],
        [2, 4],
        [3, 6],
      ]);
      // std of the columns: 1 and 2; c = sum(zn_a * zn_b) / n with zn = centered / (std + eps).
      const eps = 1;
      const expected = (1 * 2 + 0 + 1 * 2) / (1 + eps) / (2 + eps) / 3;
      const penalty = correlationPenalty(zt, [0, 1], [1, 2], { epsilon: eps });
      expect(penalty.dataSync()[0]).toBeCloseTo(expected, 5);
      tf.dispose([zt, penalty]);
    });

    it('rejects batches of one, non-matrices and regions out of range', async () => {
      await useBackend(backend);
      const one = tf.zeros([1, 4]);
      const cube = tf.zeros([2, 2, 4]);
      const ok = tf.zeros([3, 4]);
      expect(() => correlationPenalty(one, [0, 2], [2, 4])).toThrow(/at least 2 examples/);
      expect(() => correlationPenalty(cube, [0, 2], [2, 4])).toThrow(/shape \[B, D\]/);
      expect(() => correlationPenalty(ok, [0, 2], [2, 5])).toThrow(/region \[2, 5\)/);
      tf.dispose([one, cube, ok]);
    });
  });
});
