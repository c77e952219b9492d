// Routing exactness with the fast wasm kernels that selectBackend()/selectNodeBackend() install
// (the other suites run on stock wasm).
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { fastKernelsInstalled, installFastKernels } from '../src/core/backend/fast-kernels.js';
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
