import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { RoutedAutoencoder } from '../src/core/models/autoencoder.js';
import { torchAdam } from '../src/core/optim/adam.js';
import { loadFromDirectory, saveToDirectory } from '../src/node/files.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const ROUTES = [
  { labels: [0, 1, 2, 3, 4], region: [0, 4] as const },
  { labels: [5, 6, 7, 8, 9], region: [4, 8] as const },
];

function smallModel(seed = 0): RoutedAutoencoder {
  return new RoutedAutoencoder({
    inputDim: 12,
    hidden: [10, 6],
    latentDim: 8,
    routes: ROUTES,
    seed,
  });
}

function batch(labels: number[]): { x: tf.Tensor2D; y: tf.Tensor1D } {
  return {
    x: tf.randomUniform([labels.length, 12], -1, 1, 'float32', 7) as tf.Tensor2D,
    y: tf.tensor1d(labels, 'int32'),
  };
}

describe.each(TEST_BACKENDS)('RoutedAutoencoder on %s', (backend) => {
  it('sends no gradient from digits 0-4 into latent dims 4-8, and vice versa', async () => {
    await useBackend(backend);
    const model = smallModel();
    // The latent layer's kernel [6, 8]: column j is what feeds latent dim j.
    const variable = model.trainableVariables.find((v) => v.shape[1] === 8)!;
    for (const [labels, blocked] of [
      [
        [0, 1, 4, 3],
        [4, 8],
      ],
      [
        [5, 9, 7, 6],
        [0, 4],
      ],
    ] as const) {
      const { x, y } = batch([...labels]);
      const { grads } = tf.variableGrads(
        () => model.loss(x, y, { weights: { l1: 0, correlation: 0, certificates: 0 } }).total,
        [variable],
      );
      const g = grads[variable.name]!.arraySync() as number[][];
      const own = labels[0]! < 5 ? [0, 4] : [4, 8];
      let ownNonZero = 0;
      for (const row of g) {
        for (let j = blocked[0]; j < blocked[1]; j++) expect(Object.is(row[j], 0)).toBe(true);
        for (let j = own[0]!; j < own[1]!; j++) if (row[j] !== 0) ownNonZero += 1;
      }
      // The routed half does learn from these examples.
      expect(ownNonZero).toBeGreaterThan(8);
      tf.dispose([x, y, grads[variable.name]!]);
    }
    model.dispose();
  });

  it('trains without leaking tensors and lowers the loss', async () => {
    await useBackend(backend);
    const model = smallModel(1);
    const optimizer = torchAdam({ learningRate: 1e-2, weightDecay: 5e-5 });
    const { x, y } = batch([0, 5, 1, 6, 2, 7, 3, 8]);
    const first = model.trainStep(optimizer, x, y);
    const firstValue = first.dataSync()[0]!;
    first.dispose();
    let last = Number.NaN;
    await expectNoLeak(() => {
      for (let i = 0; i < 30; i++) {
        const loss = model.trainStep(optimizer, x, y);
        last = loss.dataSync()[0]!;
        loss.dispose();
      }
    });
    expect(last).toBeLessThan(firstValue);
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  });

  it('evaluates per-label errors and round-trips through save/load bit-exactly', async () => {
    await useBackend(backend);
    const model = smallModel(2);
    const { x, y } = batch([0, 5, 1, 6, 2, 7]);
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await RoutedAutoencoder.load(tf.io.fromMemory(saved!));
    const a = model.reconstruct(x).dataSync();
    const b = loaded.reconstruct(x).dataSync();
    expect(Array.from(b)).toEqual(Array.from(a));
    const errors = await model.evaluate(x, Int32Array.from([0, 5, 1, 6, 2, 7]), { numClasses: 10 });
    expect(errors.decoder).toHaveLength(10);
    expect(errors.certificates).toHaveLength(2);
    expect(Number.isNaN(errors.decoder[3]!)).toBe(true);
    expect(errors.decoder[0]).toBeGreaterThan(0);
    tf.dispose([x, y]);
    model.dispose();
    loaded.dispose();
  });

  it('saves to a directory and loads back bit-exactly, config included', async () => {
    await useBackend(backend);
    const dir = mkdtempSync(path.join(tmpdir(), 'gr-ae-'));
    try {
      const model = new RoutedAutoencoder({
        inputDim: 12,
        hidden: [10, 6],
        latentDim: 8,
        routes: ROUTES,
        certificates: [
          [0, 2],
          [
            [2, 4],
            [6, 8],
          ],
        ],
        seed: 4,
      });
      await model.save(saveToDirectory(dir));
      const loaded = await RoutedAutoencoder.load(loadFromDirectory(dir));
      expect(loaded.getConfig()).toEqual(model.getConfig());
      const { x } = batch([0, 5, 1, 6]);
      const z = model.encode(x);
      const loadedCertificates = loaded.certify(z);
      const pairs = [
        [model.reconstruct(x), loaded.reconstruct(x)],
        ...model.certify(z).map((out, i) => [out, loadedCertificates[i]!]),
      ];
      for (const [a, b] of pairs)
        expect(Array.from(b!.dataSync())).toEqual(Array.from(a!.dataSync()));
      tf.dispose([x, z, ...pairs.flat()]);
      model.dispose();
      loaded.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses artifacts that are not a RoutedAutoencoder', async () => {
    await useBackend(backend);
    const handler = tf.io.fromMemory({ modelTopology: { class_name: 'Sequential' } });
    await expect(RoutedAutoencoder.load(handler)).rejects.toThrow(/not a RoutedAutoencoder/);
  });
});
