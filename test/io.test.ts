import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RouteGradients } from '../src/core/layers/route-gradients.js';
import { loadFromDirectory, saveToDirectory } from '../src/node/files.js';
import { TEST_BACKENDS, useBackend } from './helpers/backends.js';

/**
 * A small routed model with seeded weights: with unseeded ReLU units, every open unit was dead on
 * both test inputs in about 5 % of runs, and "it still trains" failed at random.
 */
function routedModel(seed = 11): tfl.LayersModel {
  const x = tfl.input({ shape: [3], name: 'x' });
  const mask = tfl.input({ shape: [4], name: 'mask' });
  const hidden = tfl.layers
    .dense({
      units: 4,
      activation: 'relu',
      name: 'encoder',
      kernelInitializer: tfl.initializers.glorotUniform({ seed }),
    })
    .apply(x) as tfl.SymbolicTensor;
  const routed = new RouteGradients({ name: 'route' }).apply([hidden, mask]) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({
      units: 2,
      name: 'decoder',
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }),
    })
    .apply(routed) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [x, mask], outputs: out });
}

function bits(t: tf.Tensor): number[] {
  const data = t.dataSync() as Float32Array;
  return Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length));
}

function weightBits(model: tfl.LayersModel): Map<string, number[]> {
  return new Map(model.weights.map((w) => [w.originalName, bits(w.read())]));
}

