import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { denseStack } from '../src/core/layers/dense-stack.js';
import { GradientRoutingError } from '../src/index.js';
import { expectNoLeak, useBackend } from './helpers/backends.js';

const weightsOf = (model: ReturnType<typeof denseStack>) =>
  model.layers.map((layer) =>
    layer.getWeights().map((w) => w.arraySync() as number[] | number[][]),
  );

describe('denseStack', () => {
  beforeAll(() => useBackend('cpu'));

  it('computes relu(x W0 + b0) … W_last + b_last, with no activation after the last layer', async () => {
    const model = denseStack([3, 4, 2], { seed: 2 });
    const [[w0, b0], [w1, b1]] = weightsOf(model) as [
      [number[][], number[]],
      [number[][], number[]],
    ];
    const inputs = [
      [1, -2, 0.5],
      [-3, 1, 2],
      [0.1, 0.2, -0.3],
    ];
    const affine = (v: number[], w: number[][], b: number[]) =>
      b.map((bias, j) => v.reduce((sum, vi, i) => sum + vi * w[i]![j]!, bias));
    const want = inputs.map((v) =>
      affine(
        affine(v, w0, b0).map((z) => Math.max(z, 0)),
        w1,
        b1,
      ),
    );
    const x = tf.tensor2d(inputs);
    await expectNoLeak(() => {
      const got = tf.tidy(() => (model.predict(x) as tf.Tensor).arraySync() as number[][]);
      for (const [i, v] of got.flat().entries()) expect(v).toBeCloseTo(want.flat()[i]!, 6);
    });
    // Both signs occur before the ReLU and after the last layer, so both facts are tested.
    const hidden = inputs.flatMap((v) => affine(v, w0, b0));
    expect(Math.min(...hidden)).toBeLessThan(0);
    expect(Math.max(...hidden)).toBeGreaterThan(0);
    expect(Math.min(...want.flat())).toBeLessThan(0);
    x.dispose();
    model.dispose();
  });

  it('initialises weights and biases uniform in ±1/√fan_in, as PyTorch nn.Linear does', () => {
    const model = denseStack([64, 16, 8], { seed: 1 });
    model.layers.forEach((layer, i) => {
      const bound = 1 / Math.sqrt(i === 0 ? 64 : 16);
      for (const weight of layer.getWeights()) {
        const values = Array.from(weight.dataSync());
        expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(bound);
        // Spread over the whole range, not concentrated near 0.
        expect(Math.max(...values)).toBeGreaterThan(0.7 * bound);
        expect(Math.min(...values)).toBeLessThan(-0.7 * bound);
      }
    });
    model.dispose();
  });

  it('is reproducible from its seed; layers, kernels and biases draw different values', () => {
    const initial = (options: Parameters<typeof denseStack>[1]) => {
      const model = denseStack([8, 8, 8, 8], options);
      const weights = weightsOf(model);
      model.dispose();
      return weights;
    };
    const a = initial({ seed: 3 });
    const b = initial({ seed: 3 });
    const c = initial({ seed: 4 });
    const d = initial(undefined);
    const e = initial({ seed: 0 });
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(d).toEqual(e); // the default seed is 0
    const kernels = a.map(([kernel]) => JSON.stringify(kernel));
    expect(new Set(kernels).size).toBe(3);
    const firstRows = a.flatMap(([kernel, bias]) => [
      JSON.stringify((kernel as number[][])[0]),
      JSON.stringify(bias),
    ]);
    expect(new Set(firstRows).size).toBe(6);
    // No layer of seed 4 repeats a layer of seed 3.
    for (const [kernel] of c) expect(kernels).not.toContain(JSON.stringify(kernel));
  });

  it('has a bias on every layer unless lastBias is false, and names layers after its prefix', () => {
    const withBias = denseStack([5, 3, 2]);
    const noLastBias = denseStack([5, 3, 2], { lastBias: false, name: 'enc' });
    expect(withBias.layers.map((layer) => layer.getWeights().length)).toEqual([2, 2]);
    expect(noLastBias.layers.map((layer) => layer.getWeights().length)).toEqual([2, 1]);
    expect(withBias.layers[0]!.name).toMatch(/^mlp_dense0_\d+$/);
    expect(noLastBias.name).toMatch(/^enc_\d+$/);
    expect(noLastBias.layers.map((layer) => layer.name)).toEqual([
      expect.stringMatching(/^enc_dense0_\d+$/),
      expect.stringMatching(/^enc_dense1_\d+$/),
    ]);
    expect(withBias.inputs[0]!.shape).toEqual([null, 5]);
    expect(withBias.outputs[0]!.shape).toEqual([null, 2]);
    // Two stacks with the same prefix get distinct layer names.
    const again = denseStack([2, 2]);
    expect(again.layers[0]!.name).not.toBe(withBias.layers[0]!.name);
    again.dispose();
    withBias.dispose();
    noLastBias.dispose();
  });

  it('accepts sizes of 1 and rejects fewer than two sizes or non-positive, fractional sizes', () => {
    const tiny = denseStack([1, 1]);
    expect(tiny.layers).toHaveLength(1);
    tiny.dispose();
    for (const sizes of [[], [4], [4, 0], [0, 4], [4, -2], [4, 2.5], [4, 3, Number.NaN]]) {
      expect(() => denseStack(sizes)).toThrow(GradientRoutingError);
      expect(() => denseStack(sizes)).toThrow(/at least two positive integer sizes/);
    }
  });
});
