import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fastKernelsInstalled,
  installFastKernels,
  uninstallFastKernels,
} from '../src/core/backend/fast-kernels.js';
import { routeGradients } from '../src/core/routing/route.js';
import { selectNodeBackend } from '../src/node/backend.js';
import { useWasmThreads, wasmThreadsCount } from '../src/node/wasm-threads.js';
import { expectNoLeak, TEST_BACKENDS, type TestBackend, useBackend } from './helpers/backends.js';

type Activation = 'linear' | 'relu' | 'relu6' | 'elu' | 'leakyrelu' | 'sigmoid' | 'prelu';

/** Deterministic values in [-1, 1), so failures reproduce. */
function values(count: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/** Multi-index → flat index of an operand whose outer dims broadcast against `outer`. */
function outerOffset(outer: number[], coords: number[], own: number[]): number {
  let index = 0;
  const pad = outer.length - own.length;
  for (let d = 0; d < own.length; d++) {
    index = index * own[d]! + (own[d] === 1 ? 0 : coords[d + pad]!);
  }
  return index;
}

/** Float64 reference of tfjs' (batched, broadcast, transposable) matMul, independent of tfjs. */
function referenceMatMul(
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  tA: boolean,
  tB: boolean,
): { values: Float64Array; shape: number[] } {
  const ar = aShape.length;
  const br = bShape.length;
  const m = tA ? aShape[ar - 1]! : aShape[ar - 2]!;
  const k = tA ? aShape[ar - 2]! : aShape[ar - 1]!;
  const n = tB ? bShape[br - 2]! : bShape[br - 1]!;
  const aOuter = aShape.slice(0, -2);
  const bOuter = bShape.slice(0, -2);
  const rank = Math.max(aOuter.length, bOuter.length);
  const outer = Array.from({ length: rank }, (_, d) => {
    const x = aOuter[d - (rank - aOuter.length)] ?? 1;
    const y = bOuter[d - (rank - bOuter.length)] ?? 1;
    return Math.max(x, y);
  });
  const batches = size(outer);
  const out = new Float64Array(batches * m * n);
  for (let batch = 0; batch < batches; batch++) {
    const coords: number[] = [];
    let rest = batch;
    for (let d = rank - 1; d >= 0; d--) {
      coords[d] = rest % outer[d]!;
      rest = Math.floor(rest / outer[d]!);
    }
    const aBase = outerOffset(outer, coords, aOuter) * m * k;
    const bBase = outerOffset(outer, coords, bOuter) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const av = a[aBase + (tA ? p * m + i : i * k + p)]!;
          const bv = b[bBase + (tB ? j * k + p : p * n + j)]!;
          sum += av * bv;
        }
        out[batch * m * n + i * n + j] = sum;
      }
    }
  }
  return { values: out, shape: [...outer, m, n] };
}

function activate(x: number, activation: Activation, alpha: number): number {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return Math.max(x, 0);
    case 'relu6':
      return Math.min(Math.max(x, 0), 6);
    case 'elu':
      return x > 0 ? x : Math.exp(x) - 1;
    case 'leakyrelu':
    case 'prelu':
      return x > 0 ? x : alpha * x;
    case 'sigmoid':
      return 1 / (1 + Math.exp(-x));
  }
}

/** Max |actual − expected|, with the tensor's shape checked first. */
function maxError(actual: tf.Tensor, expected: ArrayLike<number>, shape: number[]): number {
  expect(actual.shape).toEqual(shape);
  const got = actual.dataSync();
  expect(got.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
  return worst;
}

// float32 sums of ≤ 64 products of values in [-1, 1): rounding stays far below this.
const TOLERANCE = 2e-5;

interface ProductCase {
  name: string;
  a: number[];
  b: number[];
  /**
   * Stock tfjs 4.22 gets this case wrong on every backend: it computes max(batchA, batchB)
   * matrices, 3 of the 6 of `[2,1,…] × [1,3,…]`, so only the fast kernels can be checked.
   */
  stockIsWrong?: true;
}

const M = 7;
const K = 64;
const N = 9;

/** Operand shapes for every kind of batching, before transposition. */
const SHAPES: ProductCase[] = [
  { name: '2-D', a: [M, K], b: [K, N] },
  { name: 'batched', a: [3, M, K], b: [3, K, N] },
  { name: 'shared right operand', a: [3, M, K], b: [1, K, N] },
  { name: 'rank-3 times rank-2', a: [2, M, K], b: [K, N] },
  { name: 'shared left operand', a: [1, M, K], b: [3, K, N] },
  { name: 'outer broadcast', a: [2, 1, M, K], b: [1, 3, K, N], stockIsWrong: true },
];

const transposeShape = (shape: number[], t: boolean) =>
  t ? [...shape.slice(0, -2), shape[shape.length - 1]!, shape[shape.length - 2]!] : shape;

/** Stores `v` (laid out for the untransposed `shape`) in the layout of the transposed operand. */
function layout(v: Float32Array, shape: number[], t: boolean): Float32Array {
  if (!t) return v;
  const rows = shape[shape.length - 2]!;
  const cols = shape[shape.length - 1]!;
  const out = new Float32Array(v.length);
  for (let base = 0; base < v.length; base += rows * cols) {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) out[base + j * rows + i] = v[base + i * cols + j]!;
    }
  }
  return out;
}

