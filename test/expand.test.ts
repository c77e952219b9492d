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

describe('expansion options and edges', () => {
  beforeAll(() => useBackend('cpu'));

  const std = (t: tf.Tensor) => {
    const data = Array.from(t.dataSync());
    const mean = data.reduce((a, b) => a + b, 0) / data.length;
    return Math.sqrt(data.reduce((a, b) => a + (b - mean) ** 2, 0) / data.length);
  };

  it('draws new weights with std 0.02 unless told otherwise, and names the region', async () => {
    const base = createTransformer(config);
    await expectNoLeak(() => {
      for (const [options, want] of [
        [{ units: 50, seed: 4 }, 0.02],
        [{ units: 50, seed: 4, std: 0.1, name: 'spare' }, 0.1],
      ] as const) {
        const { weights, region } = expandMlpWeights(base.mlpWeights(0), options);
        expect(region).toEqual({
          name: 'name' in options ? 'spare' : 'expanded',
          start: 20,
          end: 70,
        });
        tf.tidy(() => {
          const newIn = tf.slice(weights.inWeight, [0, 20], [12, 50]);
          const newOut = tf.slice(weights.outWeight, [20, 0], [50, 12]);
          for (const part of [newIn, newOut]) {
            expect(std(part) / want).toBeGreaterThan(0.9);
            expect(std(part) / want).toBeLessThan(1.1);
          }
          expect(Array.from(weights.outBias.dataSync())).toEqual(
            Array.from(base.mlpWeights(0).outBias.dataSync()),
          );
          expect(Array.from(tf.slice(weights.outWeight, [0, 0], [20, 12]).dataSync())).toEqual(
            Array.from(base.mlpWeights(0).outWeight.dataSync()),
          );
        });
        tf.dispose(Object.values(weights));
      }
    });
    // One unit is enough; fractions, zero, negatives and NaN are not.
    const one = expandMlpWeights(base.mlpWeights(0), { units: 1, seed: 0 });
    expect(one.weights.inWeight.shape).toEqual([12, 21]);
    tf.dispose(Object.values(one.weights));
    for (const units of [0, -1, 1.5, Number.NaN]) {
      expect(() => expandMlpWeights(base.mlpWeights(0), { units, seed: 0 })).toThrow(
        /positive whole number of units, got/,
      );
    }
    base.dispose();
  });

  it('a second expansion needs another name; regions of untouched blocks are kept', async () => {
    const base = createTransformer(config);
    const once = expandTransformerMlps(base, { layers: [0], units: 3, seed: 1 });
    await expectNoLeak(() => {
      expect(() => expandTransformerMlps(once, { layers: [1, 0], units: 2, seed: 1 })).toThrow(
        /block 0 already has a region 'expanded'; contract it first or pass another name/,
      );
    });
    const twice = expandTransformerMlps(once, { layers: [0, 2], units: 2, seed: 1, name: 'b' });
    expect(twice.mlpRegions(0)).toEqual([
      { name: 'expanded', start: 20, end: 23 },
      { name: 'b', start: 23, end: 25 },
    ]);
    expect(twice.mlpRegions(1)).toEqual([]);
    expect(twice.mlpRegions(2)).toEqual([{ name: 'b', start: 20, end: 22 }]);
    // Expanding block 2 alone keeps block 0's region.
    const other = expandTransformerMlps(once, { layers: [2], units: 2, seed: 1, name: 'c' });
    expect(other.mlpRegions(0)).toEqual(once.mlpRegions(0));
    // Contracting the first region moves the later one down; contracting the later keeps the first.
    const withoutFirst = contractTransformerMlps(twice);
    expect(withoutFirst.mlpRegions(0)).toEqual([{ name: 'b', start: 20, end: 22 }]);
    expect(withoutFirst.mlpRegions(2)).toEqual([{ name: 'b', start: 20, end: 22 }]);
    expect(withoutFirst.mlpWidth(0)).toBe(22);
    const withoutSecond = contractTransformerMlps(twice, 'b');
    expect(withoutSecond.mlpRegions(0)).toEqual([{ name: 'expanded', start: 20, end: 23 }]);
    expect(withoutSecond.mlpRegions(2)).toEqual([]);
    expect([0, 1, 2].map((i) => withoutSecond.mlpWidth(i))).toEqual([23, 20, 20]);
    // A missing region is reported without leaking the copy made while looking.
    await expectNoLeak(() => {
      expect(() => contractTransformerMlps(twice, 'nothing')).toThrow(/region 'nothing'/);
    });
    for (const m of [base, once, twice, other, withoutFirst, withoutSecond]) m.dispose();
  });

  it('blocks get different new weights; the base model is left as it was', () => {
    const base = createTransformer(config);
    const before = [...base.namedParameters()].map(([name, v]) => [name, v.shape] as const);
    const expanded = expandTransformerMlps(base, { layers: [0, 1], units: 4, seed: 5 });
    const newColumns = [0, 1].map((i) =>
      tf.tidy(() =>
        Array.from(tf.slice(expanded.mlpWeights(i).inWeight, [0, 20], [12, 4]).dataSync()),
      ),
    );
    expect(newColumns[0]).not.toEqual(newColumns[1]);
    expect([...base.namedParameters()].map(([name, v]) => [name, v.shape] as const)).toEqual(
      before,
    );
    expect(base.mlpRegions(0)).toEqual([]);
    expanded.dispose();
    base.dispose();
  });

  it('rejects blocks outside the model, negative or fractional', () => {
    const base = createTransformer(config);
    for (const layer of [-1, 1.5, 3]) {
      expect(() => expandTransformerMlps(base, { layers: [layer], units: 2, seed: 0 })).toThrow(
        new RegExp(`cannot expand block ${layer}; the model has blocks 0..2`),
      );
    }
    base.dispose();
  });

  it('contracts regions at either end of the hidden layer and rejects regions that do not fit', () => {
    const mlp = tf.tidy(() => ({
      inWeight: tf.tensor2d([1, 2, 3, 4], [1, 4]),
      inBias: tf.tensor1d([10, 20, 30, 40]),
      outWeight: tf.tensor2d([5, 6, 7, 8], [4, 1]),
      outBias: tf.tensor1d([9]),
    }));
    const front = contractMlpWeights(mlp, { name: 'f', start: 0, end: 1 });
    const back = contractMlpWeights(mlp, { name: 'b', start: 3, end: 4 });
    expect(Array.from(front.inWeight.dataSync())).toEqual([2, 3, 4]);
    expect(Array.from(front.outWeight.dataSync())).toEqual([6, 7, 8]);
    expect(Array.from(back.inBias.dataSync())).toEqual([10, 20, 30]);
    expect(Array.from(back.outWeight.dataSync())).toEqual([5, 6, 7]);
    for (const [start, end] of [
      [-1, 2],
      [2, 2],
      [3, 2],
      [3, 5],
    ]) {
      expect(() => contractMlpWeights(mlp, { name: 'x', start: start!, end: end! })).toThrow(
        new RegExp(`cannot remove units \\[${start}, ${end}\\) from a hidden layer of 4 units`),
      );
    }
    tf.dispose([...Object.values(mlp), ...Object.values(front), ...Object.values(back)]);
  });
});

