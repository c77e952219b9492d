/**
 * selectNodeBackend's `tensorflow` backend comes from @tensorflow/tfjs-node-gpu when that is
 * installed, else from @tensorflow/tfjs-node. Neither installs here (their install scripts
 * download libtensorflow), so the loader gets a resolver that maps the package names to
 * stand-ins (test/fixtures/fake-tfjs-node) which, like the real packages, register 'tensorflow'.
 */
import path from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { selectFrom } from '../src/core/backend/select.js';
import { TENSORFLOW_PACKAGES, tensorflowLoader } from '../src/node/backend.js';

const fixtures = path.resolve('test/fixtures/fake-tfjs-node');
const standIn = {
  '@tensorflow/tfjs-node-gpu': path.join(fixtures, 'tfjs-node-gpu.mjs'),
  '@tensorflow/tfjs-node': path.join(fixtures, 'tfjs-node.mjs'),
} as const;

/** A resolver that finds only the `installed` packages, at their stand-ins. */
function resolverOf(installed: readonly (keyof typeof standIn)[]) {
  const asked: string[] = [];
  const resolve = (name: string): string => {
    asked.push(name);
    const entry = (installed as readonly string[]).includes(name)
      ? standIn[name as keyof typeof standIn]
      : undefined;
    if (entry === undefined) {
      throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
    }
    return entry;
  };
  return { resolve, asked };
}

const imported = () =>
  (globalThis as { fakeTensorflowImports?: string[] }).fakeTensorflowImports ?? [];

afterEach(async () => {
  await tf.setBackend('cpu');
  if (tf.findBackendFactory('tensorflow') !== null) tf.removeBackend('tensorflow');
  delete (globalThis as { fakeTensorflowImports?: string[] }).fakeTensorflowImports;
});

describe("the 'tensorflow' backend loader", () => {
  it('looks for the CUDA build first, then the CPU build', () => {
    expect(TENSORFLOW_PACKAGES).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
  });

  it('takes @tensorflow/tfjs-node-gpu when it is installed, even beside tfjs-node', async () => {
    const { resolve, asked } = resolverOf(['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']);
    const backend = await selectFrom([tensorflowLoader(resolve)], { backend: 'tensorflow' });
    expect(backend).toBe('tensorflow');
    expect(tf.getBackend()).toBe('tensorflow');
    expect(asked).toEqual(['@tensorflow/tfjs-node-gpu']);
    expect(imported()).toEqual(['@tensorflow/tfjs-node-gpu']);
  });

  it('takes @tensorflow/tfjs-node when the GPU build is not installed', async () => {
    const { resolve, asked } = resolverOf(['@tensorflow/tfjs-node']);
    expect(await tensorflowLoader(resolve).load({})).toBe(true);
    expect(asked).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
    expect(imported()).toEqual(['@tensorflow/tfjs-node']);
  });

  it('reports neither installed, naming both packages when the backend is forced', async () => {
    const { resolve } = resolverOf([]);
    expect(await tensorflowLoader(resolve).load({})).toBe(false);
    await expect(
      selectFrom([tensorflowLoader(resolve)], { backend: 'tensorflow' }),
    ).rejects.toThrow(
      /backend 'tensorflow' was requested but it is not installed \(npm install @tensorflow\/tfjs-node, or @tensorflow\/tfjs-node-gpu for CUDA on Linux/,
    );
    expect(imported()).toEqual([]);
  });
});
