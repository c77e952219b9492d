import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { ablate } from '../src/core/masks/ablate.js';
import {
  gateForward,
  type MaskInput,
  type NestedNumbers,
  routeGradients,
  setMaskValidation,
  stopGradient,
} from '../src/core/routing/route.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

/** Upstream gradients that poison a plain `mask * dy`: NaN, ±Infinity, and a signed zero. */
const SPECIALS = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0];
const DY_PATTERN = [...SPECIALS, 1.5, -2.25, 3, 0.1];
const X_PATTERN = [
  Number.NaN,
  -0,
  Number.POSITIVE_INFINITY,
  1e-45,
  -3.5,
  0,
  2,
  Number.NEGATIVE_INFINITY,
];

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((product, size) => product * size, 1);
}

function cycle(pattern: readonly number[], size: number): number[] {
  return Array.from({ length: size }, (_, i) => pattern[i % pattern.length]!);
}

/** Row-major values nested into arrays of the given shape. */
function nest(values: readonly number[], shape: readonly number[]): NestedNumbers[] {
  if (shape.length === 1) return values.slice(0, shape[0]);
  const [outer, ...inner] = shape;
  const step = sizeOf(inner);
  return Array.from({ length: outer! }, (_, i) => nest(values.slice(i * step), inner));
}

/** `values` of shape `shape`, broadcast (numpy rules) to `target`, row-major. */
function broadcastValues(
  values: readonly number[],
  shape: readonly number[],
  target: readonly number[],
): number[] {
  const offset = target.length - shape.length;
  return Array.from({ length: sizeOf(target) }, (_, flat) => {
    let rest = flat;
    let index = 0;
    let stride = 1;
    for (let axis = target.length - 1; axis >= 0; axis--) {
      const coordinate = rest % target[axis]!;
      rest = Math.floor(rest / target[axis]!);
      const maskAxis = axis - offset;
      if (maskAxis >= 0) {
        const size = shape[maskAxis]!;
        index += (size === 1 ? 0 : coordinate) * stride;
        stride *= size;
      }
    }
    return values[index]!;
  });
}

