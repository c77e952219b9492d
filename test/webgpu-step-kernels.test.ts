/**
 * The library's WebGPU kernels of the training step (fused optimiser, exact mask product, the
 * mean-absolute-error gradient) against stock ops and cpu, and the counter of WebGPU work, on whatever
 * adapter the machine has (in CI Mesa's llvmpipe; skip rules as in backends-webgpu.test.ts: the
 * suite must run where `CI` or `GRADIENT_ROUTING_REQUIRE_WEBGPU` is set).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibraryKernel } from '../src/core/backend/library-kernels.js';
import { countWebGpuWork, startWebGpuCounter } from '../src/core/backend/webgpu/counter.js';
import {
  installWebGpuKernels,
  uninstallWebGpuKernels,
  webGpuKernelsInstalled,
} from '../src/core/backend/webgpu/install.js';
import { GradientRoutingError } from '../src/core/errors.js';
import { meanAbsoluteError } from '../src/core/losses/mae.js';
import { torchAdam } from '../src/core/optim/adam.js';
import { AdamW } from '../src/core/optim/adamw.js';
import { exactMaskProduct } from '../src/core/routing/route.js';
import { releaseNodeWebGpu } from '../src/node/webgpu.js';
import { expectNoLeak } from './helpers/backends.js';
import { lcgUniform } from './helpers/random.js';
import { nodeWebGpuUnavailable } from './helpers/webgpu.js';

const unavailable = await nodeWebGpuUnavailable('WebGPU optimiser tests');

/** Odd sizes in every position, so no kernel can lean on multiples of a workgroup or of 4. */
const SHAPES: readonly number[][] = [[1], [7], [33, 5], [1000], [2049], [3, 7, 33]];
const STEPS = 3;

interface Problem {
  weights: Float32Array[];
  /** One gradient per variable and step; a few are large, tiny or zero to stress the update. */
  gradients: Float32Array[][];
}

function problem(seed: number): Problem {
  const random = lcgUniform(seed);
  const draw = (size: number, scale: number) =>
    Float32Array.from({ length: size }, (_, i) =>
      i % 97 === 0 ? 0 : i % 89 === 0 ? 1e3 * (random() - 0.5) : scale * (random() - 0.5),
    );
  const sizes = SHAPES.map((shape) => shape.reduce((n, d) => n * d, 1));
  return {
    weights: sizes.map((size) => draw(size, 2)),
    gradients: Array.from({ length: STEPS }, () => sizes.map((size) => draw(size, 0.2))),
  };
}

type Updater = (variables: tf.Variable[], grads: tf.NamedTensorMap) => void;

/** Runs `STEPS` steps of an optimiser on the active backend; returns the final weights. */
async function train(data: Problem, makeUpdater: () => { update: Updater; dispose(): void }) {
  const variables = data.weights.map((w, i) => tf.tidy(() => tf.variable(tf.tensor(w, SHAPES[i]))));
  const { update, dispose } = makeUpdater();
  for (const stepGradients of data.gradients) {
    const grads: tf.NamedTensorMap = {};
    stepGradients.forEach((g, i) => {
      grads[variables[i]!.name] = tf.tensor(g, SHAPES[i]);
    });
    update(variables, grads);
    tf.dispose(Object.values(grads));
  }
  const result = await Promise.all(variables.map((v) => v.data() as Promise<Float32Array>));
  dispose();
  tf.dispose(variables);
  return result;
}

const optimisers: Record<string, () => { update: Updater; dispose(): void }> = {
  'torchAdam with weight decay': () => {
    const optimizer = torchAdam({ learningRate: 0.01, weightDecay: 5e-2 });
    return {
      update: (_, grads) => optimizer.applyGradients(grads),
      dispose: () => optimizer.dispose(),
    };
  },
  'torchAdam without weight decay': () => {
    const optimizer = torchAdam({ learningRate: 0.003, beta2: 0.99, epsilon: 1e-6 });
    return {
      update: (_, grads) => optimizer.applyGradients(grads),
      dispose: () => optimizer.dispose(),
    };
  },
  AdamW: () => {
    const optimizer = new AdamW({ weightDecay: 0.3 });
    let step = 0;
    return {
      update: (variables, grads) => optimizer.step(variables, grads, 0.01 / ++step),
      dispose: () => optimizer.dispose(),
    };
  },
};

