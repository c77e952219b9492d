// Routing exactness on multi-threaded wasm with the fast kernels (Node's experimental threads).
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { installFastKernels } from '../src/core/backend/fast-kernels.js';
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
