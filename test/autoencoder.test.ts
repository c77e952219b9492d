import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { labelRule } from '../src/core/masks/table.js';
import { Autoencoder } from '../src/core/models/autoencoder.js';
import { loadAutoencoder, saveAutoencoder } from '../src/core/models/io.js';
import { splitObjective } from '../src/core/models/split-objective.js';
import { torchAdam } from '../src/core/optim/adam.js';
import { perLabelErrors } from '../src/core/probing/evaluate.js';
import { forwardContext } from '../src/core/routing/points.js';
import { fit as fitModel, trainStep } from '../src/core/training/fit.js';
import { loadFromDirectory, saveToDirectory } from '../src/node/files.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const ROUTES = [
  { labels: [0, 1, 2, 3, 4], region: [0, 4] as const },
  { labels: [5, 6, 7, 8, 9], region: [4, 8] as const },
];
const NO_PENALTIES = { l1: 0, correlation: 0, certificates: 0 };

function smallModel(seed = 0, certificates = true): Autoencoder {
  return new Autoencoder({
    inputDim: 12,
    hidden: [10, 6],
    latentDim: 8,
    certificates: certificates ? ROUTES.map((route) => route.region) : [],
    seed,
  });
}

function batch(labels: number[]): { x: tf.Tensor2D; y: tf.Tensor1D } {
  return {
    x: tf.randomUniform([labels.length, 12], -1, 1, 'float32', 7) as tf.Tensor2D,
    y: tf.tensor1d(labels, 'int32'),
  };
}

/** Every weight's values, to compare before and after. */
function bits(variables: readonly tf.Variable[]): number[][] {
  return variables.map((v) => Array.from(v.dataSync()));
}

/** The latent layer's kernel [6, 8]: column j is what feeds latent dim j. */
function latentKernel(model: Autoencoder): tf.Variable {
  return model.trainableVariables.find((v) => v.shape[0] === 6 && v.shape[1] === 8)!;
}

describe('Autoencoder structure', () => {
  it('names its routing points in forward order', async () => {
    await useBackend('cpu');
    const model = smallModel(0, false);
    expect(model.routingPoints).toEqual([
      'encoder.0',
      'encoder.1',
      'latent',
      'decoder.0',
      'decoder.1',
    ]);
    model.dispose();
    const shallow = new Autoencoder({ inputDim: 4, hidden: [], latentDim: 2 });
    expect(shallow.routingPoints).toEqual(['latent']);
    shallow.dispose();
  });

  it('rejects certificate slices outside the latent', () => {
    expect(
      () => new Autoencoder({ inputDim: 4, hidden: [3], latentDim: 2, certificates: [[1, 3]] }),
    ).toThrow(/region \[1, 3\) is out of bounds or empty.*<= 2/);
  });
});

