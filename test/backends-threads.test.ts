/**
 * Multi-threaded wasm in Node: the default of selectNodeBackend, its fallback to one thread, and
 * the routing conformance checks on 2 threads with the fast kernels, against cpu.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastKernelsInstalled } from '../src/core/backend/fast-kernels.js';
import { selectNodeBackend } from '../src/node/backend.js';
import {
  configureWasmThreads,
  defaultWasmThreads,
  type ThreadedWasmSeams,
  wasmThreadsCount,
} from '../src/node/wasm-threads.js';
import { routingConformanceTests } from './helpers/conformance.js';

/** Starts wasm with 2 threads through `seams` and returns the notices and the threads it got. */
async function startWith(
  seams: ThreadedWasmSeams,
): Promise<{ notices: string[]; threads: number | null }> {
  const notices: string[] = [];
  await tf.setBackend('cpu');
  configureWasmThreads({ threads: 2, seams, onNotice: (message) => notices.push(message) });
  expect(await tf.setBackend('wasm')).toBe(true);
  // The backend computes, whichever build started.
  const sum = tf.tidy(() => tf.sum(tf.tensor1d([1, 2, 3])));
  expect((await sum.data())[0]).toBe(6);
  sum.dispose();
  return { notices, threads: wasmThreadsCount() };
}

describe('wasm threads in Node', () => {
  // First, while nothing has configured threads in this process.
  it('selectNodeBackend starts wasm on every core when nothing says otherwise', async () => {
    const notices: string[] = [];
    expect(await selectNodeBackend({ onNotice: (m) => notices.push(m) })).toBe('wasm');
    expect(wasmThreadsCount()).toBe(defaultWasmThreads());
    expect(notices).toEqual([]);
  });

  it('defaults to every logical core, at most 8', async () => {
    expect(defaultWasmThreads()).toBe(
      Math.min(8, Math.max(1, (await import('node:os')).availableParallelism())),
    );
  });

  it('falls back to one thread with one notice for an unknown tfjs-backend-wasm version', async () => {
    const { notices, threads } = await startWith({ wasmVersion: () => '5.0.0' });
    expect(threads).toBe(1);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/tfjs-backend-wasm 5\.0\.0 is not a version .* using 1 thread/);
  });

  it('falls back to one thread without SharedArrayBuffer', async () => {
    const { notices, threads } = await startWith({ hasSharedMemory: () => false });
    expect(threads).toBe(1);
    expect(notices).toEqual([
      'gradient-routing: multi-threaded wasm could not start (this JavaScript runtime has no SharedArrayBuffer); using 1 thread.',
    ]);
  });

  it('falls back to one thread when a worker fails to load, without crashing the process', async () => {
    const { notices, threads } = await startWith({
      workerScript: () => 'throw new Error("worker failed on purpose");',
    });
    expect(threads).toBe(1);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/could not start \(worker failed on purpose\); using 1 thread/);
  });

  it('leaves the process-wide error handlers as they were, across restarts of the backend', async () => {
    const ours = () => {};
    process.on('unhandledRejection', ours);
    try {
      const uncaught = new Set(process.listeners('uncaughtException'));
      const unhandled = new Set(process.listeners('unhandledRejection'));
      // Threaded, then restarted on one thread, then threaded again: each restart disposes a
      // module whose clean-up removes every listener that existed when it was loaded.
      for (const threads of [2, 1, 2]) {
        await tf.setBackend('cpu');
        configureWasmThreads({ threads, seams: {}, onNotice: () => {} });
        expect(await tf.setBackend('wasm')).toBe(true);
        expect(wasmThreadsCount()).toBe(threads);
      }
      expect(process.listeners('unhandledRejection')).toContain(ours);
      // Nothing added either: the threaded build's handlers rethrow every error.
      expect(process.listeners('uncaughtException').filter((l) => !uncaught.has(l))).toEqual([]);
      expect(process.listeners('unhandledRejection').filter((l) => !unhandled.has(l))).toEqual([]);
    } finally {
      process.removeListener('unhandledRejection', ours);
    }
  });

  it('selectNodeBackend picks wasm on every core by default, and threads: 1 turns threads off', async () => {
    const notices: string[] = [];
    const onNotice = (message: string) => notices.push(message);
    expect(await selectNodeBackend({ backend: 'wasm', threads: 1, onNotice })).toBe('wasm');
    expect(wasmThreadsCount()).toBe(1);
    expect(await selectNodeBackend({ backend: 'wasm', threads: 2, onNotice })).toBe('wasm');
    expect(wasmThreadsCount()).toBe(2);
    expect(await selectNodeBackend({ onNotice })).toBe('wasm');
    expect(wasmThreadsCount()).toBe(2); // kept: the call did not ask for another number
    expect(fastKernelsInstalled()).toBe(true);
    expect(notices).toEqual([]);
  });

  it('keeps a running wasm backend that holds tensors, with a notice, instead of losing them', async () => {
    expect(await selectNodeBackend({ backend: 'wasm', threads: 2 })).toBe('wasm');
    const kept = tf.tensor1d([4, 5]);
    const notices: string[] = [];
    expect(
      await selectNodeBackend({ backend: 'wasm', threads: 1, onNotice: (m) => notices.push(m) }),
    ).toBe('wasm');
    expect(wasmThreadsCount()).toBe(2);
    expect(Array.from(await kept.data())).toEqual([4, 5]);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/already runs with 2 thread\(s\) and holds tensors/);
    kept.dispose();
  });

  it('rejects thread counts that are not integers from 1 to 8, naming the fix', async () => {
    for (const threads of [0, 9, 1.5, Number.NaN]) {
      await expect(selectNodeBackend({ backend: 'wasm', threads })).rejects.toThrow(
        /threads must be an integer from 1 to 8 .* pass 1 to turn threads off/,
      );
    }
  });
});

describe('routing conformance on wasm with 2 threads and the fast kernels', () => {
  beforeAll(async () => {
    expect(await selectNodeBackend({ backend: 'wasm', threads: 2 })).toBe('wasm');
    expect(wasmThreadsCount()).toBe(2);
    expect(fastKernelsInstalled()).toBe(true);
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });
  routingConformanceTests('wasm');
});