function show(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

/** Indices where the routed gradient is not `fround(mask * dy)`, or not +0 where the mask is 0. */
function routingMismatches(
  grad: ArrayLike<number>,
  mask: readonly number[],
  dy: readonly number[],
): string[] {
  const bad: string[] = [];
  for (let i = 0; i < mask.length; i++) {
    const expected = mask[i] === 0 ? 0 : Math.fround(mask[i]! * dy[i]!);
    if (!Object.is(grad[i], expected)) {
      bad.push(
        `#${i}: got ${show(grad[i]!)}, want ${show(expected)} (mask ${mask[i]}, dy ${dy[i]})`,
      );
    }
  }
  return bad;
}

/** Asserts two float32 buffers are identical bit for bit (NaN payloads and signed zeros too). */
function expectSameBits(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  expect(Array.from(a)).toEqual(Array.from(e));
}

function floatData(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

type MaskKind = 'tensor' | 'array' | 'function' | 'bool' | 'int32';

/** Builds a mask of the given kind; 'bool' and 'int32' turn soft values into 0/1. */
function makeMask(kind: MaskKind, values: readonly number[], shape: readonly number[]): MaskInput {
  switch (kind) {
    case 'tensor':
      return tf.tensor(values as number[], shape as number[], 'float32');
    case 'array':
      return nest(values, shape);
    case 'function':
      return () => tf.tensor(values as number[], shape as number[], 'float32');
    case 'bool':
      return tf.tensor(
        values.map((value) => value !== 0),
        shape as number[],
        'bool',
      );
    case 'int32':
      return tf.tensor(
        values.map((value) => (value !== 0 ? 1 : 0)),
        shape as number[],
        'int32',
      );
  }
}

function effectiveMask(kind: MaskKind, values: readonly number[]): number[] {
  return kind === 'bool' || kind === 'int32'
    ? values.map((value) => (value !== 0 ? 1 : 0))
    : [...values];
}

function disposeMask(mask: MaskInput): void {
  if (mask instanceof tf.Tensor) mask.dispose();
}

/** Gradient of `routeGradients(x, mask)` for an explicit upstream gradient `dy`. */
function routedGrad(x: tf.Tensor, mask: MaskInput, dy: tf.Tensor): tf.Tensor {
  return tf.grad((v: tf.Tensor) => routeGradients(v, mask))(x, dy);
}

const MASK_CASES: Array<{
  name: string;
  xShape: number[];
  maskShape: number[];
  values: number[];
}> = [
  { name: '[D]', xShape: [3, 4], maskShape: [4], values: [1, 0, 0.5, -0] },
  { name: '[B,1]', xShape: [3, 4], maskShape: [3, 1], values: [1, 0, 0.25] },
  { name: '[B,D]', xShape: [2, 3], maskShape: [2, 3], values: [1, 0, 0.3, 0, 1, 0.75] },
  { name: '[B,T,1]', xShape: [2, 3, 4], maskShape: [2, 3, 1], values: [1, 0, 1, 0, 0.5, 1] },
  { name: '[1,D]', xShape: [2, 3], maskShape: [1, 3], values: [0, 1, 0.125] },
];
const MASK_KINDS: MaskKind[] = ['tensor', 'array', 'function', 'bool', 'int32'];

describe.each(TEST_BACKENDS)('routeGradients on %s', (backend) => {
  beforeEach(async () => {
    await useBackend(backend);
  });

  describe.each(MASK_KINDS)('with %s masks', (kind) => {
    it.each(MASK_CASES)('gives mask·dy, and exact +0 where the mask is 0, for $name', (c) => {
      const mask = makeMask(kind, c.values, c.maskShape);
      const x = tf.tensor(cycle(X_PATTERN, sizeOf(c.xShape)), c.xShape);
      const dyValues = cycle(DY_PATTERN, sizeOf(c.xShape));
      const dy = tf.tensor(dyValues, c.xShape);
      const grad = routedGrad(x, mask, dy);
      const full = broadcastValues(effectiveMask(kind, c.values), c.maskShape, c.xShape);
      expect(full.some((value) => value === 0)).toBe(true);
      expect(routingMismatches(floatData(grad), full, dyValues)).toEqual([]);
      tf.dispose([x, dy, grad]);
      disposeMask(mask);
    });

    it.each(MASK_CASES)('is the identity in the forward pass, bit for bit, for $name', (c) => {
      const mask = makeMask(kind, c.values, c.maskShape);
      const x = tf.tensor(cycle(X_PATTERN, sizeOf(c.xShape)), c.xShape);
      const routed = routeGradients(x, mask);
      expect(routed.shape).toEqual(c.xShape);
      expectSameBits(floatData(routed), floatData(x));
      tf.dispose([x, routed]);
      disposeMask(mask);
    });
  });

  it('blocks NaN and ±Infinity that come from a downstream multiplication', () => {
    const x = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const poison = tf.tensor2d([
      [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
      [Number.NaN, 2, Number.POSITIVE_INFINITY],
    ]);
    const mask = [
      [0, 0, 0],
      [1, 0, 1],
    ];
    const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(routeGradients(v, mask), poison)))(x);
    const values = Array.from(floatData(grad));
    expect(values.slice(0, 3).every((v) => Object.is(v, 0))).toBe(true);
    expect(Number.isNaN(values[3])).toBe(true);
    expect(Object.is(values[4], 0)).toBe(true);
    expect(values[5]).toBe(Number.POSITIVE_INFINITY);
    tf.dispose([x, poison, grad]);
  });

  it('matches hand-computed gradients', () => {
    const x = tf.tensor2d([
      [1, -2, 3],
      [0.5, 4, -1],
    ]);
    const c = tf.tensor2d([
      [2, 3, 4],
      [5, 6, 7],
    ]);
    const mask = tf.tensor2d([
      [1, 0, 0.5],
      [0, 1, 0.25],
    ]);
    // d/dx sum(c * r) = mask * c
    const linear = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(routeGradients(v, mask), c)))(x);
    expect(Array.from(floatData(linear))).toEqual([2, 0, 2, 0, 6, 1.75]);
    // d/dx sum(r²) = mask * 2x
    const square = tf.grad((v: tf.Tensor) => tf.sum(tf.square(routeGradients(v, mask))))(x);
    expect(Array.from(floatData(square))).toEqual([2, 0, 3, 0, 8, -0.5]);
    // per-example [B,1] mask: example 0 learns at half rate, example 1 not at all
    const perExample = tf.grad((v: tf.Tensor) =>
      tf.sum(tf.mul(routeGradients(v, [[0.5], [0]]), c)),
    )(x);
    expect(Array.from(floatData(perExample))).toEqual([1, 1.5, 2, 0, 0, 0]);
    tf.dispose([x, c, mask, linear, square, perExample]);
  });

  it('passes a finite-difference check on a small routed MLP', () => {
    const rows = 4;
    const inputs = 3;
    const hidden = 5;
    const outputs = 2;
    const seq = (n: number, scale: number, shift: number): number[] =>
      Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 1.7 + shift) * scale));
    const xv = seq(rows * inputs, 1, 0.3);
    const w1v = seq(inputs * hidden, 0.8, 1.1);
    const b1v = seq(hidden, 0.2, 2.9);
    const w2v = seq(hidden * outputs, 0.7, 0.4);
    const yv = seq(rows * outputs, 1, 5.2);
    const maskv = [1, 0, 0.5, 1, 0, 0, 1, 1, 0.25, 1, 1, 1, 0, 0, 0, 0.75, 0, 1, 0, 1];

    // Float64 forward in plain JS. Routing makes the gradient that of a surrogate in which the
    // blocked part of h is frozen: h_eff = m·h(W) + (1 − m)·h(W₀), equal to h at W₀.
    const hiddenOf = (w1: number[], b1: number[]): number[] =>
      Array.from({ length: rows * hidden }, (_, k) => {
        const r = Math.floor(k / hidden);
        const j = k % hidden;
        let s = b1[j]!;
        for (let i = 0; i < inputs; i++) s += xv[r * inputs + i]! * w1[i * hidden + j]!;
        return Math.tanh(s);
      });
    const h0 = hiddenOf(w1v, b1v);
    const loss = (w1: number[], b1: number[], w2: number[], mask: number[]): number => {
      const h = hiddenOf(w1, b1).map((v, k) => mask[k]! * v + (1 - mask[k]!) * h0[k]!);
      let total = 0;
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < outputs; o++) {
          let s = 0;
          for (let j = 0; j < hidden; j++) s += h[r * hidden + j]! * w2[j * outputs + o]!;
          total += 0.5 * (s - yv[r * outputs + o]!) ** 2;
        }
      }
      return total;
    };
    const eps = 1e-6;
    const numeric = (which: 0 | 1 | 2, mask: number[]): number[] => {
      const params = [w1v, b1v, w2v];
      return params[which]!.map((_, k) => {
        const at = (delta: number): number => {
          const p = params.map((q) => [...q]);
          p[which]![k]! += delta;
          return loss(p[0]!, p[1]!, p[2]!, mask);
        };
        return (at(eps) - at(-eps)) / (2 * eps);
      });
    };

    const x = tf.tensor2d(xv, [rows, inputs]);
    const y = tf.tensor2d(yv, [rows, outputs]);
    const mask = tf.tensor2d(maskv, [rows, hidden]);
    const params = [
      tf.tensor2d(w1v, [inputs, hidden]),
      tf.tensor1d(b1v),
      tf.tensor2d(w2v, [hidden, outputs]),
    ];
    const grads = tf.grads((w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor) => {
      const h = tf.tanh(tf.add(tf.matMul(x as tf.Tensor2D, w1 as tf.Tensor2D), b1));
      const out = tf.matMul(routeGradients(h, mask) as tf.Tensor2D, w2 as tf.Tensor2D);
      return tf.mul(0.5, tf.sum(tf.square(tf.sub(out, y))));
    })(params);

    const ones = maskv.map(() => 1);
    for (const which of [0, 1, 2] as const) {
      const analytic = Array.from(floatData(grads[which]!));
      const expected = numeric(which, maskv);
      const errors = analytic
        .map((a, k) => ({ k, a, e: expected[k]! }))
        .filter(({ a, e }) => Math.abs(a - e) > 1e-4 + 1e-3 * Math.abs(e));
      expect(errors).toEqual([]);
      if (which < 2) {
        // The check can fail: the unrouted gradient of the weights before the routing differs.
        const unrouted = numeric(which, ones);
        const gap = Math.max(...unrouted.map((u, k) => Math.abs(u - expected[k]!)));
        expect(gap).toBeGreaterThan(1e-2);
      }
    }
    tf.dispose([x, y, mask, ...params, ...grads]);
  });

  describe('property-based', () => {
    const shapeArb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 });
    const caseArb = shapeArb.chain((xShape) =>
      fc
        .record({
          drop: fc.integer({ min: 0, max: xShape.length }),
          ones: fc.array(fc.boolean(), { minLength: xShape.length, maxLength: xShape.length }),
          kind: fc.constantFrom<MaskKind>('tensor', 'array', 'function'),
        })
        .chain(({ drop, ones, kind }) => {
          const kept = xShape.map((size, axis) => (ones[axis] ? 1 : size)).slice(drop);
          // A number-array mask has at least one axis; a scalar mask is a tensor or function.
          const maskShape = kind === 'array' && kept.length === 0 ? [1] : kept;
          const size = sizeOf(xShape);
          return fc.record({
            xShape: fc.constant(xShape),
            maskShape: fc.constant(maskShape),
            kind: fc.constant(kind),
            mask: fc.array(
              fc.oneof(fc.constantFrom(0, -0, 1, 0.5), fc.float({ min: 0, max: 1, noNaN: true })),
              { minLength: sizeOf(maskShape), maxLength: sizeOf(maskShape) },
            ),
            x: fc.array(fc.float(), { minLength: size, maxLength: size }),
            dy: fc.array(fc.float(), { minLength: size, maxLength: size }),
          });
        }),
    );

    it('gives mask·dy where the mask is nonzero, +0 where it is 0, and an identical forward', async () => {
      await fc.assert(
        fc.asyncProperty(caseArb, async (c) => {
          await expectNoLeak(() => {
            const mask = makeMask(c.kind, c.mask, c.maskShape);
            const x = tf.tensor(c.x, c.xShape);
            const dy = tf.tensor(c.dy, c.xShape);
            const routed = routeGradients(x, mask);
            const grad = routedGrad(x, mask, dy);
            const full = broadcastValues(c.mask, c.maskShape, c.xShape);
            expect(routed.shape).toEqual(c.xShape);
            expectSameBits(floatData(routed), floatData(x));
            expect(routingMismatches(floatData(grad), full, c.dy)).toEqual([]);
            tf.dispose([x, dy, routed, grad]);
            disposeMask(mask);
          });
        }),
        { numRuns: 60 },
      );
    });

    it('rejects masks that do not broadcast, naming both shapes, before creating tensors', () => {
      const badArb = shapeArb.chain((xShape) =>
        fc.record({
          xShape: fc.constant(xShape),
          axis: fc.integer({ min: 0, max: xShape.length - 1 }),
          extraLeading: fc.boolean(),
          kind: fc.constantFrom<MaskKind>('tensor', 'array', 'bool'),
        }),
      );
      fc.assert(
        fc.property(badArb, (c) => {
          const maskShape = c.extraLeading
            ? [2, ...c.xShape]
            : c.xShape.map((size, axis) => (axis === c.axis ? size + 1 : size));
          const mask = makeMask(c.kind, cycle([1, 0], sizeOf(maskShape)), maskShape);
          const x = tf.zeros(c.xShape);
          const before = tf.memory().numTensors;
          expect(() => routeGradients(x, mask)).toThrowError(
            `mask of shape [${maskShape.join(',')}] does not broadcast to the routed tensor of ` +
              `shape [${c.xShape.join(',')}]`,
          );
          expect(() => gateForward(x, mask)).toThrowError(/^gradient-routing: /);
          expect(tf.memory().numTensors).toBe(before);
          x.dispose();
          disposeMask(mask);
        }),
        { numRuns: 40 },
      );
    });
  });

  it('rejects a function mask of the wrong shape without leaking what it built', async () => {
    const x = tf.zeros([2, 3]);
    await expectNoLeak(() => {
      expect(() => routeGradients(x, () => tf.ones([3, 2]))).toThrowError(
        'mask of shape [3,2] does not broadcast to the routed tensor of shape [2,3]',
      );
    });
    x.dispose();
  });

  it('rejects bad inputs with messages that say what to do', () => {
    const ints = tf.tensor1d([1, 2], 'int32');
    const x = tf.zeros([2]);
    const strings = tf.tensor1d(['a', 'b']);
    expect(() => routeGradients(ints, [1, 0])).toThrowError(
      /^gradient-routing: routeGradients needs a float32 tensor, got int32\. Cast it/,
    );
    expect(() => routeGradients([1, 2] as unknown as tf.Tensor, [1, 0])).toThrowError(
      /^gradient-routing: routeGradients needs a tf\.Tensor/,
    );
    expect(() => routeGradients(x, strings)).toThrowError(
      /^gradient-routing: a mask must be a float32, int32 or bool tensor, got string/,
    );
    expect(() => routeGradients(x, [[1, 0], [1]])).toThrowError(/^gradient-routing: .*ragged/);
    expect(() => routeGradients(x, () => [1, 0] as unknown as tf.Tensor)).toThrowError(
      /^gradient-routing: a mask function must return a tf\.Tensor/,
    );
    expect(() => routeGradients(x, 'all' as unknown as MaskInput)).toThrowError(
      /^gradient-routing: mask must be a tf\.Tensor, a number array, or a function/,
    );
    expect(() => stopGradient(ints)).toThrowError(/^gradient-routing: stopGradient needs/);
    expect(() => gateForward(ints, [1, 0])).toThrowError(
      /^gradient-routing: gateForward needs a float32 tensor, got int32/,
    );
    expect(() => routeGradients(x, [['a', 'b']] as unknown as number[][])).toThrowError(
      /^gradient-routing: mask arrays must hold numbers, found string/,
    );
    expect(() => routeGradients(x, strings)).toThrowError(
      /got string\. Build it from numbers, e\.g\. tf\.tensor\(\[1, 0\]\)/,
    );
    // A mask with more axes than the routed tensor is refused even when the extra axes are 1:
    // its gradient would have the mask's shape, not x's.
    const wide = tf.ones([1, 2]);
    expect(() => routeGradients(x, wide)).toThrowError(
      /mask of shape \[1,2\] does not broadcast to the routed tensor of shape \[2\].*for example \[1\] for one weight per example/,
    );
    const matrix = tf.ones([2, 3]);
    expect(() => routeGradients(matrix, [1, 1])).toThrowError(
      /shape \[2\] does not broadcast to the routed tensor of shape \[2,3\].*for example \[B,1\] for one weight per example/,
    );
    tf.dispose([ints, x, strings, wide, matrix]);
  });

  it("never disposes the caller's mask tensors", () => {
    const x = tf.ones([2, 2]);
    const intMask = tf.tensor1d([1, 0], 'int32');
    const floatMask = tf.tensor1d([1, 0]);
    for (const mask of [intMask, floatMask, () => intMask, () => floatMask, () => x]) {
      const routed = routeGradients(x, mask);
      const grad = tf.grad((v: tf.Tensor) => routeGradients(v, mask))(x);
      tf.dispose([routed, grad]);
    }
    expect([x.isDisposed, intMask.isDisposed, floatMask.isDisposed]).toEqual([false, false, false]);
    tf.dispose([x, intMask, floatMask]);
  });

  it('treats a function mask as a constant: no NaN from its derivative, no gradient into it', () => {
    // 1 / (1 + x²) is 0 at ±Infinity, but its derivative there is 0 · NaN; differentiating the
    // mask would put NaN into the gradient of x.
    const x = tf.tensor1d([Number.POSITIVE_INFINITY, 1, Number.NEGATIVE_INFINITY, 2]);
    const soft = (v: tf.Tensor): tf.Tensor => tf.div(1, tf.add(1, tf.square(v)));
    const grad = tf.grad((v: tf.Tensor) => tf.sum(routeGradients(v, soft)))(x);
    const values = Array.from(floatData(grad));
    expect(Object.is(values[0], 0) && Object.is(values[2], 0)).toBe(true);
    expect([values[1], values[3]]).toEqual([0.5, Math.fround(1 / 5)]);

    const w = tf.variable(tf.tensor1d([1, 2]), true, 'routing-test-w');
    const gate = tf.variable(tf.tensor1d([1, 0]), true, 'routing-test-gate');
    const { value, grads } = tf.variableGrads(() =>
      tf.sum(routeGradients(w, () => tf.mul(gate, 1))),
    );
    expect(Object.keys(grads)).toEqual([w.name]);
    expect(Array.from(floatData(grads[w.name]!))).toEqual([1, 0]);
    tf.dispose([x, grad, w, gate, value, ...Object.values(grads)]);
  });

  it('works under tf.grads with several inputs', () => {
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const w = tf.tensor2d([
      [1, 0, 2],
      [0, 1, -1],
    ]);
    const mask = [
      [1, 0, 1],
      [0, 0, 0],
    ];
    // z = x·w routed; loss = sum(z) so dz = 1 where routed, 0 elsewhere.
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(routeGradients(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), mask)),
    )([x, w]);
    // dx = dz·wᵀ, dw = xᵀ·dz with dz = [[1,0,1],[0,0,0]].
    expect(Array.from(floatData(gx!))).toEqual([3, -1, 0, 0]);
    expect(Array.from(floatData(gw!))).toEqual([1, 0, 1, 2, 0, 2]);
    tf.dispose([x, w, gx!, gw!]);
  });

  it('works under tf.variableGrads and optimizer.minimize', async () => {
    const x = tf.tensor2d([
      [1, 2],
      [3, -1],
    ]);
    // Two latent units; unit 1 is blocked for every example, so the weights feeding it must
    // not move, while the decoder after the routing still learns from both units.
    const encoder = tf.variable(
      tf.tensor2d([
        [0.5, -0.25],
        [0.75, 1],
      ]),
      true,
      'routing-test-encoder',
    );
    const decoder = tf.variable(tf.tensor2d([[1], [-2]]), true, 'routing-test-decoder');
    const mask = tf.tensor1d([1, 0]);
    const lossFn = (): tf.Scalar =>
      tf.sum(
        tf.square(tf.matMul(routeGradients(tf.matMul(x, encoder), mask) as tf.Tensor2D, decoder)),
      ) as tf.Scalar;

    const { value, grads } = tf.variableGrads(lossFn);
    const encoderGrad = Array.from(floatData(grads[encoder.name]!));
    expect(Object.is(encoderGrad[1], 0) && Object.is(encoderGrad[3], 0)).toBe(true);
    expect(encoderGrad[0]).not.toBe(0);
    tf.dispose([value, ...Object.values(grads)]);

    const encoderBefore = floatData(encoder).slice();
    const decoderBefore = floatData(decoder).slice();
    for (const optimizer of [tf.train.sgd(0.01), tf.train.adam(0.01)]) {
      // The first step creates the optimizer's state (learning rate, moments); later steps
      // must not add tensors.
      optimizer.minimize(lossFn)?.dispose();
      await expectNoLeak(() => {
        for (let step = 0; step < 3; step++) optimizer.minimize(lossFn)?.dispose();
      });
      optimizer.dispose();
    }
    const encoderAfter = floatData(encoder);
    const decoderAfter = floatData(decoder);
    expect(Object.is(encoderAfter[1], encoderBefore[1])).toBe(true);
    expect(Object.is(encoderAfter[3], encoderBefore[3])).toBe(true);
    expect(encoderAfter[0]).not.toBe(encoderBefore[0]);
    expect(encoderAfter[2]).not.toBe(encoderBefore[2]);
    expect(decoderAfter[0]).not.toBe(decoderBefore[0]);
    expect(decoderAfter[1]).not.toBe(decoderBefore[1]);
    tf.dispose([x, encoder, decoder, mask]);
  });

  it('leaks no tensors, with and without a gradient tape', async () => {
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const dy = tf.onesLike(x);
    const masks: MaskInput[] = [
      [1, 0],
      [[1], [0]],
      () => tf.tensor1d([0, 1]),
      (v) => tf.greater(v, 2),
    ];
    for (const mask of masks) {
      await expectNoLeak(() => routeGradients(x, mask).dispose());
      await expectNoLeak(() => gateForward(x, mask).dispose());
      await expectNoLeak(() => routedGrad(x, mask, dy).dispose());
      await expectNoLeak(() => {
        const { value, grads } = tf.valueAndGrads((v: tf.Tensor) =>
          tf.sum(routeGradients(v, mask)),
        )([x]);
        tf.dispose([value, ...grads]);
      });
    }
    await expectNoLeak(() => tf.tidy(() => routeGradients(x, [1, 0])).dispose());
    await expectNoLeak(() =>
      tf
        .grad((v: tf.Tensor) => stopGradient(v))(x, dy)
        .dispose(),
    );
    await expectNoLeak(() =>
      tf
        .grad((v: tf.Tensor) => ablate(v, [0, 1]))(x, dy)
        .dispose(),
    );
    await expectNoLeak(() => expect(() => routeGradients(x, [1, 0, 1])).toThrowError());
    tf.dispose([x, dy]);
  });

  describe('stopGradient', () => {
    it('is the identity forward and gives exact +0 gradients, even for NaN upstream', () => {
      const x = tf.tensor(cycle(X_PATTERN, 8), [2, 4]);
      const stopped = stopGradient(x);
      expectSameBits(floatData(stopped), floatData(x));
      const dy = tf.tensor(cycle(DY_PATTERN, 8), [2, 4]);
      const grad = tf.grad((v: tf.Tensor) => stopGradient(v))(x, dy);
      expect(Array.from(floatData(grad)).every((v) => Object.is(v, 0))).toBe(true);
      tf.dispose([x, stopped, dy, grad]);
    });

    it('keeps a variable fixed under minimize while others learn', () => {
      const frozen = tf.variable(tf.tensor1d([1, -2]), true, 'routing-test-frozen');
      const free = tf.variable(tf.tensor1d([3, 4]), true, 'routing-test-free');
      const before = floatData(frozen).slice();
      const optimizer = tf.train.sgd(0.1);
      optimizer.minimize(() => tf.sum(tf.square(tf.mul(stopGradient(frozen), free))));
      expectSameBits(floatData(frozen), before);
      expect(Array.from(floatData(free))).not.toEqual([3, 4]);
      optimizer.dispose();
      tf.dispose([frozen, free]);
    });
  });

  describe('gateForward', () => {
    it('scales the forward pass by the mask with exact +0, and the gradient the same way', () => {
      const x = tf.tensor2d([[Number.NaN, Number.POSITIVE_INFINITY, -0, 2]]);
      const keep = [0, 0, 1, 0.5];
      const gated = gateForward(x, keep);
      const values = Array.from(floatData(gated));
      expect(Object.is(values[0], 0) && Object.is(values[1], 0)).toBe(true);
      expect(Object.is(values[2], -0)).toBe(true);
      expect(values[3]).toBe(1);
      const dy = tf.tensor2d([[Number.NaN, Number.NEGATIVE_INFINITY, 3, 2]]);
      const grad = tf.grad((v: tf.Tensor) => gateForward(v, keep))(x, dy);
      expect(
        routingMismatches(floatData(grad), keep, [Number.NaN, Number.NEGATIVE_INFINITY, 3, 2]),
      ).toEqual([]);
      tf.dispose([x, gated, dy, grad]);
    });
  });

  describe('ablate', () => {
    const xValues = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      -0,
      1.5,
      -0,
      Number.NaN,
      2,
      Number.POSITIVE_INFINITY,
      -7,
    ];

    it('zeroes the regions with exact +0 and leaves the rest bit for bit', () => {
      const x = tf.tensor2d(xValues, [2, 5]);
      for (const [regions, inside] of [
        [
          [1, 3],
          [1, 2],
        ],
        [
          [
            [0, 1],
            [3, 5],
          ],
          [0, 3, 4],
        ],
      ] as const) {
        const out = ablate(x, regions as never);
        const values = floatData(out);
        const original = floatData(x);
        for (let i = 0; i < xValues.length; i++) {
          if ((inside as readonly number[]).includes(i % 5)) {
            expect(Object.is(values[i], 0)).toBe(true);
          } else {
            expect(new Uint32Array(values.buffer)[i]).toBe(new Uint32Array(original.buffer)[i]);
          }
        }
        out.dispose();
      }
      x.dispose();
    });

    it('has a consistent gradient: +0 inside the regions, dy outside', () => {
      const x = tf.tensor2d(xValues, [2, 5]);
      const dyValues = cycle(DY_PATTERN, 10);
      const dy = tf.tensor2d(dyValues, [2, 5]);
      const grad = tf.grad((v: tf.Tensor) => ablate(v, [[2, 4]]))(x, dy);
      const mask = broadcastValues([1, 1, 0, 0, 1], [5], [2, 5]);
      expect(routingMismatches(floatData(grad), mask, dyValues)).toEqual([]);
      tf.dispose([x, dy, grad]);
    });

    it('rejects overlapping, out-of-bounds and empty regions before creating tensors', () => {
      const x = tf.zeros([2, 4]);
      const before = tf.memory().numTensors;
      expect(() =>
        ablate(x, [
          [0, 2],
          [1, 3],
        ]),
      ).toThrowError(/^gradient-routing: regions \[0, 2\) and \[1, 3\) overlap/);
      expect(() => ablate(x, [2, 5])).toThrowError(
        /^gradient-routing: region \[2, 5\) is out of bounds.*<= 4/,
      );
      expect(() => ablate(x, [-1, 2])).toThrowError(/out of bounds/);
      expect(() => ablate(x, [2, 2])).toThrowError(/out of bounds or empty/);
      expect(() => ablate(x, [0.5, 2])).toThrowError(/integer bounds/);
      expect(() => ablate(x, [])).toThrowError(/at least one region/);
      expect(tf.memory().numTensors).toBe(before);
      const scalar = tf.scalar(1);
      expect(() => ablate(scalar, [0, 1])).toThrowError(/at least one axis/);
      tf.dispose([x, scalar]);
    });
  });
});

