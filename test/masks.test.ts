import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  classBlockRoutes,
  compileLabelRoutes,
  type LabelRoute,
  type LabelRouteOptions,
  labelRows,
  stackRows,
  validateRouteTableSpec,
} from '../src/core/masks/labels.js';
import { oversightRule, sampleOversight } from '../src/core/masks/partial.js';
import type { Region } from '../src/core/masks/regions.js';
import {
  assertSoftMask,
  maskComplement,
  maskComplementValues,
  maskIntersection,
  maskIntersectionValues,
  maskUnion,
  maskUnionValues,
  softMask,
  softMaskValues,
} from '../src/core/masks/soft.js';
import { type LabelRule, labelRule, MaskTable } from '../src/core/masks/table.js';
import { routeGradients, setMaskValidation } from '../src/core/routing/route.js';
import { seededRandom } from '../src/core/util/random.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const halves: LabelRoute[] = [
  { labels: [0, 2], region: [0, 2] },
  { labels: [1], region: [[2, 3]] },
];

/** Maximal runs of true values as regions: a partition-independent way to draw regions. */
function runsOf(bits: readonly boolean[]): Region[] {
  const regions: Region[] = [];
  bits.forEach((bit, i) => {
    const last = regions[regions.length - 1];
    if (!bit) return;
    if (last && last[1] === i) regions[regions.length - 1] = [last[0], i + 1];
    else regions.push([i, i + 1]);
  });
  return regions;
}

/** The host form of a label rule's masks: compile, look the rows up, stack them. */
function labelMaskValues(
  labels: ArrayLike<number>,
  size: number,
  routes: readonly LabelRoute[],
  options: LabelRouteOptions = {},
): Float32Array {
  const spec = compileLabelRoutes(size, routes, options);
  return stackRows(spec.rows, labelRows(spec, labels), size);
}

const rows = (values: ArrayLike<number>, size: number): number[][] =>
  Array.from({ length: values.length / size }, (_, b) =>
    Array.from(values).slice(b * size, (b + 1) * size),
  );

