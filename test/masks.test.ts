import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { routeGradients } from '../src/core/routing/route.js';
import {
  applyOversight,
  applyOversightValues,
  assertSoftMask,
  classBlockRoutes,
  compileLabelRoutes,
  type LabelRoute,
  labelMask,
  labelMaskValues,
  labelRouteTable,
  maskComplement,
  maskComplementValues,
  maskIntersection,
  maskIntersectionValues,
  maskUnion,
  maskUnionValues,
  type Region,
  type RouteTable,
  sampleOversight,
  seededRandom,
  softMask,
  softMaskValues,
  validateRouteTableSpec,
} from '../src/index.js';
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
      /example 0 has label 3.*\[0, 3\).*larger numClasses/,
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
    ['NaN', Number.NaN, /mask has weight NaN at flat index 1.*\[0, 1\]/],
    ['above 1', 1.5, /mask has weight 1\.5 at flat index 1/],
    ['below 0', -0.1, /mask has weight -0\.1 at flat index 1/],
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

  it.each([-0.1, 1.1, Number.NaN])('rejects oversight fraction %s', (fraction) => {
    expect(() => sampleOversight(10, fraction, 0)).toThrow(
      /^gradient-routing: oversight fraction must be in \[0, 1\]/,
    );
  });

  it('applies oversight to host masks, per batch or per dataset index', () => {
    const masks = Float32Array.of(1, 0, 0, 1, 0.5, 0);
    expect(Array.from(applyOversightValues(masks, 2, [1, 0, 1]))).toEqual([1, 0, 1, 1, 0.5, 0]);
    const dataset = Uint8Array.of(0, 0, 1, 1, 0);
    expect(Array.from(applyOversightValues(masks, 2, dataset, [4, 2, 1]))).toEqual([
      1, 1, 0, 1, 1, 1,
    ]);
    expect(Array.from(masks)).toEqual([1, 0, 0, 1, 0.5, 0]);
  });

  it('rejects mismatched oversight input', () => {
    const masks = new Float32Array(4);
    expect(() => applyOversightValues(masks, 2, [1])).toThrow(
      /masks hold 2 examples but 1 oversight flags were given/,
    );
    expect(() => applyOversightValues(masks, 2, [1, 1, 1], [0, 3])).toThrow(
      /dataset index 3 \(batch example 1\) is outside the oversight flags \[0, 3\)/,
    );
    expect(() => applyOversightValues(masks, 3, [1, 1])).toThrow(
      /4 mask values do not form rows of size 3/,
    );
  });
});