describe.each(TEST_BACKENDS)('mask validation on %s', (backend) => {
  beforeEach(() => useBackend(backend));

  /** Runs `fn` with validation set to `enabled`, restoring the previous setting. */
  function withValidation<T>(enabled: boolean, fn: () => T): T {
    const previous = setMaskValidation(enabled);
    try {
      return fn();
    } finally {
      setMaskValidation(previous);
    }
  }

  it.each([
    ['NaN', Number.NaN],
    ['2', 2],
    ['-1', -1],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['just above 1', 1.0078125],
    ['just below 0', -0.0078125],
  ])('rejects a mask weight of %s in routeGradients and gateForward', async (_, bad) => {
    await expectNoLeak(() => {
      const x = tf.ones([2, 2]);
      const mask = tf.tensor2d([
        [1, 0],
        [0.5, bad],
      ]);
      for (const op of [routeGradients, gateForward]) {
        withValidation(true, () => {
          try {
            op(x, mask);
            expect.unreachable();
          } catch (error) {
            expect(error).toMatchObject({
              name: 'GradientRoutingError',
              code: 'invalid-mask',
              message: expect.stringMatching(
                new RegExp(
                  `mask has weight ${bad} at flat index 3; mask weights must be numbers in \\[0, 1\\] \\(0 blocks the gradient, 1 lets it through\\)`,
                ),
              ),
            });
          }
          // Array and function masks are checked too.
          expect(() => op(x, [1, bad])).toThrow(/at flat index 1/);
          expect(() => op(x, () => tf.fill([2], bad))).toThrow(/at flat index 0/);
        });
        // Off (the default outside tests), the op does not read the mask back.
        const y = withValidation(false, () => op(x, mask));
        y.dispose();
      }
      tf.dispose([x, mask]);
    });
  });

  it('accepts the edges of the range, and a wider range declared on purpose', async () => {
    await expectNoLeak(() => {
      withValidation(true, () => {
        const x = tf.ones([3]);
        const edges = routeGradients(x, [0, 1, 0.5]);
        expect(() => routeGradients(x, [-0.75, 1, 0])).toThrow(/weight -0\.75/);
        const reversed = routeGradients(x, [-0.75, 1, 0], { range: [-0.75, 1] });
        expect(() => routeGradients(x, [-0.875, 1, 0], { range: [-0.75, 1] })).toThrow(
          /weight -0\.875 at flat index 0; mask weights must be numbers in \[-0\.75, 1\] \(as declared\)/,
        );
        const gated = gateForward(x, [-0.75, 1, 0], { range: [-0.75, 1] });
        expect(Array.from(gated.dataSync())).toEqual([-0.75, 1, 0]);
        tf.dispose([x, edges, reversed, gated]);
      });
    });
  });

  it('gateForward with a NaN keep-mask would put NaN in the forward pass', async () => {
    // What validation prevents: without it, NaN keeps propagate forward.
    const x = tf.ones([2]);
    const keep = tf.tensor1d([1, Number.NaN]);
    const out = withValidation(false, () => gateForward(x, keep));
    expect(Number.isNaN(out.dataSync()[1]!)).toBe(true);
    expect(() => withValidation(true, () => gateForward(x, keep))).toThrow(/weight NaN/);
    tf.dispose([x, keep, out]);
  });

  it('names a disposed mask or input instead of failing inside tfjs', () => {
    const x = tf.ones([2]);
    const mask = tf.tensor1d([1, 0]);
    mask.dispose();
    for (const enabled of [false, true]) {
      withValidation(enabled, () => {
        expect(() => routeGradients(x, mask)).toThrow(
          /^gradient-routing: the mask tensor was disposed before use; keep it alive until the step is done \(build it inside the same tf\.tidy, or dispose it after the loss\)\./,
        );
        expect(() => gateForward(x, mask)).toThrow(/mask tensor was disposed/);
      });
    }
    const gone = tf.ones([2]);
    gone.dispose();
    expect(() => routeGradients(gone, [1, 0])).toThrow(
      /the input of routeGradients tensor was disposed/,
    );
    try {
      routeGradients(x, mask);
    } catch (error) {
      expect(error).toMatchObject({ code: 'disposed' });
    }
    x.dispose();
  });
});