describe('Dense pair expansion: layers without bias and bad layers', () => {
  beforeAll(() => useBackend('cpu'));

  const input = () =>
    tf.tensor2d(
      Array.from({ length: 12 }, (_, i) => Math.cos(i) * 2),
      [3, 4],
    );

  it('expands and contracts Dense layers without bias; the new units start silent', async () => {
    const first = tfl.layers.dense({
      units: 5,
      useBias: false,
      activation: 'tanh',
      inputShape: [4],
    });
    const second = tfl.layers.dense({ units: 2, useBias: false });
    const model = tfl.sequential({ layers: [first, second] });
    const x = input();
    const original = tf.tidy(() => Array.from((model.predict(x) as tf.Tensor).dataSync()));
    await expectNoLeak(() => {
      const wide = expandDensePair(first, second, { units: 3, seed: 2, name: 'extra' });
      expect(wide.region).toEqual({ name: 'extra', start: 5, end: 8 });
      expect(wide.first.getWeights().map((w) => w.shape)).toEqual([[4, 8]]);
      expect(wide.second.getWeights().map((w) => w.shape)).toEqual([[8, 2]]);
      // The old units are copied unchanged: with the new ones zeroed, the outputs are the original.
      const zeroed = tf.tidy(() => {
        const h = wide.first.apply(x) as tf.Tensor;
        const keep = tf.tensor1d([1, 1, 1, 1, 1, 0, 0, 0]);
        return Array.from((wide.second.apply(tf.mul(h, keep)) as tf.Tensor).dataSync());
      });
      for (const [i, v] of zeroed.entries()) expect(v).toBeCloseTo(original[i]!, 6);
      const narrow = contractDensePair(wide.first, wide.second, wide.region);
      expect(narrow.first.getWeights().map((w) => w.shape)).toEqual([[4, 5]]);
      expect(narrow.second.getWeights().map((w) => w.shape)).toEqual([[5, 2]]);
      const back = tf.tidy(() =>
        Array.from(
          (narrow.second.apply(narrow.first.apply(x) as tf.Tensor) as tf.Tensor).dataSync(),
        ),
      );
      for (const [i, v] of back.entries()) expect(v).toBeCloseTo(original[i]!, 6);
      for (const layer of [wide.first, wide.second, narrow.first, narrow.second]) {
        for (const v of layer.weights) v.dispose();
      }
    });
    x.dispose();
    model.dispose();
  });

  it('names a layer that is not a built Dense layer, and a pair that does not fit', () => {
    const first = tfl.layers.dense({ units: 5, inputShape: [4] });
    const second = tfl.layers.dense({ units: 2 });
    const model = tfl.sequential({ layers: [first, second] });
    const unbuilt = tfl.layers.dense({ units: 3 });
    const activation = tfl.layers.activation({ activation: 'relu' });
    const options = { units: 1, seed: 0 };
    expect(() => expandDensePair(unbuilt, second, options)).toThrow(
      /the first layer must be a built tfjs-layers Dense layer.*got Dense \(not built\)/,
    );
    expect(() => expandDensePair(first, activation, options)).toThrow(
      /the second layer must be a built .*got Activation \(not built\)/,
    );
    expect(() => contractDensePair(first, unbuilt, { name: 'x', start: 0, end: 1 })).toThrow(
      /the second layer must be a built/,
    );
    // A built layer of another class.
    const relu = tfl.layers.activation({ activation: 'relu' });
    const withActivation = tfl.sequential({
      layers: [tfl.layers.dense({ units: 2, inputShape: [4] }), relu],
    });
    expect(relu.built).toBe(true);
    expect(() => expandDensePair(first, relu, options)).toThrow(
      /the second layer must be a built tfjs-layers Dense layer .*got Activation\.$/,
    );
    withActivation.dispose();
    // first → first: 5 units feed a layer that takes 4 inputs.
    expect(() => expandDensePair(first, first, options)).toThrow(
      /the first Dense layer has 5 units but the second takes 4 inputs/,
    );
    model.dispose();
  });
});