/** Every file in `dir` with its bytes, to compare a directory before and after a failed save. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(dir)
      .sort()
      .map((name) => [name, fs.readFileSync(path.join(dir, name)).toString('base64')]),
  );
}

let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'gradient-routing-io-'));
});

afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(root, { recursive: true, force: true });
});

describe.each(TEST_BACKENDS)('directory save and load on %s', (backend) => {
  beforeEach(async () => {
    await useBackend(backend);
  });

  it('round-trips a routed layers model bit for bit, and it still routes after loading', async () => {
    const dir = path.join(root, 'nested', 'model');
    const model = routedModel();
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const result = await model.save(saveToDirectory(dir));
    expect(result.modelArtifactsInfo.weightDataBytes).toBe(
      fs.statSync(path.join(dir, 'weights.bin')).size,
    );
    expect(fs.readdirSync(dir).sort()).toEqual(['model.json', 'weights.bin']);

    const loaded = await tfl.loadLayersModel(loadFromDirectory(dir));
    expect(loaded.getLayer('route')).toBeInstanceOf(RouteGradients);
    expect(weightBits(loaded)).toEqual(weightBits(model));

    const xs = tf.tensor2d([
      [1, -2, 0.5],
      [0.25, 3, -1],
    ]);
    const masks = tf.tensor2d([
      [1, 1, 0, 0],
      [1, 0, 0, 0],
    ]);
    const ys = tf.tensor2d([
      [1, 0],
      [0, 1],
    ]);
    const a = model.predict([xs, masks]) as tf.Tensor;
    const b = loaded.predict([xs, masks]) as tf.Tensor;
    expect(bits(b)).toEqual(bits(a));

    loaded.compile({ optimizer: tf.train.sgd(0.5), loss: 'meanSquaredError' });
    // With these seeds an open unit is alive on an input it may learn from, so the model trains.
    const [kernel, bias] = loaded.getLayer('encoder').getWeights() as [tf.Tensor, tf.Tensor];
    const hiddenOut = tf.tidy(() => tf.mul(tf.relu(tf.add(tf.matMul(xs, kernel), bias)), masks));
    expect(Array.from(hiddenOut.dataSync()).some((v) => v > 0)).toBe(true);
    hiddenOut.dispose();
    const kernelBefore = bits(loaded.getLayer('encoder').getWeights()[0]!);
    await loaded.fit([xs, masks], ys, { epochs: 2, shuffle: false, verbose: 0 });
    const kernelAfter = bits(loaded.getLayer('encoder').getWeights()[0]!);
    // Kernel [3, 4], row-major: columns 2 and 3 feed fully blocked units.
    const blocked = (values: number[]): number[] => values.filter((_, i) => i % 4 >= 2);
    expect(blocked(kernelAfter)).toEqual(blocked(kernelBefore));
    expect(kernelAfter).not.toEqual(kernelBefore);
    tf.dispose([xs, masks, ys, a, b]);
    model.dispose();
    loaded.dispose();
  });

  it('writes the standard tfjs format that tfjs-node reads, optimizer state included', async () => {
    const model = routedModel();
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const xs = tf.ones([2, 3]);
    const masks = tf.ones([2, 4]);
    const ys = tf.zeros([2, 2]);
    await model.fit([xs, masks], ys, { epochs: 1, shuffle: false, verbose: 0 });
    await model.save(saveToDirectory(root), { includeOptimizer: true });
    const json = JSON.parse(fs.readFileSync(path.join(root, 'model.json'), 'utf8'));
    expect(Object.keys(json).sort()).toEqual([
      'convertedBy',
      'format',
      'generatedBy',
      'modelTopology',
      'trainingConfig',
      'weightsManifest',
    ]);
    expect(json.format).toBe('layers-model');
    expect(json.generatedBy).toMatch(/^TensorFlow\.js tfjs-layers v4\./);
    expect(json.modelTopology.class_name).toBe('Model');
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    const specs = json.weightsManifest[0].weights as tf.io.WeightsManifestEntry[];
    const modelSpecs = specs.filter((spec) => spec.group !== 'optimizer');
    expect(modelSpecs.map((spec) => spec.name)).toEqual([
      'encoder/kernel',
      'encoder/bias',
      'decoder/kernel',
      'decoder/bias',
    ]);
    expect(specs.length).toBeGreaterThan(modelSpecs.length);
    // The weights file starts with the model's float32 values back to back.
    const bytes = fs.readFileSync(path.join(root, 'weights.bin'));
    const modelValues = model.weights.flatMap((w) => Array.from(w.read().dataSync()));
    const floats = new Float32Array(bytes.buffer, bytes.byteOffset, modelValues.length);
    expect(Array.from(floats)).toEqual(modelValues);

    const loaded = await tfl.loadLayersModel(loadFromDirectory(root));
    expect(loaded.optimizer).toBeInstanceOf(tf.AdamOptimizer);
    expect(weightBits(loaded)).toEqual(weightBits(model));
    tf.dispose([xs, masks, ys]);
    model.dispose();
    loaded.dispose();
  });

  it('loads weights split over several files, as tfjs-converter shards them', async () => {
    const model = routedModel();
    await model.save(saveToDirectory(root));
    const modelPath = path.join(root, 'model.json');
    const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
    const bytes = fs.readFileSync(path.join(root, 'weights.bin'));
    const cut = 4 * 12; // after encoder/kernel [3, 4]
    fs.writeFileSync(path.join(root, 'group1-shard1of2.bin'), bytes.subarray(0, cut));
    fs.writeFileSync(path.join(root, 'group1-shard2of2.bin'), bytes.subarray(cut));
    fs.rmSync(path.join(root, 'weights.bin'));
    json.weightsManifest[0].paths = ['group1-shard1of2.bin', 'group1-shard2of2.bin'];
    fs.writeFileSync(modelPath, JSON.stringify(json));
    const loaded = await tfl.loadLayersModel(loadFromDirectory(root));
    expect(weightBits(loaded)).toEqual(weightBits(model));
    model.dispose();
    loaded.dispose();
  });

  it('replaces an earlier save in the same directory', async () => {
    const first = routedModel(1);
    const second = routedModel(2);
    await first.save(saveToDirectory(root));
    await second.save(saveToDirectory(root));
    const loaded = await tfl.loadLayersModel(loadFromDirectory(root));
    expect(weightBits(loaded)).toEqual(weightBits(second));
    expect(weightBits(loaded)).not.toEqual(weightBits(first));
    expect(fs.readdirSync(root).sort()).toEqual(['model.json', 'weights.bin']);
    for (const m of [first, second, loaded]) m.dispose();
  });
});

describe('directory save failures', () => {
  beforeEach(async () => {
    await useBackend('cpu');
  });

  it('leaves the previous files intact and no temporary files when a write fails', async () => {
    const model = routedModel();
    await model.save(saveToDirectory(root));
    const before = snapshot(root);
    const other = routedModel();
    const realOpen = fs.promises.open;
    let calls = 0;
    // The second file opened is model.json's temporary file: fail there, after weights.bin's
    // temporary file has been written in full.
    vi.spyOn(fs.promises, 'open').mockImplementation(async (...args) => {
      calls += 1;
      if (calls === 2) throw Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC' });
      return realOpen(...args);
    });
    await expect(other.save(saveToDirectory(root))).rejects.toThrowError(
      /^gradient-routing: saving the model to .* failed \(Error: ENOSPC: no space left\); the directory keeps its previous files/,
    );
    expect(calls).toBe(2);
    expect(snapshot(root)).toEqual(before);
    model.dispose();
    other.dispose();
  });

  it('changes nothing when the model cannot be serialised', async () => {
    const model = routedModel();
    await model.save(saveToDirectory(root));
    const before = snapshot(root);
    const handler = saveToDirectory(root);
    await expect(
      handler.save!({
        modelTopology: { bad: BigInt(1) },
        weightSpecs: [],
        weightData: new ArrayBuffer(0),
      }),
    ).rejects.toThrowError(/BigInt/);
    expect(snapshot(root)).toEqual(before);
    model.dispose();
  });

  it('refuses to save over a file or over a model.json that is a directory', async () => {
    const model = routedModel();
    const file = path.join(root, 'file');
    fs.writeFileSync(file, 'x');
    await expect(model.save(saveToDirectory(file))).rejects.toThrowError(
      /^gradient-routing: cannot save to .*file: it \(or a parent\) exists as a file/,
    );
    await expect(model.save(saveToDirectory(path.join(file, 'below')))).rejects.toThrowError(
      /exists as a file/,
    );
    const dir = path.join(root, 'dir');
    fs.mkdirSync(path.join(dir, 'model.json'), { recursive: true });
    await expect(model.save(saveToDirectory(dir))).rejects.toThrowError(
      /^gradient-routing: cannot save to .*: model\.json there is not a regular file/,
    );
    expect(fs.readdirSync(dir)).toEqual(['model.json']);
    model.dispose();
  });

  it('rejects binary topologies', async () => {
    await expect(
      saveToDirectory(root).save!({ modelTopology: new ArrayBuffer(4) }),
    ).rejects.toThrowError(/^gradient-routing: saveToDirectory saves JSON model topologies/);
  });
});

describe('directory load failures', () => {
  beforeEach(async () => {
    await useBackend('cpu');
  });

  async function saved(): Promise<void> {
    const model = routedModel();
    await model.save(saveToDirectory(root));
    model.dispose();
  }

  it('names a missing directory, a file given as directory, and a missing model.json', async () => {
    await expect(loadFromDirectory(path.join(root, 'nope')).load!()).rejects.toThrowError(
      /^gradient-routing: model directory .*nope does not exist\. Check the path/,
    );
    fs.writeFileSync(path.join(root, 'plain'), 'x');
    await expect(loadFromDirectory(path.join(root, 'plain')).load!()).rejects.toThrowError(
      /is a file, not a directory\. Pass the directory that holds model\.json/,
    );
    await expect(loadFromDirectory(root).load!()).rejects.toThrowError(
      /^gradient-routing: .* has no model\.json\. Pass the directory a model was saved to/,
    );
  });

  it('names a missing weights file', async () => {
    await saved();
    fs.rmSync(path.join(root, 'weights.bin'));
    await expect(tfl.loadLayersModel(loadFromDirectory(root))).rejects.toThrowError(
      /^gradient-routing: weights file .*weights\.bin, listed in model\.json, is missing/,
    );
  });

  it('rejects weights whose size does not match the manifest', async () => {
    await saved();
    const weights = path.join(root, 'weights.bin');
    const bytes = fs.readFileSync(weights);
    fs.writeFileSync(weights, bytes.subarray(0, bytes.length - 4));
    await expect(tfl.loadLayersModel(loadFromDirectory(root))).rejects.toThrowError(
      `hold ${bytes.length - 4} bytes but model.json describes ${bytes.length}`,
    );
  });

  it('rejects malformed model.json files and weights outside the directory', async () => {
    await saved();
    const modelPath = path.join(root, 'model.json');
    const good = fs.readFileSync(modelPath, 'utf8');
    fs.writeFileSync(modelPath, good.slice(0, 20));
    await expect(loadFromDirectory(root).load!()).rejects.toThrowError(
      /^gradient-routing: .*model\.json is not valid JSON/,
    );
    fs.writeFileSync(modelPath, JSON.stringify({ hello: 1 }));
    await expect(loadFromDirectory(root).load!()).rejects.toThrowError(/has no modelTopology/);
    const json = JSON.parse(good);
    fs.writeFileSync(modelPath, JSON.stringify({ ...json, weightsManifest: [{ paths: [1] }] }));
    await expect(loadFromDirectory(root).load!()).rejects.toThrowError(
      /has a malformed weightsManifest/,
    );
    json.weightsManifest[0].paths = ['../outside.bin'];
    fs.writeFileSync(modelPath, JSON.stringify(json));
    await expect(loadFromDirectory(root).load!()).rejects.toThrowError(
      /lists the weights file '\.\.\/outside\.bin', which is outside/,
    );
  });
});
