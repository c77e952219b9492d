import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  contractDensePair,
  contractMlpWeights,
  contractTransformerMlps,
  createTransformer,
  expandDensePair,
  expandMlpWeights,
  expandTransformerMlps,
  forwardContext,
  type TinyTransformer,
  type TransformerConfig,
} from '../src/index.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const config: TransformerConfig = {
  vocabSize: 19,
  contextLength: 6,
  modelDim: 12,
  numLayers: 3,
  numHeads: 3,
  mlpDim: 20,
  seed: 11,
};

const input = () => tf.tensor2d([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], [2, 6], 'int32');

/** Logits of `model` with the `expanded` units of every expanded MLP set to 0. */
function withExpansionZeroed(model: TinyTransformer, x: tf.Tensor2D): Float32Array {
  const edit: Record<string, (a: tf.Tensor) => tf.Tensor> = {};
  for (let i = 0; i < model.config.numLayers; i++) {
    const region = model.mlpRegions(i).find((r) => r.name === 'expanded');
    if (region === undefined) continue;
    const width = model.mlpWidth(i);
    const keep = new Float32Array(width).fill(1).fill(0, region.start, region.end);
    edit[`blocks.${i}.mlp.hidden`] = (a) => tf.mul(a, tf.tensor1d(keep));
  }
  return tf.tidy(
    () => model.forward(x, forwardContext(model, { edit })).dataSync() as Float32Array,
  );
}

