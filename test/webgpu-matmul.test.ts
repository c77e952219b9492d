/**
 * The library's WebGPU matMul kernels (src/core/backend/webgpu/matmul.ts) against the cpu backend,
 * on whatever adapter the machine has (Mesa's llvmpipe without a GPU): all three products of a
 * dense layer, every dimension taking 1, 7, 33, 1000 and 2049, batch dimensions, the fused
 * epilogues, the dense op's own gradient against tfjs's composite one, install and uninstall.
 * Skipped like test/backends-webgpu.test.ts, and required where CI asks for WebGPU.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  installWebGpuKernels,
  uninstallWebGpuKernels,
  webGpuKernelsInstalled,
} from '../src/core/backend/webgpu/install.js';
import { type DenseActivation, dense } from '../src/core/layers/dense.js';
import { denseStack } from '../src/core/layers/dense-stack.js';
import { routeGradients } from '../src/core/routing/route.js';
import { releaseNodeWebGpu } from '../src/node/webgpu.js';
import { expectNoLeak } from './helpers/backends.js';
import { nodeWebGpuUnavailable } from './helpers/webgpu.js';

const unavailable = await nodeWebGpuUnavailable('WebGPU matMul tests');

/** Deterministic values in [-1, 1): a 32-bit LCG. */
function seeded(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

/** The programs the webgpu backend runs, by the first word of their shader key, and the keys. */
const programs: string[] = [];
const shaderKeys: string[] = [];
interface ProgramRunner {
  runWebGPUProgram: (program: { shaderKey: string }, ...rest: unknown[]) => unknown;
}
function recordPrograms(): void {
  const backend = tf.findBackend('webgpu') as unknown as ProgramRunner;
  const run = backend.runWebGPUProgram.bind(backend);
  backend.runWebGPUProgram = (program, ...rest) => {
    programs.push(program.shaderKey.split('_')[0]!);
    shaderKeys.push(program.shaderKey);
    return run(program, ...rest);
  };
}

async function onCpu<T>(work: () => T | Promise<T>): Promise<T> {
  await tf.setBackend('cpu');
  try {
    return await work();
  } finally {
    await tf.setBackend('webgpu');
  }
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** float32 rounding of a sum of `k` products of values in [-1, 1), summed in another order. */
const tolerance = (k: number) => 2e-6 * Math.max(k, 4);

const OURS = 'gradientRoutingTiledMatMul';

interface Product {
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

/** `matMul` on webgpu and on cpu from the same values: [webgpu, cpu, webgpu programs run]. */
async function bothBackends(
  product: Product,
  op: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
): Promise<[Float32Array, Float32Array, string[], number[]]> {
  const aValues = seeded(tf.util.sizeFromShape(product.a), 11);
  const bValues = seeded(tf.util.sizeFromShape(product.b), 12);
  const run = async () => {
    const a = tf.tensor(aValues, product.a);
    const b = tf.tensor(bValues, product.b);
    const out = op(a, b);
    const values = (await out.data()) as Float32Array;
    const shape = out.shape;
    tf.dispose([a, b, out]);
    return { values, shape };
  };
  programs.length = 0;
  shaderKeys.length = 0;
  let gpu: { values: Float32Array; shape: number[] } | undefined;
  await expectNoLeak(async () => {
    gpu = await run();
  });
  const ran = [...programs];
  const cpu = await onCpu(run);
  expect(gpu!.shape).toEqual(cpu.shape);
  return [gpu!.values, cpu.values, ran, gpu!.shape];
}

/** Shapes `[M, K, N]` in which every dimension takes every value of 1, 7, 33, 1000, 2049. */
const SIZES = [1, 7, 33, 1000, 2049];
const COVERING: [number, number, number][] = SIZES.map((_, i) => [
  SIZES[i]!,
  SIZES[(i + 1) % 5]!,
  SIZES[(i + 3) % 5]!,
]);

describe.skipIf(unavailable !== null)('WebGPU matMul kernels', () => {
  beforeAll(async () => {
    await tf.setBackend('webgpu');
    recordPrograms();
  });
  afterEach(() => {
    installWebGpuKernels();
  });
  afterAll(() => {
    releaseNodeWebGpu();
  });

  it('are installed by backend selection', () => {
    expect(webGpuKernelsInstalled()).toBe(true);
  });

  for (const [m, k, n] of COVERING) {
    for (const [transposeA, transposeB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      it(`match cpu for ${m}×${k}·${k}×${n}, transposeA ${transposeA}, transposeB ${transposeB}`, async () => {
        const product = {
          a: transposeA ? [k, m] : [m, k],
          b: transposeB ? [n, k] : [k, n],
          transposeA,
          transposeB,
        };
        const [gpu, cpu, ran] = await bothBackends(product, (a, b) =>
          tf.matMul(a, b, transposeA, transposeB),
        );
        expect(ran).toEqual([OURS]);
        expect(shaderKeys[0]).toMatch(new RegExp(`^${OURS}_32_`));
        expect(maxAbsDifference(gpu, cpu)).toBeLessThanOrEqual(tolerance(k));
      });
    }
  }

  // Outputs of 128 or more 64×64 tiles take the 64-wide tiles (the covering shapes above, 32-wide
  // ones); between them the two shapes read every operand layout scalar and as vec4.
  for (const [m, k, n] of [
    [1000, 33, 2049],
    [2049, 100, 1000],
  ] as const) {
    for (const [transposeA, transposeB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      it(`match cpu with 64-wide tiles for ${m}×${k}·${k}×${n}, transposeA ${transposeA}, transposeB ${transposeB}`, async () => {
        const product = {
          a: transposeA ? [k, m] : [m, k],
          b: transposeB ? [n, k] : [k, n],
          transposeA,
          transposeB,
        };
        const [gpu, cpu, ran] = await bothBackends(product, (a, b) =>
          tf.matMul(a, b, transposeA, transposeB),
        );
        expect(ran).toEqual([OURS]);
        expect(shaderKeys[0]).toMatch(new RegExp(`^${OURS}_64_`));
        expect(maxAbsDifference(gpu, cpu)).toBeLessThanOrEqual(tolerance(k));
      });
    }
  }

  it('compute the three products of a dense layer (x·W, dy·Wᵀ, xᵀ·dy) without a transpose pass', async () => {
    // batch 33, 1000 in, 7 out: the shapes of a layer's forward, input gradient, weight gradient
    const cases: Product[] = [
      { a: [33, 1000], b: [1000, 7], transposeA: false, transposeB: false },
      { a: [33, 7], b: [1000, 7], transposeA: false, transposeB: true },
      { a: [33, 1000], b: [33, 7], transposeA: true, transposeB: false },
    ];
    for (const product of cases) {
      const [gpu, cpu, ran] = await bothBackends(product, (a, b) =>
        tf.matMul(a, b, product.transposeA, product.transposeB),
      );
      expect(ran).toEqual([OURS]);
      expect(maxAbsDifference(gpu, cpu)).toBeLessThanOrEqual(tolerance(1000));
    }
  });

  it('handle batch dimensions, and a single matrix shared by every batch entry', async () => {
    const cases: Product[] = [
      { a: [2, 3, 7, 33], b: [2, 3, 33, 5], transposeA: false, transposeB: false },
      { a: [2, 3, 7, 33], b: [33, 5], transposeA: false, transposeB: false },
      { a: [1, 33, 7], b: [4, 9, 33], transposeA: true, transposeB: true },
      { a: [3, 33, 7], b: [1, 33, 65], transposeA: true, transposeB: false },
    ];
    for (const product of cases) {
      const [gpu, cpu, ran] = await bothBackends(product, (a, b) =>
        tf.matMul(a, b, product.transposeA, product.transposeB),
      );
      expect(ran).toEqual([OURS]);
      expect(maxAbsDifference(gpu, cpu)).toBeLessThanOrEqual(tolerance(33));
    }
  });

  it('handle empty products: no rows, and no inner dimension (all zeros)', async () => {
    const cases: Product[] = [
      { a: [0, 5], b: [5, 3], transposeA: false, transposeB: false },
      { a: [3, 0], b: [0, 4], transposeA: false, transposeB: false },
      { a: [2, 0, 3], b: [2, 4, 0], transposeA: true, transposeB: true },
    ];
    for (const product of cases) {
      const [gpu, cpu, ran] = await bothBackends(product, (a, b) =>
        tf.matMul(a, b, product.transposeA, product.transposeB),
      );
      expect(ran).toEqual([OURS]);
      expect(Array.from(gpu)).toEqual(Array.from(cpu));
    }
  });

  it('fuse a bias (per column or scalar) and relu into the product, and leave other activations to tfjs', async () => {
    const product: Product = { a: [33, 7], b: [1000, 7], transposeA: false, transposeB: true };
    const columnBias = seeded(1000, 5);
    const fused =
      (activation: tf.fused.Activation, bias: () => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) =>
        tf.tidy(() => tf.fused.matMul({ a, b, transposeB: true, bias: bias(), activation }));
    const cases: [tf.fused.Activation, () => tf.Tensor, boolean][] = [
      ['relu', () => tf.tensor1d(columnBias), true],
      ['linear', () => tf.tensor1d(columnBias), true],
      ['relu', () => tf.tensor2d(columnBias, [1, 1000]), true],
      ['relu', () => tf.scalar(0.25), true],
      ['elu', () => tf.tensor1d(columnBias), false],
    ];
    for (const [activation, bias, covered] of cases) {
      const [gpu, cpu, ran] = await bothBackends(product, fused(activation, bias));
      // One program when covered; the stock kernel's own otherwise.
      if (covered) expect(ran).toEqual([OURS]);
      else expect(ran.filter((name) => name.startsWith('matMul'))).toHaveLength(1);
      expect(maxAbsDifference(gpu, cpu)).toBeLessThanOrEqual(tolerance(7));
      if (activation === 'relu') {
        expect(gpu.some((v) => v === 0)).toBe(true);
        expect(gpu.every((v) => v >= 0)).toBe(true);
      }
    }
  });

  for (const activation of ['relu', 'linear'] as const) {
    for (const withBias of [true, false]) {
      it(`give the dense op (${activation}, ${withBias ? 'bias' : 'no bias'}) the gradient of tfjs's composite`, async () => {
        const [batch, inputs, units] = [33, 7, 65];
        const x = tf.tensor2d(seeded(batch * inputs, 1), [batch, inputs]);
        const kernel = tf.tensor2d(seeded(inputs * units, 2), [inputs, units]);
        const bias = withBias ? tf.tensor1d(seeded(units, 3)) : null;
        const upstream = tf.tensor2d(seeded(batch * units, 4), [batch, units]);
        const gradients = (
          layer: (x: tf.Tensor2D, k: tf.Tensor2D, b: tf.Tensor1D | null) => tf.Tensor,
        ) =>
          tf.tidy(() => {
            const f = (a: tf.Tensor, k: tf.Tensor, b?: tf.Tensor) =>
              layer(a as tf.Tensor2D, k as tf.Tensor2D, (b ?? null) as tf.Tensor1D | null);
            const args = bias === null ? [x, kernel] : [x, kernel, bias];
            const { value, grads } = tf.valueAndGrads(f)(args, upstream);
            return [value, ...grads];
          });
        const read = async (result: tf.Tensor[]) => {
          const values = await Promise.all(result.map((t) => t.data()));
          const shapes = result.map((t) => t.shape);
          tf.dispose(result);
          return { values, shapes };
        };
        let fused: Awaited<ReturnType<typeof read>> | undefined;
        programs.length = 0;
        await expectNoLeak(async () => {
          fused = await read(gradients((a, k, b) => dense(a, k, b, activation as DenseActivation)));
        });
        // Forward one fused kernel; backward two gated products and one column sum.
        expect(programs.filter((name) => name.startsWith('gradientRouting'))).toEqual([
          OURS,
          OURS,
          OURS,
          ...(withBias ? ['gradientRoutingColumnSum'] : []),
        ]);
        expect(programs.filter((name) => !name.startsWith('gradientRouting'))).toEqual([]);
        const composite = await read(
          gradients((a, k, b) => tf.fused.matMul({ a, b: k, bias: b ?? undefined, activation })),
        );
        expect(fused!.shapes).toEqual(composite.shapes);
        fused!.values.forEach((values, i) => {
          expect(maxAbsDifference(values, composite.values[i]!)).toBeLessThanOrEqual(
            tolerance(batch),
          );
        });
        if (activation === 'relu') {
          // Some units are off: the forward output has zeros, and so do their gradients.
          expect(Array.from(fused!.values[0]!).filter((v) => v === 0).length).toBeGreaterThan(0);
        }
        tf.dispose([x, kernel, upstream]);
        bias?.dispose();
      });
    }
  }

  it('keep the routing exact through a fused layer: blocked columns get exactly +0, not NaN', async () => {
    await expectNoLeak(async () => {
      const x = tf.tensor2d(seeded(6 * 5, 7), [6, 5]);
      const kernel = tf.tensor2d(seeded(5 * 8, 8), [5, 8]);
      const bias = tf.tensor1d(seeded(8, 9));
      // Every row may update dims 0-3 only; dims 4-7 get NaN and ±Infinity upstream.
      const mask = tf.tensor2d(
        Array.from({ length: 48 }, (_, i) => (i % 8 < 4 ? 1 : 0)),
        [6, 8],
      );
      const poison = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0];
      const upstream = tf.tensor2d(
        Array.from({ length: 48 }, (_, i) => (i % 8 < 4 ? 1 + (i % 3) : poison[i % 4]!)),
        [6, 8],
      );
      const routed = (k: tf.Tensor, b: tf.Tensor) =>
        routeGradients(dense(x, k as tf.Tensor2D, b as tf.Tensor1D, 'relu'), mask);
      const [dKernel, dBias] = tf.grads(routed)([kernel, bias], upstream);
      const kernelGrad = await dKernel!.data();
      const biasGrad = await dBias!.data();
      for (let i = 0; i < kernelGrad.length; i++) {
        if (i % 8 >= 4)
          expect(Object.is(kernelGrad[i], 0), `kernel ${i}: ${kernelGrad[i]}`).toBe(true);
        else expect(Number.isFinite(kernelGrad[i])).toBe(true);
      }
      for (let i = 0; i < 8; i++) {
        if (i >= 4) expect(Object.is(biasGrad[i], 0), `bias ${i}: ${biasGrad[i]}`).toBe(true);
      }
      expect(Array.from(biasGrad.slice(0, 4)).some((v) => v !== 0)).toBe(true);
      tf.dispose([x, kernel, bias, mask, upstream, dKernel!, dBias!]);
    });
  });

  it('train a dense stack like cpu', async () => {
    const train = async () => {
      const net = denseStack([13, 33, 7], { seed: 3 });
      const x = tf.tensor2d(seeded(9 * 13, 5), [9, 13]);
      const optimizer = tf.train.sgd(0.1);
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const loss = optimizer.minimize(() => tf.mean(tf.square(net.apply(x) as tf.Tensor)), true);
        losses.push((await loss!.data())[0]!);
        loss!.dispose();
      }
      const weights = await Promise.all(net.getWeights().map((w) => w.data()));
      optimizer.dispose();
      net.dispose();
      x.dispose();
      return { losses, weights };
    };
    let here: Awaited<ReturnType<typeof train>> | undefined;
    programs.length = 0;
    await expectNoLeak(async () => {
      here = await train();
    });
    expect(programs).toContain('gradientRoutingColumnSum');
    const reference = await onCpu(train);
    expect(maxAbsDifference(here!.losses, reference.losses)).toBeLessThanOrEqual(1e-5);
    expect(here!.losses[2]).toBeLessThan(here!.losses[0]!);
    here!.weights.forEach((w, i) => {
      expect(maxAbsDifference(w, reference.weights[i]!)).toBeLessThanOrEqual(1e-5);
    });
  });

  it('uninstall back to the stock kernels, and the dense op falls back to the composite', async () => {
    const kernelOf = (name: string) => tf.getKernel(name, 'webgpu')?.kernelFunc;
    const ours = kernelOf('BatchMatMul');
    uninstallWebGpuKernels();
    expect(webGpuKernelsInstalled()).toBe(false);
    expect(kernelOf('BatchMatMul')).not.toBe(ours);
    expect(kernelOf('GradientRoutingGatedMatMul')).toBeUndefined();
    const stock = kernelOf('BatchMatMul');
    const product: Product = { a: [33, 1000], b: [1000, 7], transposeA: false, transposeB: false };
    const [gpu, cpu, ran] = await bothBackends(product, (a, b) =>
      tf.tidy(() => dense(a as tf.Tensor2D, b as tf.Tensor2D, null, 'relu')),
    );
    expect(ran).not.toContain(OURS);
    expect(maxAbsDifference(gpu, cpu)).toBeLessThanOrEqual(tolerance(1000));
    expect(installWebGpuKernels()).toBe(true);
    expect(kernelOf('BatchMatMul')).not.toBe(stock);
    const [again, cpuAgain, ranAgain] = await bothBackends(product, (a, b) => tf.matMul(a, b));
    expect(ranAgain).toEqual([OURS]);
    expect(maxAbsDifference(again, cpuAgain)).toBeLessThanOrEqual(tolerance(1000));
  });
});