describe('label routes (host)', () => {
  it('builds hand-computed per-example masks', () => {
    const values = labelMaskValues([0, 1, 2, 1], 4, halves);
    expect(rows(values, 4)).toEqual([
      [1, 1, 0, 0],
      [0, 0, 1, 0],
      [1, 1, 0, 0],
      [0, 0, 1, 0],
    ]);
  });

  it('gives a route several regions', () => {
    const values = labelMaskValues([1, 0], 6, [
      {
        labels: [0],
        region: [
          [0, 1],
          [4, 6],
        ],
      },
      { labels: [1], region: [1, 4] },
    ]);
    expect(rows(values, 6)).toEqual([
      [0, 1, 1, 1, 0, 0],
      [1, 0, 0, 0, 1, 1],
    ]);
  });

  it("applies the unrouted policies 'full' and 'none'", () => {
    const full = labelMaskValues([3, 0], 4, halves, { unrouted: 'full', numClasses: 4 });
    expect(rows(full, 4)).toEqual([
      [1, 1, 1, 1],
      [1, 1, 0, 0],
    ]);
    const none = labelMaskValues([3, 0], 4, halves, { unrouted: 'none', numClasses: 4 });
    expect(rows(none, 4)).toEqual([
      [0, 0, 0, 0],
      [1, 1, 0, 0],
    ]);
  });

  it("'full' reaches classes above every routed label once numClasses covers them", () => {
    const routes = [{ labels: [0], region: [0, 2] as const }];
    // numClasses defaults to the largest routed label + 1 = 1, so label 3 is out of range...
    expect(() => labelMaskValues([0, 3], 4, routes, { unrouted: 'full' })).toThrow(
      /example 1 has label 3, but labels must be integers in \[0, 1\); .*numClasses: 4/,
    );
    // ...and with the real class count it follows the policy.
    const full = labelMaskValues([0, 3], 4, routes, { unrouted: 'full', numClasses: 4 });
    expect(rows(full, 4)).toEqual([
      [1, 1, 0, 0],
      [1, 1, 1, 1],
    ]);
  });

  it('one block of dims per class', () => {
    expect(classBlockRoutes(3, 2)).toEqual([
      { labels: [0], region: [0, 2] },
      { labels: [1], region: [2, 4] },
      { labels: [2], region: [4, 6] },
    ]);
    const values = labelMaskValues([2, 0], 7, classBlockRoutes(3, 2));
    expect(rows(values, 7)).toEqual([
      [0, 0, 0, 0, 1, 1, 0],
      [1, 1, 0, 0, 0, 0, 0],
    ]);
  });

  it.each([
    [
      'a label in no route under the default policy',
      () => labelMaskValues([3], 4, halves, { numClasses: 4 }),
      /label 3 \(example 0\) is in no route.*unrouted: 'full' or 'none'/,
    ],
    [
      'a non-integer host label',
      () => labelMaskValues([0, 1.5], 4, halves),
      /example 1 has label 1\.5.*integers in \[0, 3\)/,
    ],
    [
      'a label at numClasses',
      () => labelMaskValues([3], 4, halves, { unrouted: 'full' }),
      /example 0 has label 3.*\[0, 3\).*numClasses: 4 .*follow unrouted: 'full'.*largest routed label \+ 1/,
    ],
    [
      'a label at numClasses under the default policy',
      () => labelMaskValues([5], 4, halves),
      /example 0 has label 5.*\[0, 3\).*numClasses: 6 .*unrouted: 'full' or 'none'/,
    ],
    [
      'a non-integer label at or above numClasses',
      () => labelMaskValues([3.5], 4, halves, { unrouted: 'full' }),
      /example 0 has label 3\.5.*\[0, 3\); fix the label or pass a larger numClasses\.$/,
    ],
    ['a negative label', () => labelMaskValues([-1], 4, halves), /label -1.*integers in \[0, 3\)/],
    [
      'a label in two routes',
      () => compileLabelRoutes(4, [...halves, { labels: [2], region: [3, 4] }]),
      /label 2 is in routes 0 and 2.*at most one route/,
    ],
    [
      'a non-integer route label',
      () => compileLabelRoutes(4, [{ labels: [0.5], region: [0, 1] }]),
      /route 0 has label 0\.5.*non-negative integers/,
    ],
    [
      'a route label beyond numClasses',
      () => compileLabelRoutes(4, halves, { numClasses: 2 }),
      /route 0 has label 2, but numClasses is 2.*at least 3/,
    ],
    [
      'an out-of-bounds region',
      () => compileLabelRoutes(4, [{ labels: [0], region: [2, 5] }]),
      /route 0: region \[2, 5\) is out of bounds.*<= 4/,
    ],
    [
      'overlapping regions in a route',
      () =>
        compileLabelRoutes(4, [
          {
            labels: [0],
            region: [
              [0, 2],
              [1, 3],
            ],
          },
        ]),
      /route 0: regions \[0, 2\) and \[1, 3\) overlap/,
    ],
    [
      'an empty region',
      () => compileLabelRoutes(4, [{ labels: [0], region: [2, 2] }]),
      /region \[2, 2\) is out of bounds or empty/,
    ],
    [
      'an unknown policy',
      () => compileLabelRoutes(4, halves, { unrouted: 'skip' as 'full' }),
      /unrouted must be 'error', 'full' or 'none', got 'skip'/,
    ],
    ['no routes', () => compileLabelRoutes(4, []), /at least one route/],
    [
      'a negative route label',
      () => compileLabelRoutes(4, [{ labels: [-1], region: [0, 1] }]),
      /route 0 has label -1; labels are non-negative integers/,
    ],
    [
      'routes that all have no labels',
      () => compileLabelRoutes(4, [{ labels: [], region: [0, 2] }]),
      /every route has an empty label list; give each route the labels/,
    ],
    [
      'a zero block size',
      () => classBlockRoutes(3, 0),
      /blockSize must be a positive integer, got 0/,
    ],
    [
      'a fractional class count',
      () => classBlockRoutes(2.5, 1),
      /numClasses must be a positive integer, got 2\.5/,
    ],
  ])('rejects %s', (_, build, message) => {
    expect(build).toThrow(/^gradient-routing: /);
    expect(build).toThrow(message);
  });

  it('rejects malformed hand-made tables', () => {
    const spec = compileLabelRoutes(3, [{ labels: [0], region: [0, 1] }]);
    const ragged = { ...spec, rows: [new Float32Array(3), new Float32Array(2)] };
    expect(() => validateRouteTableSpec(ragged)).toThrow(/table row 1 has length 2, row 0 has 3/);
    const nan = { ...spec, rows: [Float32Array.of(0, Number.NaN, 1), new Float32Array(3)] };
    expect(() => validateRouteTableSpec(nan)).toThrow(/table row 0 has weight NaN at flat index 1/);
    const badRow = { ...spec, rowOfLabel: Int32Array.of(2) };
    expect(() => validateRouteTableSpec(badRow)).toThrow(/label 0 selects row 2.*rows 0\.\.1/);
    expect(() => validateRouteTableSpec({ ...spec, unroutedRow: -1 })).toThrow(
      /unroutedRow selects row -1/,
    );
    expect(() => validateRouteTableSpec({ ...spec, rows: [] })).toThrow(
      /the length of the table rows must be a positive integer, got 0/,
    );
    expect(validateRouteTableSpec(spec)).toBe(3);
  });
});

