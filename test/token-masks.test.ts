import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { blendTokenRows, tokenFrequencyWeight } from '../src/core/masks/tokens.js';
import {
  expandRouteRows,
  forwardContext,
  GradientRoutingError,
  MaskTable,
  tokenFrequencyWeights,
  tokenRule,
} from '../src/index.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

describe('token-frequency rule', () => {
  it('matches hand-computed values of 1 - sigmoid(r - 1/r - 4), r = (f + 1) / (r + 20)', () => {
    // f = 9, r = 0: r = 10/20 = 0.5, z = 0.5 - 2 - 4 = -5.5.
    expect(tokenFrequencyWeight(9, 0)).toBeCloseTo(0.995929862, 8);
    // f = 39, r = 0: r = 2, z = 2 - 0.5 - 4 = -2.5.
    expect(tokenFrequencyWeight(39, 0)).toBeCloseTo(0.92414182, 8);
    // f = 199, r = 0: r = 10, z = 10 - 0.1 - 4 = 5.9: a forget-specific token, routed.
    expect(tokenFrequencyWeight(199, 0)).toBeCloseTo(0.002731961, 8);
    // f = 99, r = 30: r = 100/50 = 2, same z as the second case.
    expect(tokenFrequencyWeight(99, 30)).toBeCloseTo(tokenFrequencyWeight(39, 0), 12);
    // A token never seen in forget data is not routed at all.
    expect(tokenFrequencyWeight(0, 1000)).toBeCloseTo(1, 12);
    // Custom pseudo-counts and offset.
    const custom = tokenFrequencyWeight(3, 1, {
      forgetPseudoCount: 1,
      retainPseudoCount: 1,
      offset: 0,
    });
    expect(custom).toBeCloseTo(1 - sigmoid(2 - 0.5), 12);
  });

  it('per-token weights come from counts scaled to equal totals', () => {
    // Vocabulary of 4. Forget: token 2 four times, token 3 once (5 tokens). Retain: token 3
    // ten times (10 tokens), so retain counts are halved to compare frequencies.
    const weights = tokenFrequencyWeights(
      [
        [2, 2, 3],
        [2, 2],
      ],
      [[3, 3, 3, 3, 3, 3, 3, 3, 3, 3]],
      4,
    );
    expect(weights[0]).toBeCloseTo(tokenFrequencyWeight(0, 0), 6);
    expect(weights[2]).toBeCloseTo(tokenFrequencyWeight(4, 0), 6);
    expect(weights[3]).toBeCloseTo(tokenFrequencyWeight(1, 5), 6);
    expect(() => tokenFrequencyWeights([[4]], [], 4)).toThrow(/token id 4 is outside \[0, 4\)/);
    expect(() => tokenFrequencyWeight(-1, 0)).toThrow(GradientRoutingError);
  });
});

describe.each(TEST_BACKENDS)('per-token masks on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('ERA rows: ones for retain, -0.75 on original units and 1 on the expansion for forget', () => {
    const [retain, forget] = expandRouteRows(5, { start: 3, end: 5 });
    expect(Array.from(retain)).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(forget)).toEqual([-0.75, -0.75, -0.75, 1, 1]);
    // Negative values only when asked for explicitly.
    expect(() => new MaskTable([retain, forget])).toThrow(GradientRoutingError);
    const table = new MaskTable([retain, forget], { range: [-1, 1] });
    table.dispose();
  });

  it('gathers [B, T, H] masks from [B, T] labels, with exact +0 where the row is 0', async () => {
    const rule = tokenRule(
      new MaskTable([
        [1, 1, 0],
        [0, 0.5, 1],
      ]),
    );
    const labels = tf.tensor2d(
      [
        [0, 1],
        [1, 0],
      ],
      [2, 2],
      'int32',
    );
    await expectNoLeak(() => {
      const masks = tf.tidy(
        () => rule.masks({ labels }, tf.zeros([2, 2, 3])).arraySync() as number[][][],
      );
      expect(masks).toEqual([
        [
          [1, 1, 0],
          [0, 0.5, 1],
        ],
        [
          [0, 0.5, 1],
          [1, 1, 0],
        ],
      ]);
      expect(Object.is(masks[0]![0]![2], 0)).toBe(true);
      expect(Object.is(masks[0]![1]![0], 0)).toBe(true);
    });
    labels.dispose();
    rule.dispose();
  });

  it('blends toward a row by per-token weights, exactly at weights 0 and 1', () => {
    const table = new MaskTable(
      [
        [1, 1, 1, 0],
        [-0.75, -0.75, 1, 0],
      ],
      { range: [-1, 1] },
    );
    const labels = tf.tensor2d([[1, 1, 1, 0]], [1, 4], 'int32');
    const weights = tf.tensor2d([[0, 1, 0.5, 0.3]], [1, 4]);
    const masks = tf.tidy(
      () => blendTokenRows(table, labels, weights, 0).arraySync() as number[][][],
    );
    const row = masks[0]!;
    expect(row[0]).toEqual([-0.75, -0.75, 1, 0]); // weight 0: the forget row
    expect(row[1]).toEqual([1, 1, 1, 0]); // weight 1: all ones
    expect(row[2]![0]).toBeCloseTo(0.125, 6); // 0.5 · 1 + 0.5 · (-0.75)
    expect(row[3]).toEqual([1, 1, 1, 0]); // a retain token stays on its row
    for (const token of row) expect(Object.is(token[3], 0)).toBe(true);
    expect(() => blendTokenRows(table, labels, tf.ones([1, 3]), 0)).toThrow(/labels' shape/);
    expect(() => blendTokenRows(table, labels, weights, 2)).toThrow(/integer in \[0, 2\)/);
    tf.dispose([labels, weights]);
    table.dispose();
  });

  it('routes per token in a forward pass: gradient x mask, reversed where the mask is negative', () => {
    const table = new MaskTable(
      [
        [1, 1, 1],
        [-0.75, 0, 1],
      ],
      { range: [-1, 1] },
    );
    const rule = tokenRule(table);
    const labels = tf.tensor2d([[0, 1]], [1, 2], 'int32');
    const x = tf.ones([1, 2, 3]);
    const grad = tf.tidy(() =>
      tf
        .grad((a: tf.Tensor) => {
          const context = forwardContext(
            { routingPoints: ['h'] },
            { plan: { h: rule }, batch: { labels } },
          );
          return tf.sum(tf.mul(context.point('h', a), 2));
        })(x)
        .arraySync(),
    ) as number[][][];
    expect(grad[0]![0]).toEqual([2, 2, 2]);
    expect(grad[0]![1]).toEqual([-1.5, 0, 2]);
    expect(Object.is(grad[0]![1]![1], 0)).toBe(true);
    tf.dispose([labels, x]);
    rule.dispose();
  });

  it('rejects per-example or float labels with a clear error', () => {
    const rule = tokenRule(new MaskTable([[1, 0]]));
    const flat = tf.tensor1d([0, 1], 'int32');
    expect(() => tf.tidy(() => rule.masks({ labels: flat }, tf.zeros([2, 2])))).toThrow(
      /per-token labels, an int32 \[B, T\] tensor/,
    );
    expect(() => tf.tidy(() => rule.masks({}, tf.zeros([2, 2])))).toThrow(/got none/);
    flat.dispose();
    rule.dispose();
  });
});