describe.each(TEST_BACKENDS)('MLP expansion and contraction on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('expands only the chosen blocks, with a named region after the old units', async () => {
    const base = createTransformer(config);
    await expectNoLeak(() => {
      const expanded = expandTransformerMlps(base, { layers: [0, 2], units: 5, seed: 1 });
      expect([0, 1, 2].map((i) => expanded.mlpWidth(i))).toEqual([25, 20, 25]);
      expect(expanded.mlpRegions(0)).toEqual([{ name: 'expanded', start: 20, end: 25 }]);
      expect(expanded.mlpRegions(1)).toEqual([]);
      // Old weights copied unchanged; new bias zero; new weights random (not zero).
      const w = expanded.mlpWeights(0);
      const old = base.mlpWeights(0);
      tf.tidy(() => {
        expect(Array.from(tf.slice(w.inWeight, [0, 0], [12, 20]).dataSync())).toEqual(
          Array.from(old.inWeight.dataSync()),
        );
        expect(Array.from(tf.slice(w.inBias, [20], [5]).dataSync())).toEqual([0, 0, 0, 0, 0]);
        expect(
          tf.max(tf.abs(tf.slice(w.outWeight, [20, 0], [5, 12]))).dataSync()[0],
        ).toBeGreaterThan(0);
      });
      expanded.dispose();
    });
    base.dispose();
  });

  it('with the new units zeroed, the expanded model computes exactly what the base did', () => {
    const base = createTransformer(config);
    const expanded = expandTransformerMlps(base, { layers: [0, 1], units: 4, seed: 2 });
    const x = input();
    const plain = tf.tidy(() => base.forward(x).dataSync());
    const zeroed = withExpansionZeroed(expanded, x);
    const full = tf.tidy(() => expanded.forward(x).dataSync());
    expect(Array.from(zeroed)).toEqual(Array.from(plain));
    // The new units matter when active (so the comparison above can fail).
    expect(Array.from(full)).not.toEqual(Array.from(plain));
    tf.dispose(x);
    base.dispose();
    expanded.dispose();
  });

  it('contraction restores the original shapes and equals the expanded model with its units at 0', async () => {
    const base = createTransformer(config);
    const expanded = expandTransformerMlps(base, { layers: [0, 1], units: 4, seed: 3 });
    // Train the expanded model a little so the comparison is not at initial weights.
    const opt = tf.train.sgd(0.5);
    const x = input();
    const w = tf.ones([2, 6]) as tf.Tensor2D;
    for (let i = 0; i < 3; i++) {
      opt.minimize(
        () => tf.mean(tf.square(expanded.forward(x))) as tf.Scalar,
        false,
        expanded.trainableVariables(),
      );
    }
    await expectNoLeak(() => {
      const contracted = contractTransformerMlps(expanded);
      for (const [name, v] of contracted.namedParameters()) {
        expect(v.shape, name).toEqual(base.namedParameters().get(name)!.shape);
      }
      expect(contracted.mlpRegions(0)).toEqual([]);
      const got = tf.tidy(() => contracted.forward(x).dataSync());
      const want = withExpansionZeroed(expanded, x);
      if (backend === 'cpu') {
        // The cpu backend sums in order, so dropping trailing zero terms changes no bit.
        expect(Array.from(got)).toEqual(Array.from(want));
      } else {
        for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
      }
      contracted.dispose();
    });
    tf.dispose([x, w]);
    opt.dispose();
    base.dispose();
    expanded.dispose();
  });

  it('contracting a region in the middle keeps the units on both sides', () => {
    const mlp = tf.tidy(() => ({
      inWeight: tf.tensor2d([1, 2, 3, 4, 5, 6], [1, 6]),
      inBias: tf.tensor1d([10, 20, 30, 40, 50, 60]),
      outWeight: tf.tensor2d([1, 2, 3, 4, 5, 6], [6, 1]),
      outBias: tf.tensor1d([7]),
    }));
    const out = contractMlpWeights(mlp, { name: 'mid', start: 2, end: 4 });
    expect(Array.from(out.inWeight.dataSync())).toEqual([1, 2, 5, 6]);
    expect(Array.from(out.inBias.dataSync())).toEqual([10, 20, 50, 60]);
    expect(Array.from(out.outWeight.dataSync())).toEqual([1, 2, 5, 6]);
    expect(Array.from(out.outBias.dataSync())).toEqual([7]);
    tf.dispose([mlp, out] as unknown as tf.Tensor[]);
    tf.dispose(Object.values(mlp));
    tf.dispose(Object.values(out));
  });

  it('expands and contracts a tfjs-layers Dense pair', async () => {
    // Seeded, so every run expands the same weights.
    const first = tfl.layers.dense({
      units: 8,
      activation: 'relu',
      inputShape: [5],
      kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }),
    });
    const second = tfl.layers.dense({
      units: 3,
      kernelInitializer: tfl.initializers.glorotUniform({ seed: 6 }),
    });
    const model = tfl.sequential({ layers: [first, second] });
    const x = tf.tensor2d(
      Array.from({ length: 20 }, (_, i) => Math.sin(i)),
      [4, 5],
    );
    const { first: f2, second: s2, region } = expandDensePair(first, second, { units: 4, seed: 9 });
    expect(region).toEqual({ name: 'expanded', start: 8, end: 12 });
    const wider = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [5] }), f2, s2] });
    const hiddenZeroed = tf.tidy(() => {
      const h = f2.apply(x) as tf.Tensor;
      const keep = tf.tensor1d([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
      return (s2.apply(tf.mul(h, keep)) as tf.Tensor).dataSync();
    });
    const original = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
    for (let i = 0; i < original.length; i++) expect(hiddenZeroed[i]).toBeCloseTo(original[i]!, 6);
    await expectNoLeak(() => {
      const { first: f3, second: s3 } = contractDensePair(f2, s2, region);
      const narrow = tf.tidy(() => (s3.apply(f3.apply(x) as tf.Tensor) as tf.Tensor).dataSync());
      for (let i = 0; i < original.length; i++) expect(narrow[i]).toBeCloseTo(hiddenZeroed[i]!, 6);
      expect((f3.getWeights()[0] as tf.Tensor).shape).toEqual([5, 8]);
      // Layers never applied symbolically cannot be disposed; free their variables.
      for (const layer of [f3, s3]) for (const v of layer.weights) v.dispose();
    });
    x.dispose();
    wider.dispose();
    model.dispose();
  });
});

describe('expansion errors', () => {
  beforeAll(() => useBackend('cpu'));

  it('names bad layers, bad unit counts and missing regions', () => {
    const base = createTransformer(config);
    expect(() => expandTransformerMlps(base, { layers: [3], units: 2, seed: 0 })).toThrow(
      /cannot expand block 3; the model has blocks 0..2/,
    );
    expect(() => expandTransformerMlps(base, { layers: [0], units: 0, seed: 0 })).toThrow(
      /positive whole number of units/,
    );
    expect(() => contractTransformerMlps(base)).toThrow(
      /no MLP of this transformer has a region 'expanded'/,
    );
    const weights = expandMlpWeights(base.mlpWeights(0), { units: 2, seed: 0 });
    expect(() => contractMlpWeights(weights.weights, { name: 'x', start: 20, end: 30 })).toThrow(
      /cannot remove units \[20, 30\) from a hidden layer of 22 units/,
    );
    tf.dispose(Object.values(weights.weights));
    base.dispose();
  });
});
