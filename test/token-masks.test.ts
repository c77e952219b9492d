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

  it("per-token weights compare frequencies with per-token pseudo-counts, as the paper's code", () => {
    // Vocabulary of 4. Forget: token 2 four times, token 3 once (5 tokens). Retain: token 3
    // ten times (10 tokens). Frequencies: forget (count + 1) / (5 + 4), retain
    // (count + 20) / (10 + 80); r = forget frequency / retain frequency.
    const weights = tokenFrequencyWeights(
      [
        [2, 2, 3],
        [2, 2],
      ],
      [[3, 3, 3, 3, 3, 3, 3, 3, 3, 3]],
      4,
    );
    const weight = (r: number) => 1 - sigmoid(r - 1 / r - 4);
    expect(weights[0]).toBeCloseTo(weight(1 / 9 / (20 / 90)), 6);
    expect(weights[2]).toBeCloseTo(weight(5 / 9 / (20 / 90)), 6);
    expect(weights[3]).toBeCloseTo(weight(2 / 9 / (30 / 90)), 6);
    // Token 2 (forget only) is the most routed.
    expect(weights[2]!).toBeLessThan(Math.min(weights[0]!, weights[3]!));
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

describe('token-frequency rule: options and edges', () => {
  // r = (f + forgetPseudo) / (retain + retainPseudo), weight = 1 - sigmoid(r - 1/r - offset).
  const expected = (f: number, r: number, forgetPseudo = 1, retainPseudo = 20, offset = 4) => {
    const ratio = (f + forgetPseudo) / (r + retainPseudo);
    return 1 - sigmoid(ratio - 1 / ratio - offset);
  };

  it('each option replaces only its own default', () => {
    expect(tokenFrequencyWeight(9, 0, { forgetPseudoCount: 11 })).toBeCloseTo(
      expected(9, 0, 11),
      12,
    );
    expect(tokenFrequencyWeight(9, 0, { retainPseudoCount: 5 })).toBeCloseTo(
      expected(9, 0, 1, 5),
      12,
    );
    expect(tokenFrequencyWeight(9, 0, { offset: 1 })).toBeCloseTo(expected(9, 0, 1, 20, 1), 12);
    // The three differ from the defaults, so each assertion above can fail.
    expect(expected(9, 0, 11)).not.toBeCloseTo(expected(9, 0), 3);
    expect(expected(9, 0, 1, 5)).not.toBeCloseTo(expected(9, 0), 3);
    expect(expected(9, 0, 1, 20, 1)).not.toBeCloseTo(expected(9, 0), 3);
  });

  it('accepts zero counts and rejects negative or NaN counts and non-positive pseudo-counts', () => {
    expect(tokenFrequencyWeight(0, 0)).toBeCloseTo(expected(0, 0), 12);
    for (const [forget, retain, options] of [
      [-1, 0, {}],
      [0, -1, {}],
      [Number.NaN, 0, {}],
      [0, Number.NaN, {}],
      [1, 1, { forgetPseudoCount: 0 }],
      [1, 1, { retainPseudoCount: 0 }],
    ] as const) {
      expect(() => tokenFrequencyWeight(forget, retain, options)).toThrow(
        /counts must be >= 0 and pseudo-counts > 0/,
      );
    }
  });

  it('weights from documents: options passed through, no retain documents, typed arrays', () => {
    const forget = [Int32Array.from([0, 0, 1])];
    // No retain documents: the retain frequency is uniform, 20 / (20 · 3) per token; forget
    // frequencies are (2 + 1) / 6, (1 + 1) / 6 and (0 + 1) / 6.
    const alone = tokenFrequencyWeights(forget, [], 3);
    const paper = (r: number, offset = 4) => 1 - sigmoid(r - 1 / r - offset);
    expect(Array.from(alone)).toEqual(
      [paper(3 / 6 / (1 / 3)), paper(2 / 6 / (1 / 3)), paper(1 / 6 / (1 / 3))].map((w) =>
        Math.fround(w),
      ),
    );
    // Offset 0 puts equal frequencies at weight ~0.5, where the weight is most sensitive.
    // Forget: token 0 forty times: frequencies 41/42 and 1/42. Retain: tokens 0 and 1 ten
    // times each: 30/60 each. The set sizes cancel: the retain side is not 20 tokens against 40.
    const scaled = tokenFrequencyWeights(
      [new Array(40).fill(0)],
      [[...new Array(10).fill(0), ...new Array(10).fill(1)]],
      2,
      { offset: 0 },
    );
    expect(scaled[0]).toBeCloseTo(paper(41 / 42 / 0.5, 0), 6);
    expect(scaled[1]).toBeCloseTo(paper(1 / 42 / 0.5, 0), 6);
    // Pseudo-counts pass through: forget pseudo-count 2 gives (40 + 2) / 44 and 2 / 44.
    const pseudo = tokenFrequencyWeights(
      [new Array(40).fill(0)],
      [[...new Array(10).fill(0), ...new Array(10).fill(1)]],
      2,
      { offset: 0, forgetPseudoCount: 2, retainPseudoCount: 5 },
    );
    expect(pseudo[1]).toBeCloseTo(paper(2 / 44 / (15 / 30), 0), 6);
    expect(() => tokenFrequencyWeights([[0]], [], 2, { retainPseudoCount: 0 })).toThrow(
      /pseudo-counts > 0/,
    );
  });

  it('rejects token ids that are negative, fractional or NaN, in forget or retain documents', () => {
    for (const bad of [-1, 1.5, Number.NaN, 3]) {
      expect(() => tokenFrequencyWeights([[0, bad]], [], 3)).toThrow(/outside \[0, 3\)/);
      expect(() => tokenFrequencyWeights([[0]], [[bad]], 3)).toThrow(/outside \[0, 3\)/);
    }
    // The largest id fits.
    expect(tokenFrequencyWeights([[2]], [[2]], 3)).toHaveLength(3);
  });
});

describe('ERA rows and token rules: edges', () => {
  beforeAll(() => useBackend('cpu'));

  it('expandRouteRows accepts an expansion at either end and takes the original weight', () => {
    expect(expandRouteRows(3, { start: 0, end: 1 }, 0).map((row) => Array.from(row))).toEqual([
      [1, 1, 1],
      [1, 0, 0],
    ]);
    expect(Array.from(expandRouteRows(3, { start: 1, end: 3 })[1])).toEqual([-0.75, 1, 1]);
    for (const bad of [
      { start: -1, end: 2 },
      { start: 2, end: 2 },
      { start: 2, end: 1 },
      { start: 1, end: 4 },
    ]) {
      expect(() => expandRouteRows(3, bad)).toThrow(/does not fit a hidden layer of 3 units/);
    }
  });

  it('a token rule exposes its table, range and rows, and names itself in errors', async () => {
    const table = new MaskTable(
      [
        [1, 1],
        [-0.75, 1],
      ],
      { range: [-1, 1] },
    );
    const rule = tokenRule(table, { description: 'era forget' });
    expect(rule.description).toBe('era forget');
    expect(rule.table).toBe(table);
    expect(rule.range).toEqual([-1, 1]);
    const labels = tf.tensor2d([[1, 0, 1]], [1, 3], 'int32');
    await expectNoLeak(() => {
      const rows = rule.rowsOf({ labels });
      expect(rows).toBe(labels);
    });
    const floats = tf.tensor2d([[1, 0]], [1, 2]);
    const rank3 = tf.zeros([1, 2, 1], 'int32');
    expect(() => rule.rowsOf({ labels: floats })).toThrow(
      /the rule 'era forget' reads per-token labels.*got float32 \[1,2\]/,
    );
    expect(() => rule.rowsOf({ labels: rank3 })).toThrow(/got int32 \[1,2,1\]/);
    expect(() => rule.rowsOf({})).toThrow(/got none/);
    expect(tokenRule(new MaskTable([[1]])).description).toBe('token rule');
    tf.dispose([labels, floats, rank3]);
    rule.dispose();
    expect(table.rows.isDisposed).toBe(true);
  });

  it('blends only with both a toward row and per-token weights', () => {
    const rows = [
      [1, 1],
      [0, 1],
    ];
    const labels = tf.tensor2d([[1, 1]], [1, 2], 'int32');
    const weights = tf.tensor2d([[1, 0]], [1, 2]);
    const blending = tokenRule(new MaskTable(rows), { toward: 0 });
    const plain = tokenRule(new MaskTable(rows));
    const masks = (rule: ReturnType<typeof tokenRule>, withWeights: boolean) =>
      tf.tidy(
        () =>
          rule
            .masks(withWeights ? { labels, weights } : { labels }, tf.zeros([1, 2, 2]))
            .arraySync() as number[][][],
      );
    // Weight 1 pulls the first token to row 0; weight 0 leaves the second on its label's row.
    expect(masks(blending, true)).toEqual([
      [
        [1, 1],
        [0, 1],
      ],
    ]);
    // Without weights, or without a toward row, every token keeps its label's row.
    const unblended = [
      [
        [0, 1],
        [0, 1],
      ],
    ];
    expect(masks(blending, false)).toEqual(unblended);
    expect(masks(plain, true)).toEqual(unblended);
    tf.dispose([labels, weights]);
    blending.dispose();
    plain.dispose();
  });

  it('blendTokenRows rejects a disposed table and toward rows that are not row indices', () => {
    const table = new MaskTable([
      [1, 1],
      [0, 1],
    ]);
    const labels = tf.tensor2d([[1]], [1, 1], 'int32');
    const weights = tf.tensor2d([[0.5]], [1, 1]);
    for (const toward of [-1, 0.5, 2, Number.NaN]) {
      let caught: unknown;
      try {
        blendTokenRows(table, labels, weights, toward);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(GradientRoutingError);
      expect((caught as GradientRoutingError).code).toBe('invalid-argument');
      expect(Object.is((caught as GradientRoutingError).value, toward)).toBe(true);
    }
    // The last row is a valid target.
    const blended = tf.tidy(() => blendTokenRows(table, labels, weights, 1).arraySync());
    expect(blended).toEqual([[[0, 1]]]);
    table.dispose();
    expect(() => blendTokenRows(table, labels, weights, 0)).toThrow(/disposed/);
    tf.dispose([labels, weights]);
  });
});