describe.each(TEST_BACKENDS)('mask tensors on %s', (backend) => {
  it('labelMask and the route table agree with hand-computed masks', async () => {
    await useBackend(backend);
    const expected = [
      [1, 1, 0, 0],
      [0, 0, 1, 0],
      [1, 1, 0, 0],
    ];
    await expectNoLeak(() => {
      const direct = labelMask([0, 1, 2], 4, halves);
      expect(direct.shape).toEqual([3, 4]);
      expect(direct.arraySync()).toEqual(expected);
      direct.dispose();
      const table = labelRouteTable(4, halves);
      const fromHost = table.masksFor([0, 1, 2]);
      const labels = tf.tensor1d([0, 1, 2], 'int32');
      const fromTensor = table.masksFor(labels);
      const floatLabels = tf.tensor1d([0, 1, 2], 'float32');
      const fromFloat = table.masksFor(floatLabels);
      for (const masks of [fromHost, fromTensor, fromFloat]) {
        expect(masks.dtype).toBe('float32');
        expect(masks.arraySync()).toEqual(expected);
      }
      tf.dispose([fromHost, fromTensor, fromFloat, labels, floatLabels]);
      table.dispose();
      table.dispose();
    });
  });

  it('masksFor returns exactly one new tensor', async () => {
    await useBackend(backend);
    const table = labelRouteTable(4, halves);
    const labels = tf.tensor1d([2, 1], 'int32');
    for (const input of [labels, [2, 1], Int32Array.of(2, 1)] as const) {
      const before = tf.memory().numTensors;
      const masks = table.masksFor(input);
      expect(tf.memory().numTensors).toBe(before + 1);
      masks.dispose();
    }
    labels.dispose();
    table.dispose();
  });

  it('a table built inside tf.tidy survives it', async () => {
    await useBackend(backend);
    let table: RouteTable | undefined;
    tf.tidy(() => {
      table = labelRouteTable(4, halves);
    });
    if (table === undefined) throw new Error('tidy did not run');
    const masks = table.masksFor([1]);
    expect(masks.arraySync()).toEqual([[0, 0, 1, 0]]);
    masks.dispose();
    table.dispose();
  });

  it('sends invalid on-device labels to the unrouted row, or throws when validating', async () => {
    await useBackend(backend);
    await expectNoLeak(() => {
      const strict = labelRouteTable(4, halves);
      const full = labelRouteTable(4, halves, { unrouted: 'full', numClasses: 4 });
      const labels = tf.tensor1d([-1, 7, 3, 1], 'int32');
      const blocked = strict.masksFor(labels);
      expect(blocked.arraySync()).toEqual([
        [0, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 1, 0],
      ]);
      const opened = full.masksFor(labels);
      expect(opened.arraySync()).toEqual([
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [0, 0, 1, 0],
      ]);
      expect(() => strict.masksFor(labels, { validate: true })).toThrow(
        /^gradient-routing: example 0 has label -1/,
      );
      const unrouted = tf.tensor1d([1, 3], 'int32');
      const validated = full.masksFor(unrouted, { validate: true });
      expect(validated.arraySync()).toEqual([
        [0, 0, 1, 0],
        [1, 1, 1, 1],
      ]);
      expect(() => strict.masksFor([0, 3])).toThrow(/example 1 has label 3/);
      const fractional = tf.tensor1d([0.5], 'float32');
      expect(() => strict.masksFor(fractional, { validate: true })).toThrow(/label 0\.5/);
      const matrix = tf.tensor2d([[0, 1]], [1, 2], 'int32');
      expect(() => strict.masksFor(matrix as unknown as tf.Tensor1D)).toThrow(
        /needs a 1-D tensor of labels, got shape \[1,2\].*tf\.argMax/,
      );
      tf.dispose([blocked, opened, validated, labels, unrouted, fractional, matrix]);
      strict.dispose();
      full.dispose();
      expect(() => strict.masksFor([0])).toThrow(/RouteTable was disposed/);
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
          const table = labelRouteTable(c.size, routes, options);
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
      const bad = tf.tensor1d([0, Number.NaN]);
      expect(() => assertSoftMask(bad)).toThrow(/weight NaN at flat index 1/);
      expect(() => assertSoftMask(perExample)).not.toThrow();
      tf.dispose([perExample, perDim, union, intersection, complement, three, bool]);
      tf.dispose([fromBool, wrong, bad, last]);
    });
  });

  it('applyOversight gives unrouted examples the full mask', async () => {
    await useBackend(backend);
    await expectNoLeak(() => {
      const masks = tf.tensor2d([
        [1, 0, 0],
        [0, 1, 0],
        [0, 0.5, 1],
      ]);
      const dataset = Uint8Array.of(1, 0, 0, 1);
      const partial = applyOversight(masks, dataset, [3, 2, 0]);
      expect(partial.arraySync()).toEqual([
        [1, 0, 0],
        [1, 1, 1],
        [0, 0.5, 1],
      ]);
      expect(Array.from(partial.dataSync())).toEqual(
        Array.from(applyOversightValues(masks.dataSync() as Float32Array, 3, dataset, [3, 2, 0])),
      );
      const direct = applyOversight(masks, [false, true, false]);
      expect(direct.arraySync()).toEqual([
        [1, 1, 1],
        [0, 1, 0],
        [1, 1, 1],
      ]);
      expect(() => applyOversight(masks, [1])).toThrow(/masks hold 3 examples but 1/);
      const flat = tf.ones([3]);
      expect(() => applyOversight(flat, [1, 1, 1])).toThrow(
        /needs per-example masks \[B, \.\.\.\]/,
      );
      tf.dispose([masks, partial, direct, flat]);
    });
  });

  it('routeGradients with built masks gives exactly +0 gradient where the mask is 0', async () => {
    await useBackend(backend);
    const routes = classBlockRoutes(3, 2);
    const table = labelRouteTable(7, routes, { unrouted: 'full' });
    const overseen = sampleOversight(6, 0.5, 99);
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
          applyOversight(table.masksFor(labels), overseen, indices),
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
    table.dispose();
  });
});