describe.each(TEST_BACKENDS)('Autoencoder on %s', (backend) => {
  it('the split objective sends no gradient from digits 0-4 into latent dims 4-8, and vice versa', async () => {
    await useBackend(backend);
    const model = smallModel();
    const objective = splitObjective({ routes: ROUTES, weights: NO_PENALTIES }, 8);
    const variable = latentKernel(model);
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
      const { value, grads } = tf.variableGrads(
        () => objective.loss(model, x, y).total,
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
      tf.dispose([x, y, value, grads[variable.name]!]);
    }
    objective.dispose();
    model.dispose();
  });

  it('routes at encoder.0 through a plan: blocked hidden units get exactly +0 gradient', async () => {
    await useBackend(backend);
    const model = smallModel(3, false);
    // Digits 0-4 may update hidden units 0-4 of the first encoder layer, digits 5-9 units 5-9.
    const rule = labelRule(10, [
      { labels: [0, 1, 2, 3, 4], region: [0, 5] },
      { labels: [5, 6, 7, 8, 9], region: [5, 10] },
    ]);
    // The first encoder layer's kernel [12, 10]: column j feeds hidden unit j.
    const kernel = model.trainableVariables.find((v) => v.shape[0] === 12 && v.shape[1] === 10)!;
    const { x, y } = batch([0, 3, 2, 1]);
    await expectNoLeak(() => {
      const { value, grads } = tf.variableGrads(() => {
        const context = forwardContext(model, {
          plan: { 'encoder.0': rule },
          batch: { labels: y },
        });
        const out = model.reconstruct(x, context);
        return tf.mean(tf.abs(tf.sub(out, x))) as tf.Scalar;
      }, [kernel]);
      const g = grads[kernel.name]!.arraySync() as number[][];
      let open = 0;
      for (const row of g) {
        for (let j = 5; j < 10; j++) expect(Object.is(row[j], 0)).toBe(true);
        for (let j = 0; j < 5; j++) if (row[j] !== 0) open += 1;
      }
      expect(open).toBeGreaterThan(5);
      // The plan changes nothing in the forward pass.
      const plain = model.reconstruct(x);
      const routed = tf.tidy(() =>
        model.reconstruct(
          x,
          forwardContext(model, { plan: { 'encoder.0': rule }, batch: { labels: y } }),
        ),
      );
      expect(Array.from(routed.dataSync())).toEqual(Array.from(plain.dataSync()));
      tf.dispose([value, grads[kernel.name]!, plain, routed]);
    });
    tf.dispose([x, y]);
    rule.dispose();
    model.dispose();
  });

  it('trains without leaking tensors and lowers the loss', async () => {
    await useBackend(backend);
    const model = smallModel(1);
    const objective = splitObjective({ routes: ROUTES }, 8);
    const optimizer = torchAdam({ learningRate: 1e-2, weightDecay: 5e-5 });
    const { x, y } = batch([0, 5, 1, 6, 2, 7, 3, 8]);
    const step = () =>
      trainStep(optimizer, () => objective.loss(model, x, y).total, model.trainableVariables);
    const first = step();
    const firstValue = first.dataSync()[0]!;
    first.dispose();
    let last = Number.NaN;
    await expectNoLeak(() => {
      for (let i = 0; i < 30; i++) {
        const loss = step();
        last = loss.dataSync()[0]!;
        loss.dispose();
      }
    });
    expect(last).toBeLessThan(firstValue);
    tf.dispose([x, y]);
    optimizer.dispose();
    objective.dispose();
    model.dispose();
  });

  it('evaluates per-label errors and round-trips through save/load bit-exactly', async () => {
    await useBackend(backend);
    const model = smallModel(2);
    const { x, y } = batch([0, 5, 1, 6, 2, 7]);
    let saved: tf.io.ModelArtifacts | undefined;
    await saveAutoencoder(
      model,
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await loadAutoencoder(tf.io.fromMemory(saved!));
    const a = model.reconstruct(x);
    const b = loaded.reconstruct(x);
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    await expectNoLeak(async () => {
      const evaluated: [number, number][] = [];
      const errors = await perLabelErrors(model, x, Int32Array.from([0, 5, 1, 6, 2, 7]), {
        numClasses: 10,
        batchSize: 4,
        onProgress: (done, total) => evaluated.push([done, total]),
      });
      // One report per batch of 4: after 4 examples, then after all 6.
      expect(evaluated).toEqual([
        [4, 6],
        [6, 6],
      ]);
      expect(errors.decoder).toHaveLength(10);
      expect(errors.certificates).toHaveLength(2);
      expect(Number.isNaN(errors.decoder[3]!)).toBe(true);
      expect(errors.decoder[0]).toBeGreaterThan(0);
      // Label 0's entry is its one example's MAE.
      const first = tf.tidy(() =>
        tf.mean(
          tf.abs(
            tf.sub(model.reconstruct(tf.slice(x, [0, 0], [1, -1])), tf.slice(x, [0, 0], [1, -1])),
          ),
        ),
      );
      expect(errors.decoder[0]).toBeCloseTo(first.dataSync()[0]!, 6);
      first.dispose();
    });
    await expect(perLabelErrors(model, x, [0, 1])).rejects.toThrow(
      /evaluation got 6 examples but 2 labels/,
    );
    tf.dispose([x, y, a, b]);
    model.dispose();
    loaded.dispose();
  });

  it('saves to a directory and loads back bit-exactly, config included', async () => {
    await useBackend(backend);
    const dir = mkdtempSync(path.join(tmpdir(), 'gr-ae-'));
    try {
      const model = new Autoencoder({
        inputDim: 12,
        hidden: [10, 6],
        latentDim: 8,
        certificates: [
          [0, 2],
          [
            [2, 4],
            [6, 8],
          ],
        ],
        seed: 4,
      });
      await saveAutoencoder(model, saveToDirectory(dir));
      const loaded = await loadAutoencoder(loadFromDirectory(dir));
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

  it('tf.loadLayersModel on a saved Autoencoder says to use loadAutoencoder', async () => {
    await useBackend(backend);
    const dir = mkdtempSync(path.join(tmpdir(), 'gr-ae-'));
    try {
      const model = new Autoencoder({ inputDim: 4, hidden: [3], latentDim: 2, seed: 1 });
      await saveAutoencoder(model, saveToDirectory(dir));
      const before = tf.memory().numTensors;
      // Without the registered class tfjs-layers says only `Improper config format`.
      await expect(tfl.loadLayersModel(loadFromDirectory(dir))).rejects.toMatchObject({
        name: 'GradientRoutingError',
        code: 'invalid-data',
        message: expect.stringMatching(
          /hold a gradient-routing Autoencoder \(saved by saveAutoencoder\), not a tfjs-layers model; load them with loadAutoencoder\(handler\)/,
        ),
      });
      expect(tf.memory().numTensors).toBe(before);
      // The same folder still loads as an Autoencoder.
      const loaded = await loadAutoencoder(loadFromDirectory(dir));
      expect(loaded.getConfig()).toEqual(model.getConfig());
      model.dispose();
      loaded.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads a RoutedAutoencoder saved by 0.1.0, certificates on its routes', async () => {
    await useBackend(backend);
    // Written by 0.1.0's RoutedAutoencoder.save(saveToDirectory(dir)), with the outputs it gave.
    const fixture = path.join(import.meta.dirname, 'fixtures', 'autoencoder-0.1.0');
    const expected = JSON.parse(
      readFileSync(
        path.join(import.meta.dirname, 'fixtures', 'autoencoder-0.1.0-expected.json'),
        'utf8',
      ),
    ) as { reconstruction: number[]; certificates: number[][] };
    const model = await loadAutoencoder(loadFromDirectory(fixture));
    expect(model.getConfig()).toEqual({
      inputDim: 6,
      hidden: [5],
      latentDim: 4,
      certificates: [[[0, 2]], [[2, 4]]],
      seed: 3,
    });
    const x = tf.tensor2d([[0.1, -0.2, 0.3, -0.4, 0.5, -0.6]]);
    const out = model.reconstruct(x);
    const z = model.encode(x);
    const certificates = model.certify(z);
    const close = (actual: ArrayLike<number>, want: number[]): void => {
      want.forEach((value, i) => {
        expect(actual[i]).toBeCloseTo(value, 5);
      });
    };
    close(out.dataSync(), expected.reconstruction);
    expect(certificates).toHaveLength(2);
    certificates.forEach((c, i) => {
      close(c.dataSync(), expected.certificates[i]!);
    });
    tf.dispose([x, out, z, ...certificates]);
    model.dispose();
  });

  it('refuses artifacts that are not an Autoencoder, or have no weights', async () => {
    await useBackend(backend);
    const handler = tf.io.fromMemory({ modelTopology: { class_name: 'Sequential' } });
    await expect(loadAutoencoder(handler)).rejects.toThrow(
      /not a gradient-routing Autoencoder \(format 'undefined'\); load a tfjs-layers model with tf\.loadLayersModel/,
    );
    const noWeights = tf.io.fromMemory({
      modelTopology: {
        format: 'gradient-routing/Autoencoder',
        config: { inputDim: 2, hidden: [], latentDim: 1 },
      },
    });
    await expect(loadAutoencoder(noWeights)).rejects.toThrow(/has no weights; save it again/);
  });
});

describe('fit', () => {
  it('trains an autoencoder end to end with a routing plan and leaks nothing', async () => {
    await useBackend('cpu');
    const model = smallModel(5);
    const objective = splitObjective({ routes: ROUTES }, 8);
    const { x, y } = batch([0, 5, 1, 6, 2, 7, 3, 8, 4, 9]);
    const progress: number[] = [];
    await expectNoLeak(async () => {
      const optimizer = torchAdam({ learningRate: 1e-2 });
      const result = await fitModel(
        (b) => objective.loss(model, b.x as tf.Tensor2D, b.labels as tf.Tensor1D).total,
        model.trainableVariables,
        optimizer,
        { x, labels: y },
        { epochs: 3, batchSize: 4, lossEvery: 2, onProgress: (p) => progress.push(p.totalSteps) },
      );
      // 10 examples in batches of 4: 4, 4, 2 → 3 steps per epoch.
      expect(result.steps).toBe(9);
      expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      // Read every 2 steps and at each epoch's end.
      expect(result.losses.map((l) => l.step)).toEqual([2, 3, 4, 6, 8, 9]);
      expect(result.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
      optimizer.dispose();
    });
    tf.dispose([x, y]);
    objective.dispose();
    model.dispose();
  });

  it('lets the event loop run between loss reads (a page can repaint and take input)', async () => {
    await useBackend('cpu');
    const v = tf.variable(tf.ones([2]));
    const x = tf.ones([6, 2]);
    const labels = tf.zeros([6], 'int32');
    const sgd = tf.train.sgd(0.1);
    let otherTaskRan = false;
    const seenAtStep: Record<number, boolean> = {};
    await fitModel(
      (b) => tf.sum(tf.mul(b.x, v)),
      [v],
      sgd,
      { x, labels },
      {
        epochs: 1,
        batchSize: 2,
        lossEvery: 1,
        onProgress: (p) => {
          // On cpu every read resolves at once: only fit's own yield lets this task run.
          if (p.totalSteps === 1) setImmediate(() => (otherTaskRan = true));
          seenAtStep[p.totalSteps] = otherTaskRan;
        },
      },
    );
    expect(seenAtStep).toEqual({ 1: false, 2: true, 3: true });
    tf.dispose([v, x, labels]);
    sgd.dispose();
  });

  it('stops with a diverged error when the loss explodes or becomes NaN', async () => {
    await useBackend('cpu');
    const v = tf.variable(tf.ones([2]));
    const x = tf.ones([8, 2]);
    const labels = tf.zeros([8], 'int32');
    // Plain gradient descent with a step far too large: every step multiplies v by -19.
    const sgd = tf.train.sgd(10);
    const exploding = fitModel(
      () => tf.sum(tf.square(v)),
      [v],
      sgd,
      { x, labels },
      {
        epochs: 5,
        batchSize: 2,
        lossEvery: 1,
      },
    );
    await expect(exploding).rejects.toMatchObject({
      name: 'GradientRoutingError',
      code: 'diverged',
      message: expect.stringMatching(
        /training diverged at step 3: the loss is .* \(the first was 2\); lower the learning rate/,
      ),
    });
    const nanData = tf.fill([8, 2], Number.NaN);
    const before = tf.memory().numTensors;
    const nan = fitModel(
      (b) => tf.sum(tf.mul(b.x, v)),
      [v],
      sgd,
      { x: nanData, labels },
      {
        epochs: 1,
        batchSize: 2,
        lossEvery: 1,
      },
    );
    await expect(nan).rejects.toMatchObject({ code: 'diverged', value: Number.NaN });
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([v, x, labels, nanData]);
    sgd.dispose();
  });

  it('stops exactly past divergenceFactor times the first loss, not at it', async () => {
    await useBackend('cpu');
    const v = tf.variable(tf.zeros([1]));
    const x = tf.ones([8, 1]);
    const labels = tf.zeros([8], 'int32');
    const sgd = tf.train.sgd(0.1);
    /** Fits with losses read every step from `script`; returns the losses recorded or the error. */
    const runScript = async (script: number[], divergenceFactor?: number) => {
      let call = 0;
      return fitModel(
        // The scripted value, plus v · 0 so that the loss depends on the variable it trains.
        () => tf.add(tf.scalar(script[call++]!), tf.mul(tf.sum(v), 0)) as tf.Scalar,
        [v],
        sgd,
        { x, labels },
        { epochs: 1, batchSize: 2, lossEvery: 1, ...(divergenceFactor && { divergenceFactor }) },
      ).then(
        (result) => result.losses.map((p) => p.loss),
        (error: unknown) => error,
      );
    };
    const before = tf.memory().numTensors;
    // The default factor is 1000: 1000 × the first loss is still training, just above is not.
    expect(await runScript([2, 2000, -2000, 1])).toEqual([2, 2000, -2000, 1]);
    expect(await runScript([2, 2000.5, 1, 1])).toMatchObject({
      code: 'diverged',
      value: 2000.5,
      message: expect.stringMatching(
        /training diverged at step 2: the loss is 2000\.5 \(the first was 2\)/,
      ),
    });
    expect(await runScript([2, -2000.5, 1, 1])).toMatchObject({ code: 'diverged' });
    expect(await runScript([2, 20, 1, 1], 10)).toEqual([2, 20, 1, 1]);
    expect(await runScript([2, 20.5, 1, 1], 10)).toMatchObject({ code: 'diverged', value: 20.5 });
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(await runScript([2, 2, bad, 1])).toMatchObject({ code: 'diverged' });
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([v, x, labels]);
    sgd.dispose();
  });

  it('checks the labels once, before the first step, with the rule it is given', async () => {
    await useBackend('cpu');
    const model = smallModel(6, false);
    const objective = splitObjective({ routes: ROUTES }, 8);
    const optimizer = torchAdam({ learningRate: 1e-2 });
    const { x } = batch([0, 1, 2, 3]);
    const labels = tf.tensor1d([0, 5, 12, 3], 'int32');
    const before = bits(model.trainableVariables);
    let steps = 0;
    await expect(
      fitModel(
        (b) => objective.loss(model, b.x as tf.Tensor2D, b.labels as tf.Tensor1D).total,
        model.trainableVariables,
        optimizer,
        { x, labels },
        {
          epochs: 1,
          batchSize: 2,
          checkLabels: (l) => objective.rule.checkLabels(l),
          onProgress: () => {
            steps += 1;
          },
        },
      ),
    ).rejects.toMatchObject({
      code: 'invalid-label',
      message: expect.stringMatching(
        /example 2 has label 12, but labels must be integers in \[0, 10\)/,
      ),
    });
    // Nothing trained.
    expect(steps).toBe(0);
    expect(bits(model.trainableVariables)).toEqual(before);
    tf.dispose([x, labels]);
    optimizer.dispose();
    objective.dispose();
    model.dispose();
  });

  it('rejects bad options and mismatched data before training', async () => {
    await useBackend('cpu');
    const v = tf.variable(tf.ones([2]));
    const x = tf.ones([3, 2]);
    const labels = tf.zeros([2], 'int32');
    const sgd = tf.train.sgd(0.1);
    const loss = () => tf.sum(v) as tf.Scalar;
    await expect(
      fitModel(loss, [v], sgd, { x, labels }, { epochs: 1, batchSize: 2 }),
    ).rejects.toThrow(/got 3 training examples but labels of shape \[2\]/);
    const three = tf.zeros([3], 'int32');
    await expect(
      fitModel(loss, [v], sgd, { x, labels: three }, { epochs: 0, batchSize: 2 }),
    ).rejects.toThrow(/epochs must be an integer >= 1, got 0/);
    const one = tf.ones([1, 2]);
    const oneLabel = tf.zeros([1], 'int32');
    await expect(
      fitModel(loss, [v], sgd, { x: one, labels: oneLabel }, { epochs: 1, batchSize: 4 }),
    ).rejects.toThrow(/1 training examples make no batch of at least 2/);
    tf.dispose([v, x, labels, three, one, oneLabel]);
    sgd.dispose();
  });
});