function expectClose(actual: Float32Array[], expected: Float32Array[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((values, v) => {
    const reference = expected[v]!;
    expect(values.length).toBe(reference.length);
    let worst = 0;
    for (let i = 0; i < values.length; i++) {
      const tolerance = 1e-6 + 2e-6 * Math.abs(reference[i]!);
      worst = Math.max(worst, Math.abs(values[i]! - reference[i]!) / tolerance);
    }
    // Within float32 rounding of the same arithmetic (WGSL division and sqrt round differently).
    expect(worst, `variable ${v} (shape ${SHAPES[v]})`).toBeLessThanOrEqual(1);
  });
}

describe.skipIf(unavailable !== null)(
  'WebGPU: the step’s fused kernels and the work counter',
  () => {
    const references = new Map<string, Float32Array[]>();
    const data = problem(20241004);

    beforeAll(async () => {
      await tf.setBackend('cpu');
      for (const [name, make] of Object.entries(optimisers))
        references.set(name, await train(data, make));
      await tf.setBackend('webgpu');
    });
    afterAll(() => {
      releaseNodeWebGpu();
    });

    it('registers the fused kernels with the library’s WebGPU kernels, and only then', () => {
      const names = [LibraryKernel.adam, LibraryKernel.maskProduct, LibraryKernel.scaledSign];
      expect(webGpuKernelsInstalled()).toBe(true);
      for (const name of names) expect(tf.getKernel(name, 'webgpu')).toBeDefined();
      uninstallWebGpuKernels();
      try {
        for (const name of names) expect(tf.getKernel(name, 'webgpu')).toBeUndefined();
      } finally {
        installWebGpuKernels();
      }
    });

    /** Runs `fn` with the library's kernels, then with stock ops; returns both results. */
    async function fusedAndStock<T>(fn: () => Promise<T>): Promise<[T, T]> {
      const fused = await fn();
      uninstallWebGpuKernels();
      try {
        return [fused, await fn()];
      } finally {
        installWebGpuKernels();
      }
    }

    const bits = (values: Float32Array) => Array.from(new Uint32Array(values.buffer));

    it('mask product: bit for bit the stock ops, broadcast, +0 where the mask is 0 even under NaN/±Inf', async () => {
      const random = lcgUniform(7);
      const special = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0];
      // [rows, cols] values against masks of shape [rows, cols], [cols] and [rows, 1].
      for (const [rows, cols] of [
        [1, 1],
        [7, 33],
        [33, 7],
        [2, 1000],
      ] as const) {
        const values = Float32Array.from({ length: rows * cols }, (_, i) =>
          i % 5 === 0 ? special[i % special.length]! : 4 * (random() - 0.5),
        );
        for (const maskShape of [[rows, cols], [cols], [rows, 1]]) {
          const size = maskShape.reduce((n, d) => n * d, 1);
          const mask = Float32Array.from({ length: size }, (_, i) => (i % 3 === 0 ? 0 : random()));
          await expectNoLeak(async () => {
            const [fused, stock] = await fusedAndStock(async () => {
              const product = tf.tidy(() =>
                exactMaskProduct(tf.tensor(values, [rows, cols]), tf.tensor(mask, maskShape)),
              );
              const data = (await product.data()) as Float32Array;
              product.dispose();
              return data;
            });
            expect(bits(fused)).toEqual(bits(stock));
            // Every blocked entry is exactly +0 (bit pattern 0), whatever the value was.
            fused.forEach((value, i) => {
              const maskIndex =
                maskShape.length === 1 ? i % cols : maskShape[1] === 1 ? Math.floor(i / cols) : i;
              if (mask[maskIndex] === 0) expect(Object.is(value, 0)).toBe(true);
            });
          });
        }
      }
    });

    it('mask product: its gradient as the stock ops give it (values), and one for the mask', async () => {
      const random = lcgUniform(11);
      const valueData = Float32Array.from({ length: 7 * 33 }, () => random() - 0.5);
      const maskData = Float32Array.from({ length: 33 }, (_, i) => (i % 4 === 0 ? 0 : random()));
      const weightData = Float32Array.from({ length: 7 * 33 }, () => random());
      const [values, mask, weights] = [
        tf.tensor(valueData, [7, 33]),
        tf.tensor(maskData, [33]),
        tf.tensor(weightData, [7, 33]),
      ];
      const loss = (v: tf.Tensor, m: tf.Tensor) => tf.sum(tf.mul(exactMaskProduct(v, m), weights));
      await expectNoLeak(async () => {
        const [fused, stock] = await fusedAndStock(async () => {
          const gradient = tf.grad((v: tf.Tensor) => loss(v, mask))(values);
          const data = bits((await gradient.data()) as Float32Array);
          gradient.dispose();
          return data;
        });
        expect(fused).toEqual(stock);
        // d/dmask[j] = sum over rows of weights where the mask passes (the stock ops have none).
        const maskGradient = tf.grad((m: tf.Tensor) => loss(values, m))(mask);
        const got = await maskGradient.data();
        maskGradient.dispose();
        for (let j = 0; j < 33; j++) {
          let expected = 0;
          for (let i = 0; i < 7; i++) {
            if (maskData[j] !== 0) expected += weightData[i * 33 + j]! * valueData[i * 33 + j]!;
          }
          expect(got[j]).toBeCloseTo(expected, 5);
        }
      });
      tf.dispose([values, mask, weights]);
    });

    it('mean absolute error: its gradient fused, bit for bit the stock ops, no uploads', async () => {
      const random = lcgUniform(5);
      for (const shape of [[1], [7, 33], [33, 1000], [2049]]) {
        const size = shape.reduce((n, d) => n * d, 1);
        // Some residuals exactly 0: PyTorch's gradient there is 0.
        const pred = tf.tensor(
          Float32Array.from({ length: size }, (_, i) => (i % 9 === 0 ? 0.25 : random())),
          shape,
        );
        const target = tf.tensor(
          Float32Array.from({ length: size }, (_, i) => (i % 9 === 0 ? 0.25 : random())),
          shape,
        );
        // On the GPU before counting: the uploads counted are the step’s, not the data’s.
        tf.add(pred, target).dispose();
        await expectNoLeak(async () => {
          const [fused, stock] = await fusedAndStock(async () => {
            const { counts, result } = await countWebGpuWork(async () => {
              const grads = tf.grads((p: tf.Tensor, t: tf.Tensor) => meanAbsoluteError(p, t))([
                pred,
                target,
              ]);
              const data = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
              tf.dispose(grads);
              return data.map(bits);
            });
            return { counts, result };
          });
          expect(fused.result).toEqual(stock.result);
          expect(fused.counts.programsByName.GradientRoutingScaledSignProgram).toBe(1);
          // Only the seed gradient (a host 1) is uploaded; the same gradient from stock ops also
          // uploads the divisor. (tfjs computes on the host with host tensors under 1000
          // elements, so the small cases upload their inputs too.)
          if (size >= 1000) {
            expect([fused.counts.uploads, fused.counts.uploadedBytes]).toEqual([1, 4]);
            expect([stock.counts.uploads, stock.counts.uploadedBytes]).toEqual([2, 8]);
          }
        });
        tf.dispose([pred, target]);
      }
    });

    for (const name of Object.keys(optimisers)) {
      it(`${name}: the cpu optimiser's weights, odd shapes, on the fused kernel and on stock ops`, async () => {
        await expectNoLeak(async () => {
          expectClose(await train(data, optimisers[name]!), references.get(name)!);
          uninstallWebGpuKernels();
          try {
            expectClose(await train(data, optimisers[name]!), references.get(name)!);
          } finally {
            installWebGpuKernels();
          }
        });
      });
    }

    it('takes one dispatch per variable and uploads nothing once the moments exist', async () => {
      const variables = SHAPES.map((shape) => tf.tidy(() => tf.variable(tf.randomNormal(shape))));
      const grads: tf.NamedTensorMap = {};
      for (const v of variables) grads[v.name] = tf.randomNormal(v.shape);
      const optimizer = torchAdam({ weightDecay: 1e-3 });
      const fused = await countWebGpuWork(async () => {
        optimizer.applyGradients(grads);
        optimizer.applyGradients(grads);
        await variables[0]!.data();
      });
      const steady = await countWebGpuWork(() => optimizer.applyGradients(grads));
      uninstallWebGpuKernels();
      const stock = await countWebGpuWork(() => optimizer.applyGradients(grads));
      installWebGpuKernels();
      // The first step also creates the moments (a fill each).
      expect(steady.counts.programs).toBe(SHAPES.length);
      expect(steady.counts.programsByName).toEqual({ GradientRoutingAdamProgram: SHAPES.length });
      expect(steady.counts.uploads).toBe(0);
      expect(fused.counts.programsByName.GradientRoutingAdamProgram).toBe(2 * SHAPES.length);
      // What the fused kernel saves: the same update from stock ops.
      expect(stock.counts.programs).toBeGreaterThanOrEqual(12 * SHAPES.length);
      expect(stock.counts.uploads).toBeGreaterThan(0);
      optimizer.dispose();
      tf.dispose([...variables, ...Object.values(grads)]);
    });

    it('leaves a clone of a variable as it was (its buffer is shared, so the kernel copies)', async () => {
      await expectNoLeak(async () => {
        const variable = tf.tidy(() => tf.variable(tf.tensor1d([1, -2, 3])));
        const clone = variable.clone();
        const gradient = tf.tensor1d([0.5, 0.5, -0.5]);
        const optimizer = torchAdam({ learningRate: 0.1 });
        optimizer.applyGradients({ [variable.name]: gradient });
        expect(Array.from(await clone.data())).toEqual([1, -2, 3]);
        // Adam's first step moves every weight by the learning rate against the gradient's sign.
        const moved = Array.from(await variable.data());
        for (const [i, expected] of [0.9, -2.1, 3.1].entries()) {
          expect(moved[i]).toBeCloseTo(expected, 5);
        }
        // The variable owns its new buffer, so the next update is in place: no copies.
        const { counts } = await countWebGpuWork(() =>
          optimizer.applyGradients({ [variable.name]: gradient }),
        );
        expect(counts.programsByName).toEqual({ GradientRoutingAdamProgram: 1 });
        expect(Array.from(await clone.data())).toEqual([1, -2, 3]);
        optimizer.dispose();
        tf.dispose([variable, clone, gradient]);
      });
    });

    it('never serves a value read before the update (tfjs caches what it read on the host)', async () => {
      const variable = tf.tidy(() => tf.variable(tf.tensor1d([1, 1])));
      const gradient = tf.tensor1d([1, -1]);
      const optimizer = torchAdam({ learningRate: 0.25 });
      const readings: number[][] = [];
      for (let i = 0; i < 2; i++) {
        readings.push(Array.from(await variable.data()));
        optimizer.applyGradients({ [variable.name]: gradient });
      }
      readings.push(Array.from(await variable.data()));
      expect(readings[0]).toEqual([1, 1]);
      expect(readings[1]![0]).toBeCloseTo(0.75, 5);
      expect(readings[1]![1]).toBeCloseTo(1.25, 5);
      expect(readings[2]![0]).toBeCloseTo(0.5, 5);
      expect(readings[2]![1]).toBeCloseTo(1.5, 5);
      optimizer.dispose();
      tf.dispose([variable, gradient]);
    });

    it('counts programs, uploads and submits, and puts the backend back afterwards', async () => {
      const backend = tf.backend() as unknown as Record<string, unknown>;
      const x = tf.tidy(() => tf.add(tf.fill([4096], 1), tf.fill([4096], 2)));
      await x.data();
      await expectNoLeak(async () => {
        const { result, counts } = await countWebGpuWork(async () => {
          // A plain number becomes a scalar tensor that is uploaded: the cost the step avoids.
          const y = tf.mul(x, 0.5);
          const z = tf.sqrt(y);
          const values = await z.data();
          tf.dispose([y, z]);
          return values[0];
        });
        expect(result).toBeCloseTo(Math.sqrt(1.5), 6);
        expect(counts.programs).toBe(2);
        expect(counts.programsByName).toEqual({ BinaryOpProgram: 1, UnaryOpProgram: 1 });
        expect(counts.uploads).toBe(1);
        expect(counts.uploadedBytes).toBe(4);
        expect(counts.submits).toBeGreaterThanOrEqual(1);
      });
      expect(Object.hasOwn(backend, 'runWebGPUProgram')).toBe(false);
      expect(Object.hasOwn(backend, 'uploadToGPU')).toBe(false);
      // Counters can overlap; each sees what ran while it ran.
      const outer = startWebGpuCounter();
      tf.dispose(tf.neg(x));
      const inner = startWebGpuCounter();
      tf.dispose(tf.neg(x));
      expect(inner.stop().programs).toBe(1);
      tf.dispose(tf.neg(x));
      expect(outer.stop().programs).toBe(3);
      expect(outer.stop().programs).toBe(3);
      tf.dispose(x);
      await expect(countWebGpuWork(() => Promise.reject(new Error('boom')))).rejects.toThrow(
        'boom',
      );
      expect(Object.hasOwn(backend, 'runWebGPUProgram')).toBe(false);
    });

    it('refuses to count on another backend, saying what to do', async () => {
      await tf.setBackend('cpu');
      try {
        expect(() => startWebGpuCounter()).toThrow(GradientRoutingError);
        expect(() => startWebGpuCounter()).toThrow(/active backend is 'cpu'.*Select WebGPU first/);
      } finally {
        await tf.setBackend('webgpu');
      }
    });
  },
);
