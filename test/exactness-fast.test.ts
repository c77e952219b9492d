// Routing exactness with the fast wasm kernels that selectBackend()/selectNodeBackend() install
// (the other suites run on stock wasm).
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { fastKernelsInstalled, installFastKernels } from '../src/core/backend/fast-kernels.js';
import { runSplitExperiment, splitPresets } from '../src/experiments/index.js';
import { useBackend } from './helpers/backends.js';
import { expectExactRouting } from './helpers/exactness.js';

describe('routing on wasm with the fast kernels', () => {
  it('gives exactly +0 where the mask is 0, under NaN and ±Infinity upstream', async () => {
    await useBackend('wasm');
    expect(installFastKernels()).toBe(true);
    expect(fastKernelsInstalled()).toBe(true);
    expect(tf.getBackend()).toBe('wasm');
    expectExactRouting();
  });
});

describe('runSplitExperiment on wasm with the fast kernels', () => {
  it('gives identical numbers for the same seed, probes on', async () => {
    await useBackend('wasm');
    installFastKernels();
    const count = 40;
    const images = Float32Array.from({ length: count * 16 }, (_, i) => Math.sin(i * 0.7));
    const labels = Int32Array.from({ length: count }, (_, i) => i % 2);
    const data = {
      train: { images, labels, count, rows: 4, cols: 4 },
      test: { images, labels, count, rows: 4, cols: 4 },
    };
    const config = {
      ...splitPresets.smoke,
      model: { hidden: [8], latentDim: 4, seed: 1 },
      fit: { epochs: 2, batchSize: 8, seed: 1 },
      probe: { epochs: 1, batchSize: 8, learningRate: 1e-3 },
      partition: [[0], [1]],
    };
    const first = await runSplitExperiment(data, config);
    const second = await runSplitExperiment(data, config);
    expect(second.losses).toEqual(first.losses);
    expect(second.decoderPerLabel).toEqual(first.decoderPerLabel);
    expect(second.probes.map((p) => p.perLabelMae)).toEqual(first.probes.map((p) => p.perLabelMae));
    expect(first.probes).toHaveLength(2);
    first.model.dispose();
    second.model.dispose();
  });
});
