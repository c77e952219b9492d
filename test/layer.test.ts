import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeEach, describe, expect, it } from 'vitest';
import { RouteGradients } from '../src/core/layers/route-gradients.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const ROWS = 6;
const INPUTS = 3;
const UNITS = 4;

/** Seeded initial weights, so every run trains from the same start. */
const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });

/** x → Dense(4) → RouteGradients([h, mask]) → Dense(2), with the mask as a second model input. */
function maskedModel(maskShape: number[] = [UNITS]): tfl.LayersModel {
  const x = tfl.input({ shape: [INPUTS], name: 'x' });
  const mask = tfl.input({ shape: maskShape, name: 'mask' });
  const hidden = tfl.layers
    .dense({ units: UNITS, activation: 'tanh', name: 'encoder', kernelInitializer: seeded(1) })
    .apply(x) as tfl.SymbolicTensor;
  const routed = new RouteGradients({ name: 'route' }).apply([hidden, mask]) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({ units: 2, name: 'decoder', kernelInitializer: seeded(2) })
    .apply(routed) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [x, mask], outputs: out });
}

/** The same network with a fixed-region RouteGradients instead of a mask input. */
function regionModel(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        units: UNITS,
        activation: 'tanh',
        inputShape: [INPUTS],
        name: 'encoder',
        kernelInitializer: seeded(3),
      }),
      new RouteGradients({ regions: [[0, 2]], name: 'route' }),
      tfl.layers.dense({ units: 2, name: 'decoder', kernelInitializer: seeded(4) }),
    ],
  });
}

function data(): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const xs = tf.tensor2d(
    Array.from({ length: ROWS * INPUTS }, (_, i) => Math.sin(i * 0.9)),
    [ROWS, INPUTS],
  );
  const ys = tf.tensor2d(
    Array.from({ length: ROWS * 2 }, (_, i) => Math.cos(i * 1.3)),
    [ROWS, 2],
  );
  return { xs, ys };
}

/** Snapshot of every weight's values, by weight name. */
function weightValues(model: tfl.LayersModel): Map<string, Float32Array> {
  return new Map(
    model.weights.map((w) => [w.originalName, (w.read().dataSync() as Float32Array).slice()]),
  );
}

function column(values: Float32Array, columns: number, index: number): number[] {
  return Array.from(values).filter((_, i) => i % columns === index);
}

/** True when the two arrays are identical element by element under Object.is. */
function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return a.length === b.length && Array.from(a).every((value, i) => Object.is(value, b[i]));
}

/** Per-weight checks: encoder units 2..3 (kernel columns and biases) must not move. */
function expectBlockedUnitsFrozen(
  before: Map<string, Float32Array>,
  after: Map<string, Float32Array>,
): void {
  const kernelBefore = before.get('encoder/kernel')!;
  const kernelAfter = after.get('encoder/kernel')!;
  const biasBefore = before.get('encoder/bias')!;
  const biasAfter = after.get('encoder/bias')!;
  for (const unit of [2, 3]) {
    expect(sameValues(column(kernelAfter, UNITS, unit), column(kernelBefore, UNITS, unit))).toBe(
      true,
    );
    expect(Object.is(biasAfter[unit], biasBefore[unit])).toBe(true);
  }
  for (const unit of [0, 1]) {
    expect(sameValues(column(kernelAfter, UNITS, unit), column(kernelBefore, UNITS, unit))).toBe(
      false,
    );
    expect(biasAfter[unit]).not.toBe(biasBefore[unit]);
  }
  // The decoder sits after the routing and learns from every unit.
  const decoderBefore = before.get('decoder/kernel')!;
  const decoderAfter = after.get('decoder/kernel')!;
  expect(Array.from(decoderAfter).every((value, i) => value !== decoderBefore[i])).toBe(true);
}

async function saveToMemory(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return saved!;
}