describe('soft masks (host)', () => {
  it('complement, union and intersection by hand', () => {
    const a = [1, 0.25, 0, 0.5];
    const b = [0, 0.75, 0, 1];
    expect(Array.from(maskComplementValues(a))).toEqual([0, 0.75, 1, 0.5]);
    expect(Array.from(maskUnionValues(a, b))).toEqual([1, 0.75, 0, 1]);
    expect(Array.from(maskIntersectionValues(a, b))).toEqual([0, 0.25, 0, 0.5]);
    expect(Array.from(softMaskValues(a))).toEqual(a);
  });

  it.each([
    [
      'NaN',
      Number.NaN,
      /mask has weight NaN at flat index 1; mask weights must be numbers in \[0, 1\] \(0 blocks the gradient, 1 lets it through\)/,
    ],
    ['above 1', 1.5, /mask has weight 1\.5 at flat index 1/],
    ['below 0', -0.1, /mask has weight -0\.1 at flat index 1/],
    ['just above 1', 1.000001, /mask has weight 1\.000001 at flat index 1/],
    ['just below 0', -1e-7, /mask has weight -1e-7 at flat index 1/],
    ['Infinity', Number.POSITIVE_INFINITY, /mask has weight Infinity at flat index 1/],
  ])('rejects a weight %s', (_, weight, message) => {
    expect(() => softMaskValues([0, weight])).toThrow(message);
    expect(() => maskComplementValues([0, weight])).toThrow(message);
    expect(() => maskUnionValues([0, 0], [0, weight])).toThrow(/second mask has weight/);
    expect(() => softMask([[0, weight]])).toThrow(message);
  });

  it('rejects masks of different lengths', () => {
    expect(() => maskUnionValues([0, 1], [1])).toThrow(
      /maskUnionValues needs masks of equal length, got 2 and 1.*maskUnion\)/,
    );
  });
});

