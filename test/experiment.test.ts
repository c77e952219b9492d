import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  partitionRegions,
  runSplitExperiment,
  type SplitExperimentConfig,
  splitPresets,
  summarizeSplitExperiment,
} from '../src/experiments/index.js';
import type { ImageDataset } from '../src/index.js';
import { useBackend } from './helpers/backends.js';

const run = promisify(execFile);
const tfjsNodeInstalled = (() => {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
})();
const scratch = mkdtempSync(path.join(tmpdir(), 'gr-experiment-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * 6x6 images of three classes: class c lights up column block c. Small enough to train in
 * well under a second, and structured so that routing has something to split.
 */
function syntheticDataset(count: number, seed: number): ImageDataset {
  const images = new Float32Array(count * 36);
  const labels = new Int32Array(count);
  let state = seed;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  for (let i = 0; i < count; i++) {
    const label = i % 3;
    labels[i] = label;
    for (let p = 0; p < 36; p++) {
      const column = p % 6;
      const lit = Math.floor(column / 2) === label;
      images[i * 36 + p] = (lit ? 0.8 : -0.8) + (random() - 0.5) * 0.2;
    }
  }
  return { images, labels, count, rows: 6, cols: 6 };
}

const tinyConfig: SplitExperimentConfig = {
  ...splitPresets.smoke,
  model: { hidden: [24, 12], latentDim: 6, seed: 0 },
  optimizer: { ...splitPresets.smoke.optimizer, learningRate: 3e-3 },
  fit: { epochs: 3, batchSize: 16, seed: 0 },
  probe: { ...splitPresets.smoke.probe, epochs: 1 },
  partition: [[0], [1], [2]],
};

describe('runSplitExperiment', () => {
  it('works for any image size and label partition, and leaks nothing', async () => {
    await useBackend('cpu');
    const data = { train: syntheticDataset(96, 1), test: syntheticDataset(30, 2) };
    const before = tf.memory().numTensors;
    const result = await runSplitExperiment(data, tinyConfig);
    expect(result.certificates.map((c) => c.region)).toEqual([
      [0, 2],
      [2, 4],
      [4, 6],
    ]);
    expect(result.decoderPerLabel).toHaveLength(3);
    expect(result.probes).toHaveLength(3);
    for (const slice of [...result.certificates, ...result.probes]) {
      expect(slice.perLabelMae).toHaveLength(3);
      expect(Number.isFinite(slice.ratio)).toBe(true);
    }
    expect(result.steps).toBe(3 * Math.ceil(96 / 16));
    const summary = summarizeSplitExperiment(result, {
      preset: 'test',
      backend: 'cpu',
      wallSeconds: 1,
    });
    expect(Object.keys(summary.splitRatio)).toEqual(['group0', 'group1', 'group2']);
    result.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives the same numbers for the same seed on the same backend', async () => {
    await useBackend('wasm');
    const data = { train: syntheticDataset(64, 3), test: syntheticDataset(30, 4) };
    const config = { ...tinyConfig, probe: { ...tinyConfig.probe, epochs: 0 } };
    const first = await runSplitExperiment(data, config);
    const second = await runSplitExperiment(data, config);
    expect(second.decoderPerLabel).toEqual(first.decoderPerLabel);
    expect(second.certificates.map((c) => c.perLabelMae)).toEqual(
      first.certificates.map((c) => c.perLabelMae),
    );
    expect(second.losses).toEqual(first.losses);
    const third = await runSplitExperiment(data, { ...config, fit: { ...config.fit, seed: 5 } });
    expect(third.losses).not.toEqual(first.losses);
    for (const result of [first, second, third]) result.model.dispose();
  });

  it('refuses a latent that the groups cannot split equally', () => {
    expect(() => partitionRegions([[0], [1], [2]], 32)).toThrow(
      /cannot be split into 3 equal blocks; choose a latent size divisible/,
    );
  });
});

describe('examples/mnist-split.ts', () => {
  const example = (...args: string[]) =>
    run('npx', ['tsx', 'examples/mnist-split.ts', ...args], { cwd: process.cwd() });

  it('runs the smoke preset end to end and writes the summary and figures', async () => {
    const out = path.join(scratch, 'smoke');
    const { stdout } = await example('--preset', 'smoke', '--backend', 'wasm', '--out', out);
    expect(stdout).toMatch(/\| digit \| decoder/);
    expect(stdout).toMatch(/split ratio of low \(dims 0-15\): \d+\.\d\d/);
    expect(stdout).toMatch(/backend wasm/);
    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ preset: 'smoke', backend: 'wasm', routed: true });
    expect(summary.wallSeconds).toBeGreaterThan(0);
    expect(summary.decoderMae).toBeGreaterThan(0);
    for (const key of ['low', 'high']) {
      expect(Number.isFinite(summary.splitRatio[key])).toBe(true);
      expect(summary.perDigit[key]).toHaveLength(10);
    }
    expect(summary.perDigit.decoder).toHaveLength(10);
    for (const png of ['reconstructions.png', 'per-digit-mae.png', 'loss.png']) {
      const bytes = readFileSync(path.join(out, png));
      expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
    }
  });

  it('runs the control without routing', async () => {
    const out = path.join(scratch, 'control');
    await example('--preset', 'smoke', '--no-route', '--epochs', '1', '--out', out);
    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8'));
    expect(summary.routed).toBe(false);
  });

  it('rejects bad flags with a message and exit code 2', async () => {
    await expect(example('--epochs', 'zero')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--epochs needs a positive integer, got 'zero'/),
    });
    await expect(example('--backend', 'gpu', '--preset', 'smoke')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/unknown backend 'gpu'/),
    });
  });

  it.skipIf(tfjsNodeInstalled)(
    'says what to install when a forced backend is missing',
    async () => {
      await expect(example('--backend', 'tensorflow', '--preset', 'smoke')).rejects.toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/backend 'tensorflow' was requested but it is not installed/),
      });
    },
  );
});
