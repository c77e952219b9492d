// Routing exactness on multi-threaded wasm with the fast kernels (Node's experimental threads).
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { installFastKernels } from '../src/core/backend/fast-kernels.js';
import { runSplitExperiment, splitPresets } from '../src/experiments/index.js';
import { useWasmThreads, wasmThreadsCount } from '../src/node/wasm-threads.js';
import { useBackend } from './helpers/backends.js';
import { expectExactRouting } from './helpers/exactness.js';

describe('routing on wasm with 2 threads and the fast kernels', () => {
  it('gives exactly +0 where the mask is 0, under NaN and ±Infinity upstream', async () => {
    expect(useWasmThreads({ threads: 2 })).toBe(2);
    await useBackend('wasm');
    expect(wasmThreadsCount()).toBe(2);
    expect(installFastKernels()).toBe(true);
    expect(tf.getBackend()).toBe('wasm');
    expectExactRouting();
  });
});

describe('runSplitExperiment on wasm with 2 threads and the fast kernels', () => {
  it('gives identical numbers for the same seed, probes on', async () => {
    // The backend of the test above: 2 threads, fast kernels installed.
    await useBackend('wasm');
    expect(wasmThreadsCount()).toBe(2);
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
    const before = tf.memory().numTensors;
    const first = await runSplitExperiment(data, config);
    const second = await runSplitExperiment(data, config);
    expect(first.probes).toHaveLength(2);
    expect(second.losses).toEqual(first.losses);
    expect(second.decoderPerLabel).toEqual(first.decoderPerLabel);
    expect(second.certificates.map((c) => c.perLabelMae)).toEqual(
      first.certificates.map((c) => c.perLabelMae),
    );
    expect(second.probes.map((p) => p.perLabelMae)).toEqual(first.probes.map((p) => p.perLabelMae));
    const reseeded = await runSplitExperiment(data, { ...config, fit: { ...config.fit, seed: 2 } });
    expect(reseeded.losses).not.toEqual(first.losses);
    for (const result of [first, second, reseeded]) result.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