const COMBOS = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;

/** Every check, on the active backend; `backend` says which one that is. */
function kernelTests(backend: TestBackend): void {
  it('install is idempotent, reversible, and leaves other backends alone', () => {
    const cpuKernel = tf.getKernel('BatchMatMul', 'cpu');
    expect(installFastKernels()).toBe(true);
    expect(installFastKernels()).toBe(true);
    expect(fastKernelsInstalled()).toBe(true);
    const wrapped = tf.getKernel('BatchMatMul', 'wasm');
    uninstallFastKernels();
    expect(fastKernelsInstalled()).toBe(false);
    expect(tf.getKernel('BatchMatMul', 'wasm')).not.toBe(wrapped);
    uninstallFastKernels();
    expect(installFastKernels()).toBe(true);
    expect(fastKernelsInstalled()).toBe(true);
    expect(tf.getKernel('BatchMatMul', 'cpu')).toBe(cpuKernel);
  });

  it('selectNodeBackend installs them exactly when it picks wasm', async () => {
    uninstallFastKernels();
    try {
      expect(await selectNodeBackend({ backend })).toBe(backend);
      expect(fastKernelsInstalled()).toBe(backend === 'wasm');
    } finally {
      installFastKernels();
    }
  });

  describe.each(SHAPES)('matMul, $name', ({ a: aShape, b: bShape, stockIsWrong }) => {
    const stockKernels = backend !== 'wasm';
    it.skipIf(stockIsWrong && stockKernels).each(COMBOS)(
      'transposeA=%s transposeB=%s equals the float64 reference',
      (tA, tB) => {
        const av = values(size(aShape), 1);
        const bv = values(size(bShape), 2);
        const expected = referenceMatMul(av, aShape, bv, bShape, false, false);
        tf.tidy(() => {
          const a = tf.tensor(layout(av, aShape, tA), transposeShape(aShape, tA));
          const b = tf.tensor(layout(bv, bShape, tB), transposeShape(bShape, tB));
          expect(maxError(tf.matMul(a, b, tA, tB), expected.values, expected.shape)).toBeLessThan(
            TOLERANCE,
          );
        });
      },
    );
  });

  // On cpu the fast kernels do not apply: comparing with stock tfjs would compare cpu with itself.
  if (backend === 'wasm') {
    it.each(COMBOS)(
      'matMul transposeA=%s transposeB=%s equals stock tfjs up to float32 rounding',
      (tA, tB) => {
        for (const { a: aShape, b: bShape } of SHAPES.filter((c) => !c.stockIsWrong)) {
          const a = tf.tensor(values(size(aShape), 3), transposeShape(aShape, tA));
          const b = tf.tensor(values(size(bShape), 4), transposeShape(bShape, tB));
          const fast = tf.matMul(a, b, tA, tB);
          uninstallFastKernels();
          const stock = tf.matMul(a, b, tA, tB);
          installFastKernels();
          expect(maxError(fast, stock.dataSync(), stock.shape)).toBeLessThan(TOLERANCE);
          tf.dispose([a, b, fast, stock]);
        }
      },
    );
  }

  const FUSED: Array<{ activation: Activation; bias: 'none' | 'N' | '1'; prelu?: number[] }> = [
    { activation: 'linear', bias: 'N' },
    { activation: 'linear', bias: '1' },
    { activation: 'relu', bias: 'none' },
    { activation: 'relu', bias: 'N' },
    { activation: 'relu6', bias: 'N' },
    { activation: 'elu', bias: 'N' },
    { activation: 'leakyrelu', bias: 'N' },
    { activation: 'sigmoid', bias: '1' },
    { activation: 'prelu', bias: 'N', prelu: [N] },
    { activation: 'prelu', bias: 'none', prelu: [1] },
    { activation: 'prelu', bias: '1', prelu: [M, N] },
  ];

  describe.each(FUSED)('fused matMul, $activation, bias $bias', ({ activation, bias, prelu }) => {
    it.each(COMBOS)('transposeA=%s transposeB=%s, 2-D and batched', (tA, tB) => {
      for (const { a: aShape, b: bShape } of SHAPES.slice(0, 3)) {
        const av = values(size(aShape), 5);
        const bv = values(size(bShape), 6);
        const biasValues = values(bias === 'N' ? N : 1, 7);
        const alphaValues = values(prelu === undefined ? 1 : size(prelu), 8);
        const product = referenceMatMul(av, aShape, bv, bShape, false, false);
        const expected = product.values.map((x, i) => {
          const column = i % N;
          const withBias = bias === 'none' ? x : x + biasValues[bias === 'N' ? column : 0]!;
          const alphaIndex = alphaValues.length === 1 ? 0 : i % alphaValues.length;
          const alpha = activation === 'prelu' ? alphaValues[alphaIndex]! : 0.2;
          return activate(withBias, activation, alpha);
        });
        tf.tidy(() => {
          const result = tf.fused.matMul({
            a: tf.tensor(layout(av, aShape, tA), transposeShape(aShape, tA)),
            b: tf.tensor(layout(bv, bShape, tB), transposeShape(bShape, tB)),
            transposeA: tA,
            transposeB: tB,
            bias: bias === 'none' ? undefined : tf.tensor(biasValues),
            activation,
            preluActivationWeights: prelu === undefined ? undefined : tf.tensor(alphaValues, prelu),
            leakyreluAlpha: 0.2,
          });
          expect(maxError(result, expected, product.shape)).toBeLessThan(TOLERANCE);
        });
      }
    });
  });

  // On cpu the fast kernels do not apply: comparing with stock tfjs would compare cpu with itself.
  if (backend === 'wasm') {
    it('sum over leading axes equals stock tfjs bit for bit', () => {
      const cases: Array<[number[], number | number[], boolean]> = [
        [[33, 20], 0, false],
        [[4, 5, 6], [0, 1], true],
        [[4, 5, 6], 0, false],
        [[4, 5, 6], 2, false],
        [[4, 5, 6], [0, 1, 2], false],
        [[9], 0, true],
      ];
      for (const [shape, axis, keepDims] of cases) {
        const x = tf.tensor(values(size(shape), 9), shape);
        const fast = tf.sum(x, axis, keepDims);
        uninstallFastKernels();
        const stock = tf.sum(x, axis, keepDims);
        installFastKernels();
        expect(fast.shape).toEqual(stock.shape);
        expect(Array.from(fast.dataSync())).toEqual(Array.from(stock.dataSync()));
        tf.dispose([x, fast, stock]);
      }
    });
  }

  /** A small routed MLP: the gradients of its weights go through every transposed product. */
  function mlpGradients(): tf.Tensor[] {
    const widths = [12, 16, 8, 12];
    return tf.tidy(() => {
      const x = tf.tensor(values(5 * 12, 10), [5, 12]);
      const weights = widths.slice(1).map((out, i) => {
        const w = tf.tensor(values(widths[i]! * out, 11 + i), [widths[i]!, out]);
        const b = tf.tensor(values(out, 21 + i));
        return [w, b] as const;
      });
      const mask = tf.tensor2d([1, 1, 0, 0, 0, 0, 1, 1], [1, 8]);
      const loss = (...params: tf.Tensor[]) => {
        let h: tf.Tensor = x;
        for (let l = 0; l < weights.length; l++) {
          h = tf.fused.matMul({
            a: h as tf.Tensor2D,
            b: params[2 * l] as tf.Tensor2D,
            bias: params[2 * l + 1],
          });
          if (l === 1) h = routeGradients(h, mask);
          if (l < weights.length - 1) h = tf.relu(h);
        }
        return tf.mean(tf.abs(tf.sub(h, x)));
      };
      return tf.grads(loss)(weights.flat());
    });
  }

  // On cpu the fast kernels do not apply: comparing with stock tfjs would compare cpu with itself.
  if (backend === 'wasm') {
    it('gradients of a small MLP are the same with and without the fast kernels', () => {
      const fast = mlpGradients();
      uninstallFastKernels();
      const stock = mlpGradients();
      installFastKernels();
      expect(fast.length).toBe(stock.length);
      fast.forEach((g, i) => {
        expect(maxError(g, stock[i]!.dataSync(), stock[i]!.shape)).toBeLessThan(TOLERANCE);
      });
      tf.dispose([...fast, ...stock]);
    });
  }

  it('leaks no tensors, backend buffers or wasm heap over 200 training steps', async () => {
    const optimizer = tf.train.adam(1e-3);
    // tf.variable keeps its initial tensor alive; the tidy frees it.
    const [w1, b1, w2] = tf.tidy(() => [
      tf.variable(tf.tensor(values(20 * 32, 30), [20, 32])),
      tf.variable(tf.zeros([32])),
      tf.variable(tf.tensor(values(32 * 20, 31), [32, 20])),
    ]);
    const x = tf.tensor(values(16 * 20, 32), [16, 20]);
    const mask = tf.tensor(
      values(16 * 32, 33).map((v) => (v > 0 ? 1 : 0)),
      [16, 32],
    );
    const step = () =>
      optimizer.minimize(() => {
        const h = routeGradients(tf.relu(tf.add(tf.matMul(x, w1), b1)), mask);
        return tf.mean(tf.abs(tf.sub(tf.matMul(h, w2), x)));
      }, false);
    const heapBytes = () =>
      (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.byteLength ?? 0;
    // Warm-up creates Adam's moment variables and lets the wasm heap reach its working size.
    for (let i = 0; i < 20; i++) step();
    const before = { ...tf.memory(), dataIds: tf.backend().numDataIds(), heap: heapBytes() };
    await expectNoLeak(() => {
      for (let i = 0; i < 200; i++) step();
    });
    expect(tf.memory().numBytes).toBe(before.numBytes);
    expect(tf.backend().numDataIds()).toBe(before.dataIds);
    expect(heapBytes()).toBe(before.heap);
    optimizer.dispose();
    tf.dispose([w1, b1, w2, x, mask]);
  });

  it('products and sums leave the tensor count unchanged', async () => {
    const a = tf.tensor(values(3 * M * K, 40), [3, K, M]);
    const b = tf.tensor(values(K * N, 41), [N, K]);
    const bias = tf.tensor1d([1]);
    await expectNoLeak(() => {
      tf.matMul(a, b, true, true).dispose();
      tf.fused.matMul({ a, b, transposeA: true, transposeB: true, bias }).dispose();
      tf.sum(a, 0).dispose();
    });
    tf.dispose([a, b, bias]);
  });

  // On cpu the fast kernels do not apply: comparing with stock tfjs would compare cpu with itself.
  if (backend === 'wasm') {
    it('non-float32 operands still get the stock behaviour', () => {
      const a = tf.tensor2d([[1, 2]], [1, 2], 'int32');
      const b = tf.tensor2d([[3], [4]], [2, 1], 'int32');
      let fast: unknown;
      let stock: unknown;
      try {
        fast = tf.tidy(() => Array.from(tf.matMul(a, b, false, false).dataSync()));
      } catch (error) {
        fast = (error as Error).message;
      }
      uninstallFastKernels();
      try {
        stock = tf.tidy(() => Array.from(tf.matMul(a, b, false, false).dataSync()));
      } catch (error) {
        stock = (error as Error).message;
      } finally {
        installFastKernels();
      }
      expect(fast).toEqual(stock);
      tf.dispose([a, b]);
    });
  }
}

describe.each(TEST_BACKENDS)('fast kernels on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
    expect(installFastKernels()).toBe(true);
  });
  afterAll(() => uninstallFastKernels());
  kernelTests(backend);
});

// Runs last: it replaces the single-threaded wasm backend of the suites above.
describe('fast kernels on wasm with 2 threads', () => {
  beforeAll(async () => {
    expect(useWasmThreads({ threads: 2 })).toBe(2);
    expect(await selectNodeBackend({ backend: 'wasm' })).toBe('wasm');
  });
  afterAll(() => uninstallFastKernels());

  it('runs XNNPACK on 2 threads, with the fast kernels installed by selectNodeBackend', () => {
    expect(wasmThreadsCount()).toBe(2);
    expect(fastKernelsInstalled()).toBe(true);
  });

  it('refuses to restart a wasm backend that holds tensors, and validates threads', () => {
    const kept = tf.ones([2]);
    expect(() => useWasmThreads({ threads: 1 })).toThrow(/before the wasm backend holds tensors/);
    expect(useWasmThreads({ threads: 2 })).toBe(2); // the same threads: nothing to restart
    kept.dispose();
    expect(() => useWasmThreads({ threads: 9 })).toThrow(/from 1 to 8/);
    expect(() => useWasmThreads({ threads: 1.5 })).toThrow(/from 1 to 8/);
  });

  kernelTests('wasm');
});