describe.each(TEST_BACKENDS)('RouteGradients layer on %s', (backend) => {
  beforeEach(async () => {
    await useBackend(backend);
  });

  it('leaves the weights of blocked units bit-identical during fit with SGD', async () => {
    const model = maskedModel();
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const { xs, ys } = data();
    // Units 2..3 are blocked for every example; examples alternate which of 0..1 they may update.
    const masks = tf.tensor2d(
      Array.from({ length: ROWS }, (_, r) => (r % 2 === 0 ? [1, 0.5, 0, 0] : [0, 1, 0, 0])),
    );
    const before = weightValues(model);
    await model.fit([xs, masks], ys, { epochs: 3, batchSize: 3, shuffle: false, verbose: 0 });
    expectBlockedUnitsFrozen(before, weightValues(model));
    tf.dispose([xs, ys, masks]);
    model.dispose();
  });

  it('routes per example with a [batch, 1] mask input', async () => {
    const model = maskedModel([1]);
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const { xs, ys } = data();
    const blocked = tf.zeros([ROWS, 1]);
    const before = weightValues(model);
    await model.fit([xs, blocked], ys, { epochs: 2, batchSize: ROWS, shuffle: false, verbose: 0 });
    const after = weightValues(model);
    expect(sameValues(after.get('encoder/kernel')!, before.get('encoder/kernel')!)).toBe(true);
    expect(sameValues(after.get('encoder/bias')!, before.get('encoder/bias')!)).toBe(true);
    expect(sameValues(after.get('decoder/kernel')!, before.get('decoder/kernel')!)).toBe(false);

    const open = tf.ones([ROWS, 1]);
    await model.fit([xs, open], ys, { epochs: 1, batchSize: ROWS, shuffle: false, verbose: 0 });
    const opened = weightValues(model);
    expect(sameValues(opened.get('encoder/kernel')!, after.get('encoder/kernel')!)).toBe(false);
    tf.dispose([xs, ys, blocked, open]);
    model.dispose();
  });

  it('does not change the output: predictions are bit-identical whatever the mask', () => {
    const model = maskedModel();
    const { xs, ys } = data();
    const ones = tf.ones([ROWS, UNITS]);
    const zeros = tf.zeros([ROWS, UNITS]);
    const a = model.predict([xs, ones]) as tf.Tensor;
    const b = model.predict([xs, zeros]) as tf.Tensor;
    expect(sameValues(a.dataSync(), b.dataSync())).toBe(true);
    tf.dispose([xs, ys, ones, zeros, a, b]);
    model.dispose();
  });

  it('gives mask·dy through apply() on concrete tensors, with exact +0 for NaN upstream', async () => {
    const layer = new RouteGradients();
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const mask = tf.tensor2d([
      [1, 0],
      [0, 0.5],
    ]);
    const dy = tf.tensor2d([
      [Number.NaN, Number.NaN],
      [Number.POSITIVE_INFINITY, 4],
    ]);
    await expectNoLeak(() => {
      const routed = layer.apply([x, mask]) as tf.Tensor;
      expect(sameValues(routed.dataSync(), x.dataSync())).toBe(true);
      const grad = tf.grad((v: tf.Tensor) => layer.apply([v, mask]) as tf.Tensor)(x, dy);
      const values = Array.from(grad.dataSync());
      expect(Number.isNaN(values[0])).toBe(true);
      expect([Object.is(values[1], 0), Object.is(values[2], 0)]).toEqual([true, true]);
      expect(values[3]).toBe(2);
      tf.dispose([routed, grad]);
    });
    tf.dispose([x, mask, dy]);
  });

  it('saves and loads through tf.io with identical weights, outputs and routing', async () => {
    const model = maskedModel();
    const artifacts = await saveToMemory(model);
    const topology = JSON.stringify(artifacts.modelTopology);
    expect(topology).toContain('"class_name":"RouteGradients"');

    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
    expect(loaded.getLayer('route')).toBeInstanceOf(RouteGradients);
    const original = weightValues(model);
    const restored = weightValues(loaded);
    expect([...restored.keys()]).toEqual([...original.keys()]);
    for (const [name, values] of original) {
      expect(sameValues(restored.get(name)!, values)).toBe(true);
    }

    const { xs, ys } = data();
    const masks = tf.tensor2d(
      Array.from({ length: ROWS }, () => [1, 1, 0, 0]),
      [ROWS, UNITS],
    );
    const a = model.predict([xs, masks]) as tf.Tensor;
    const b = loaded.predict([xs, masks]) as tf.Tensor;
    expect(sameValues(a.dataSync(), b.dataSync())).toBe(true);

    loaded.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const before = weightValues(loaded);
    await loaded.fit([xs, masks], ys, { epochs: 2, batchSize: 3, shuffle: false, verbose: 0 });
    expectBlockedUnitsFrozen(before, weightValues(loaded));
    tf.dispose([xs, ys, masks, a, b]);
    model.dispose();
    loaded.dispose();
  });

  describe('with fixed regions', () => {
    it('routes only into the regions and keeps them through save and load', async () => {
      const model = regionModel();
      const layer = model.getLayer('route') as RouteGradients;
      expect(layer.getConfig().regions).toEqual([[0, 2]]);

      const artifacts = await saveToMemory(model);
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
      const loadedLayer = loaded.getLayer('route') as RouteGradients;
      expect(loadedLayer).toBeInstanceOf(RouteGradients);
      expect(loadedLayer.regions).toEqual([[0, 2]]);

      const { xs, ys } = data();
      const a = model.predict(xs) as tf.Tensor;
      const b = loaded.predict(xs) as tf.Tensor;
      expect(sameValues(a.dataSync(), b.dataSync())).toBe(true);

      for (const m of [model, loaded]) {
        m.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
        const before = weightValues(m);
        await m.fit(xs, ys, { epochs: 2, batchSize: 3, shuffle: false, verbose: 0 });
        expectBlockedUnitsFrozen(before, weightValues(m));
      }
      tf.dispose([xs, ys, a, b]);
      model.dispose();
      loaded.dispose();
    });

    it('accepts a single region and rejects regions outside the features', () => {
      const x = tfl.input({ shape: [4] });
      expect(new RouteGradients({ regions: [1, 3] }).regions).toEqual([[1, 3]]);
      expect(() => new RouteGradients({ regions: [[2, 6]] }).apply(x)).toThrowError(
        /^gradient-routing: region \[2, 6\) is out of bounds/,
      );
      expect(() =>
        new RouteGradients({
          regions: [
            [0, 2],
            [1, 3],
          ],
        }).apply(x),
      ).toThrowError(/overlap/);
    });
  });

  it('rejects wrong input counts and masks that do not broadcast, naming the shapes', () => {
    const x = tfl.input({ shape: [4] });
    const mask3 = tfl.input({ shape: [3] });
    const mask4 = tfl.input({ shape: [4] });
    expect(() => new RouteGradients({ name: 'bad' }).apply([x, mask3])).toThrowError(
      "gradient-routing: RouteGradients layer 'bad' got a mask of shape [null,3] that does not " +
        'broadcast to its input of shape [null,4]',
    );
    expect(() => new RouteGradients().apply(x)).toThrowError(/takes two inputs \[x, mask\], got 1/);
    expect(() => new RouteGradients({ regions: [0, 2] }).apply([x, mask4])).toThrowError(
      /has fixed regions and takes one input, got 2/,
    );
    const concrete = tf.ones([2, 4]);
    const concreteMask = tf.ones([2, 3]);
    expect(() => new RouteGradients().apply([concrete, concreteMask])).toThrowError(
      /^gradient-routing: .*does not broadcast/,
    );
    tf.dispose([concrete, concreteMask]);
  });

  it('leaks no tensors in predict or after the first fit step', async () => {
    const model = maskedModel();
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const { xs, ys } = data();
    const masks = tf.ones([ROWS, UNITS]);
    await expectNoLeak(() => tf.dispose(model.predict([xs, masks])));
    // The first fit creates the optimizer's state; later ones must not add tensors.
    await model.fit([xs, masks], ys, { epochs: 1, shuffle: false, verbose: 0 });
    await expectNoLeak(() => model.fit([xs, masks], ys, { epochs: 2, shuffle: false, verbose: 0 }));
    tf.dispose([xs, ys, masks]);
    model.dispose();
  });
});