describe('random and partial routing (host)', () => {
  it('seededRandom is reproducible, in [0, 1) and roughly uniform', () => {
    const a = Array.from({ length: 5 }, seededRandom(7));
    const b = Array.from({ length: 5 }, seededRandom(7));
    const c = Array.from({ length: 5 }, seededRandom(8));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const draws = Array.from({ length: 10000 }, seededRandom(123));
    expect(draws.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = draws.reduce((s, x) => s + x, 0) / draws.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
  });

  it('rejects bad seeds and dataset sizes', () => {
    expect(() => seededRandom(1.5)).toThrow(/^gradient-routing: seed must be an integer/);
    expect(() => seededRandom(2 ** 32)).toThrow(/seed must be an integer in \[-2\^31, 2\^32\)/);
    expect(() => sampleOversight(10, 0.5, 0.5)).toThrow(/seed must be an integer/);
    expect(() => sampleOversight(2.5, 0.5, 0)).toThrow(
      /numExamples must be a non-negative integer/,
    );
  });

  it('oversight routes exactly round(fraction * n) examples, reproducibly', () => {
    fc.assert(
      fc.property(
        fc.nat(300),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer(),
        (n, fraction, seed) => {
          const flags = sampleOversight(n, fraction, seed);
          expect(flags.length).toBe(n);
          expect(flags.reduce((s, f) => s + f, 0)).toBe(Math.round(fraction * n));
          expect(sampleOversight(n, fraction, seed)).toEqual(flags);
        },
      ),
    );
    // Different seeds pick different subsets (for a large enough population).
    expect(sampleOversight(1000, 0.5, 1)).not.toEqual(sampleOversight(1000, 0.5, 2));
    expect(sampleOversight(10, 0.3, 5).reduce((s, f) => s + f, 0)).toBe(3);
  });

  it('oversight accepts the edges 0 and 1, and rejects a negative dataset size', () => {
    expect(Array.from(sampleOversight(4, 0, 1))).toEqual([0, 0, 0, 0]);
    expect(Array.from(sampleOversight(4, 1, 1))).toEqual([1, 1, 1, 1]);
    expect(sampleOversight(0, 0.5, 1)).toHaveLength(0);
    expect(() => sampleOversight(-1, 0.5, 0)).toThrow(/numExamples must be a non-negative integer/);
  });

  it.each([-0.1, 1.1, Number.NaN])('rejects oversight fraction %s', (fraction) => {
    expect(() => sampleOversight(10, fraction, 0)).toThrow(
      /^gradient-routing: oversight fraction must be in \[0, 1\]/,
    );
  });
});

describe.each(TEST_BACKENDS)('mask tensors on %s', (backend) => {
  it('a label rule gives hand-computed masks from host arrays, int32 and float32 tensors', async () => {
    await useBackend(backend);
    const expected = [
      [1, 1, 0, 0],
      [0, 0, 1, 0],
      [1, 1, 0, 0],
    ];
    await expectNoLeak(() => {
      const rule = labelRule(4, halves);
      const fromHost = rule.masksFor([0, 1, 2]);
      const labels = tf.tensor1d([0, 1, 2], 'int32');
      const fromTensor = rule.masksFor(labels);
      const floatLabels = tf.tensor1d([0, 1, 2], 'float32');
      const fromFloat = rule.masksFor(floatLabels);
      const fromBatch = rule.masks({ labels });
      for (const masks of [fromHost, fromTensor, fromFloat, fromBatch]) {
        expect(masks.dtype).toBe('float32');
        expect(masks.shape).toEqual([3, 4]);
        expect(masks.arraySync()).toEqual(expected);
      }
      const rowsOf = rule.rowsOf({ labels });
      expect(rowsOf.dtype).toBe('int32');
      expect(Array.from(rowsOf.dataSync())).toEqual([0, 1, 0]);
      tf.dispose([fromHost, fromTensor, fromFloat, fromBatch, rowsOf, labels, floatLabels]);
      rule.dispose();
      rule.dispose();
    });
  });

  it('a label rule routes per token on [B, T] labels', async () => {
    await useBackend(backend);
    await expectNoLeak(() => {
      const rule = labelRule(4, halves);
      const labels = tf.tensor2d(
        [
          [0, 1, 2],
          [1, 1, 0],
        ],
        [2, 3],
        'int32',
      );
      const masks = rule.masks({ labels });
      expect(masks.shape).toEqual([2, 3, 4]);
      expect(masks.arraySync()).toEqual([
        [
          [1, 1, 0, 0],
          [0, 0, 1, 0],
          [1, 1, 0, 0],
        ],
        [
          [0, 0, 1, 0],
          [0, 0, 1, 0],
          [1, 1, 0, 0],
        ],
      ]);
      tf.dispose([labels, masks]);
      rule.dispose();
    });
  });

  it('masks and masksFor return exactly one new tensor', async () => {
    await useBackend(backend);
    const rule = labelRule(4, halves);
    const labels = tf.tensor1d([2, 1], 'int32');
    for (const input of [labels, [2, 1], Int32Array.of(2, 1)] as const) {
      const before = tf.memory().numTensors;
      const masks = rule.masksFor(input);
      expect(tf.memory().numTensors).toBe(before + 1);
      masks.dispose();
    }
    const before = tf.memory().numTensors;
    const masks = rule.masks({ labels });
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([masks, labels]);
    rule.dispose();
  });

  it('a rule built inside tf.tidy survives it', async () => {
    await useBackend(backend);
    let rule: LabelRule | undefined;
    tf.tidy(() => {
      rule = labelRule(4, halves);
    });
    if (rule === undefined) throw new Error('tidy did not run');
    const masks = rule.masksFor([1]);
    expect(masks.arraySync()).toEqual([[0, 0, 1, 0]]);
    masks.dispose();
    rule.dispose();
  });

  it('without validation, sends invalid on-device labels to the unrouted row', async () => {
    await useBackend(backend);
    const previous = setMaskValidation(false);
    try {
      await expectNoLeak(async () => {
        const strict = labelRule(4, halves);
        const full = labelRule(4, halves, { unrouted: 'full', numClasses: 4 });
        // -2 and below would index the lookup out of range if its lower clamp were lost.
        const labels = tf.tensor1d([-1, 7, 3, 1, -2, -1000], 'int32');
        const blocked = strict.masks({ labels });
        expect(blocked.arraySync()).toEqual([
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
        ]);
        const opened = full.masksFor(labels, { validate: false });
        expect(opened.arraySync()).toEqual([
          [1, 1, 1, 1],
          [1, 1, 1, 1],
          [1, 1, 1, 1],
          [0, 0, 1, 0],
          [1, 1, 1, 1],
          [1, 1, 1, 1],
        ]);
        // masksFor validates a tensor unless told not to; checkLabels always does.
        expect(() => strict.masksFor(labels)).toThrow(/^gradient-routing: example 0 has label -1/);
        await expect(strict.checkLabels(labels)).rejects.toThrow(
          /^gradient-routing: example 0 has label -1/,
        );
        const unrouted = tf.tensor1d([1, 3], 'int32');
        await expect(full.checkLabels(unrouted)).resolves.toBeUndefined();
        await expect(strict.checkLabels([0, 3])).rejects.toThrow(/example 1 has label 3/);
        expect(() => strict.masksFor([0, 3])).toThrow(/example 1 has label 3/);
        const fractional = tf.tensor1d([0.5], 'float32');
        await expect(strict.checkLabels(fractional)).rejects.toMatchObject({
          code: 'invalid-label',
          value: 0.5,
          message: expect.stringMatching(/example 0 has label 0\.5/),
        });
        tf.dispose([blocked, opened, labels, unrouted, fractional]);
        strict.dispose();
        full.dispose();
        expect(() => strict.masksFor([0])).toThrow(
          /mask table \(or the rule that owns it\) was disposed/,
        );
        const live = tf.tensor1d([0], 'int32');
        expect(() => strict.masks({ labels: live })).toThrow(/was disposed; build a new one/);
        live.dispose();
      });
    } finally {
      setMaskValidation(previous);
    }
  });

  it('with validation on, the unrouted policy holds for tensor labels in every batch', async () => {
    await useBackend(backend);
    const previous = setMaskValidation(true);
    try {
      await expectNoLeak(async () => {
        const strict = labelRule(4, halves, { numClasses: 4 });
        const full = labelRule(4, halves, { unrouted: 'full', numClasses: 4 });
        const unrouted = tf.tensor2d(
          [
            [0, 1],
            [3, 2],
          ],
          [2, 2],
          'int32',
        );
        expect(() => strict.masks({ labels: unrouted })).toThrow(
          /label 3 \(example 1, token 0\) is in no route/,
        );
        const masks = full.masks({ labels: unrouted });
        expect(masks.shape).toEqual([2, 2, 4]);
        const nan = tf.tensor1d([0, Number.NaN], 'float32');
        expect(() => full.masks({ labels: nan })).toThrow(/example 1 has label NaN/);
        const tooBig = tf.tensor1d([200], 'int32');
        try {
          full.masks({ labels: tooBig });
          expect.unreachable();
        } catch (error) {
          expect(error).toMatchObject({ code: 'invalid-label', value: 200 });
        }
        const disposed = tf.tensor1d([0], 'int32');
        disposed.dispose();
        expect(() => full.masks({ labels: disposed })).toThrow(/labels tensor was disposed/);
        await expect(full.checkLabels(disposed)).rejects.toThrow(/labels tensor was disposed/);
        tf.dispose([unrouted, masks, nan, tooBig]);
        strict.dispose();
        full.dispose();
      });
    } finally {
      setMaskValidation(previous);
    }
  });

  it("a label rule's unrouted policy reaches labels above every route once numClasses covers them", async () => {
    await expectNoLeak(() => {
      const routes = [{ labels: [0], region: [0, 2] as const }];
      const inferred = labelRule(4, routes, { unrouted: 'full' });
      expect(() => inferred.masksFor([0, 3])).toThrow(
        /label 3, but labels must be integers in \[0, 1\); .*numClasses: 4 .*follow unrouted: 'full'/,
      );
      inferred.dispose();
      const counted = labelRule(4, routes, { unrouted: 'full', numClasses: 4 });
      const masks = counted.masksFor([0, 3]);
      expect(masks.arraySync()).toEqual([
        [1, 1, 0, 0],
        [1, 1, 1, 1],
      ]);
      masks.dispose();
      counted.dispose();
    });
  });

  it('a label rule names the missing labels field', async () => {
    await useBackend(backend);
    const rule = labelRule(4, halves);
    expect(() => rule.masks({})).toThrow(/reads batch\.labels, which is missing/);
    rule.dispose();
  });

  it('a mask table gathers rows and validates its range', async () => {
    await useBackend(backend);
    await expectNoLeak(() => {
      const table = new MaskTable([[1, 1, 0, 0], Float32Array.of(0, 0, 0.5, 1)]);
      expect(table.numRows).toBe(2);
      expect(table.size).toBe(4);
      const indices = tf.tensor1d([1, 0, 1], 'int32');
      const masks = table.gather(indices);
      expect(masks.arraySync()).toEqual([
        [0, 0, 0.5, 1],
        [1, 1, 0, 0],
        [0, 0, 0.5, 1],
      ]);
      tf.dispose([indices, masks]);
      table.dispose();
      table.dispose();
      const again = tf.tensor1d([0], 'int32');
      expect(() => table.gather(again)).toThrow(/mask table.*was disposed/);
      again.dispose();
    });
    expect(() => new MaskTable([])).toThrow(/at least one row of length >= 1/);
    expect(() => new MaskTable([[]])).toThrow(/at least one row of length >= 1/);
    expect(() => new MaskTable([[1, 0], [1]])).toThrow(/row 1 has length 1, row 0 has 2/);
    // The default range is [0, 1], edges included.
    expect(() => new MaskTable([[0, 1]]).dispose()).not.toThrow();
    for (const bad of [Number.NaN, -0.01, 1.01, Number.POSITIVE_INFINITY, -1]) {
      expect(() => new MaskTable([[0, bad]])).toThrow(
        new RegExp(`mask table row 0 has weight ${bad} at flat index 1.*\\[0, 1\\]`),
      );
    }
    expect(() => new MaskTable([[0]], { range: [1, 0] })).toThrow(
      /a mask table's range must be \[min, max\] with min <= max, got \[1, 0\]/,
    );
    const point = new MaskTable([[0.5]], { range: [0.5, 0.5] });
    expect(point.range).toEqual([0.5, 0.5]);
    point.dispose();
    // A wider range declared on purpose (ERA's reversing rows), edges included.
    const era = new MaskTable([[-0.75, 1, 0]], { range: [-0.75, 1] });
    expect(Array.from(era.values[0]!)).toEqual([-0.75, 1, 0]);
    era.dispose();
    expect(() => new MaskTable([[-0.76, 1]], { range: [-0.75, 1] })).toThrow(
      /weight -0\.76 at flat index 0.*\[-0\.75, 1\] \(as declared\)/,
    );
    expect(() => new MaskTable([[1.01]], { range: [-0.75, 1] })).toThrow(/weight 1\.01/);
    expect(() => new MaskTable([[3]], { range: [0, 2] })).toThrow(
      /weight 3 at flat index 0; mask weights must be numbers in \[0, 2\] \(as declared\)/,
    );
    try {
      new MaskTable([[0, Number.NaN]]);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ name: 'GradientRoutingError', code: 'invalid-mask' });
    }
  });

  it('oversight routes the overseen examples and gives the others the full mask', async () => {
    await useBackend(backend);
    await expectNoLeak(() => {
      const rule = labelRule(4, halves);
      // Dataset examples 1 and 3 are overseen.
      const partial = oversightRule(rule, Uint8Array.of(0, 1, 0, 1));
      expect(partial.description).toMatch(/oversight of 4 examples over label rule/);
      // The wrapped rule's declared range is the oversight rule's (mask validation checks it).
      expect(partial.range).toEqual([0, 1]);
      const plain = oversightRule({ description: 'plain', masks: (_b, a) => tf.onesLike(a) }, [1]);
      expect(plain.range).toBeUndefined();
      expect('range' in plain).toBe(false);
      plain.dispose();
      const labels = tf.tensor1d([0, 1, 2, 1], 'int32');
      const indices = tf.tensor1d([3, 2, 1, 0], 'int32');
      const activation = tf.zeros([4, 4]);
      const masks = partial.masks({ labels, indices }, activation);
      expect(masks.arraySync()).toEqual([
        [1, 1, 0, 0],
        [1, 1, 1, 1],
        [1, 1, 0, 0],
        [1, 1, 1, 1],
      ]);
      // Booleans work as flags too; per-token labels broadcast the flag over tokens.
      const booleans = oversightRule(rule, [true, false]);
      const tokens = tf.tensor2d(
        [
          [0, 1],
          [1, 0],
        ],
        [2, 2],
        'int32',
      );
      const twoIndices = tf.tensor1d([0, 1], 'int32');
      const tokenActivation = tf.zeros([2, 2, 4]);
      const perToken = booleans.masks({ labels: tokens, indices: twoIndices }, tokenActivation);
      expect(perToken.arraySync()).toEqual([
        [
          [1, 1, 0, 0],
          [0, 0, 1, 0],
        ],
        [
          [1, 1, 1, 1],
          [1, 1, 1, 1],
        ],
      ]);
      expect(() => partial.masks({ labels }, activation)).toThrow(
        /reads batch\.indices \(each example's dataset index\), which is missing/,
      );
      partial.dispose();
      booleans.dispose();
      expect(() => partial.masks({ labels, indices }, activation)).toThrow(
        /oversight rule was disposed/,
      );
      tf.dispose([
        labels,
        indices,
        activation,
        masks,
        tokens,
        twoIndices,
        perToken,
        tokenActivation,
      ]);
      rule.dispose();
    });
  });

  it('the gather form equals the direct construction over random partitions', async () => {
    await useBackend(backend);
    const case_ = fc
      .record({
        numClasses: fc.integer({ min: 1, max: 8 }),
        size: fc.integer({ min: 1, max: 10 }),
        numRoutes: fc.integer({ min: 1, max: 4 }),
        unrouted: fc.constantFrom('full' as const, 'none' as const),
      })
      .chain((c) =>
        fc.record({
          c: fc.constant(c),
          routeOfClass: fc.array(fc.integer({ min: -1, max: c.numRoutes - 1 }), {
            minLength: c.numClasses,
            maxLength: c.numClasses,
          }),
          dims: fc.array(
            fc
              .array(fc.boolean(), { minLength: c.size, maxLength: c.size })
              .filter((bits) => bits.includes(true)),
            { minLength: c.numRoutes, maxLength: c.numRoutes },
          ),
          labels: fc.array(fc.integer({ min: 0, max: c.numClasses - 1 }), { maxLength: 12 }),
        }),
      );
    await fc.assert(
      fc.asyncProperty(case_, async ({ c, routeOfClass, dims, labels }) => {
        const routes: LabelRoute[] = dims.map((bits, r) => ({
          labels: routeOfClass.flatMap((route, label) => (route === r ? [label] : [])),
          region: runsOf(bits),
        }));
        const options = { numClasses: c.numClasses, unrouted: c.unrouted };
        const reference = labels.map((label) => {
          const route = routeOfClass[label]!;
          if (route < 0) return Array<number>(c.size).fill(c.unrouted === 'full' ? 1 : 0);
          return dims[route]!.map(Number);
        });
        expect(rows(labelMaskValues(labels, c.size, routes, options), c.size)).toEqual(reference);
        await expectNoLeak(() => {
          const table = labelRule(c.size, routes, options);
          const labelTensor = tf.tensor1d(labels, 'int32');
          const gathered = table.masksFor(labelTensor);
          expect(gathered.shape).toEqual([labels.length, c.size]);
          expect(rows(gathered.dataSync(), c.size)).toEqual(reference);
          tf.dispose([labelTensor, gathered]);
          table.dispose();
        });
      }),
      { numRuns: 40 },
    );
  });
  it('soft mask combinators broadcast and match the host forms', async () => {
    await useBackend(backend);
    await expectNoLeak(() => {
      const perExample = softMask([
        [1, 0.5, 0],
        [0, 0.25, 1],
      ]);
      const perDim = softMask([0.5, 1, 0]);
      const union = maskUnion(perExample, perDim);
      const intersection = maskIntersection(perExample, perDim);
      const complement = maskComplement(perExample);
      expect(union.arraySync()).toEqual([
        [1, 1, 0],
        [0.5, 1, 1],
      ]);
      expect(intersection.arraySync()).toEqual([
        [0.5, 0.5, 0],
        [0, 0.25, 0],
      ]);
      expect(complement.arraySync()).toEqual([
        [0, 0.5, 1],
        [1, 0.75, 0],
      ]);
      const last = softMask([0, 0, 1]);
      const three = maskUnion(perDim, perDim, last);
      expect(three.arraySync()).toEqual([0.5, 1, 1]);
      const bool = tf.tensor1d([1, 0, 1], 'bool');
      const fromBool = maskComplement(bool);
      expect(fromBool.dtype).toBe('float32');
      expect(Array.from(fromBool.dataSync())).toEqual([0, 1, 0]);
      const wrong = tf.ones([2]);
      expect(() => maskUnion(perExample, wrong)).toThrow(
        /^gradient-routing: maskUnion cannot broadcast masks of shapes \[2,3\] and \[2\]/,
      );
      expect(() => maskIntersection()).toThrow(/maskIntersection needs at least one mask/);
      // Three masks: each is checked against what the previous ones broadcast to.
      const column = tf.ones([2, 1]);
      const row = tf.ones([1, 3]);
      const square = tf.ones([3, 3]);
      const full = tf.ones([2, 3]);
      const joined = maskUnion(column, row, full);
      expect(joined.shape).toEqual([2, 3]);
      expect(() => maskUnion(column, row, square)).toThrow(
        /cannot broadcast masks of shapes \[2,3\] and \[3,3\]/,
      );
      // Masks of different ranks: the shape so far keeps the larger rank.
      const vector = tf.ones([3]);
      const tall = tf.ones([4, 3]);
      expect(() => maskUnion(vector, full, tall)).toThrow(
        /^gradient-routing: maskUnion cannot broadcast masks of shapes \[2,3\] and \[4,3\]/,
      );
      tf.dispose([vector, tall]);
      const ints = tf.tensor1d([1, 0], 'int32');
      const fromInts = maskUnion(ints);
      expect(fromInts.dtype).toBe('float32');
      const intersected = maskIntersection(ints, ints);
      expect(intersected.dtype).toBe('float32');
      tf.dispose([column, row, square, full, joined, ints, fromInts, intersected]);
      const bad = tf.tensor1d([0, Number.NaN]);
      expect(() => assertSoftMask(bad)).toThrow(/weight NaN at flat index 1/);
      expect(() => assertSoftMask(perExample)).not.toThrow();
      tf.dispose([perExample, perDim, union, intersection, complement, three, bool]);
      tf.dispose([fromBool, wrong, bad, last]);
    });
  });
  it('routeGradients with built masks gives exactly +0 gradient where the mask is 0', async () => {
    await useBackend(backend);
    const routes = classBlockRoutes(3, 2);
    const table = labelRule(7, routes, { unrouted: 'full' });
    const overseen = sampleOversight(6, 0.5, 99);
    const partial = oversightRule(table, overseen);
    const indices = [0, 1, 2, 3, 4, 5];
    const labels = tf.tensor1d([0, 1, 2, 2, 1, 0], 'int32');
    // Upstream gradients of every sign and size, including NaN and Infinity.
    const upstream = tf.tensor2d(
      Array.from({ length: 42 }, (_, i) => [Number.NaN, -3, 2.5, Infinity, -0.5, 7][i % 6]!),
      [6, 7],
    );
    const x = tf.randomNormal([6, 7], 0, 1, 'float32', 1);
    await expectNoLeak(() => {
      const masks = tf.tidy(() =>
        maskIntersection(
          partial.masks({ labels, indices: tf.tensor1d(indices, 'int32') }, x),
          softMask([1, 1, 0.5, 1, 1, 1, 0]),
        ),
      );
      const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(routeGradients(v, masks), upstream)))(x);
      const m = masks.dataSync();
      const g = grad.dataSync();
      const u = upstream.dataSync();
      let zeros = 0;
      m.forEach((weight, i) => {
        if (weight === 0) {
          zeros++;
          expect(Object.is(g[i], 0)).toBe(true);
        } else {
          expect(g[i]).toBe(Math.fround(u[i]! * weight));
        }
      });
      // The check must bite: blocked and passed entries both occur.
      expect(zeros).toBeGreaterThan(0);
      expect(zeros).toBeLessThan(m.length);
      tf.dispose([masks, grad]);
    });
    tf.dispose([labels, upstream, x]);
    partial.dispose();
    table.dispose();
  });
});
