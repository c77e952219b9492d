/**
 * The browser entry's selectBackend(), run in Node with a stand-in `navigator.gpu`: WebGPU is
 * taken automatically only on a real GPU, forcing it accepts a software adapter with a notice,
 * and the order falls through to wasm.
 */

import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import type { GpuAdapterDescription } from '../src/core/backend/adapter.js';
import { isSoftwareAdapter } from '../src/core/backend/adapter.js';
import { selectBackend } from '../src/core/backend/select.js';

/** Puts a fake WebGPU in place: `navigator.gpu` with one adapter, and a 'webgpu' backend. */
function fakeWebGpu(info: GpuAdapterDescription | null): void {
  const gpu = { requestAdapter: async () => (info === null ? null : { info }) };
  Object.defineProperty(globalThis, 'navigator', {
    value: { gpu },
    configurable: true,
    writable: true,
  });
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  // Selection only activates it; no op runs on it.
  tf.registerBackend('webgpu', () => new MathBackendCPU(), 0);
}

/** Puts a fake WebGL in place: a `document` whose canvas reports `renderer`, and a 'webgl' backend. */
function fakeWebGl(renderer: string): void {
  const UNMASKED_RENDERER_WEBGL = 0x9246;
  const gl = {
    RENDERER: 0x1f01,
    getExtension: (name: string) =>
      name === 'WEBGL_debug_renderer_info' ? { UNMASKED_RENDERER_WEBGL } : null,
    getParameter: (which: number) =>
      which === UNMASKED_RENDERER_WEBGL ? renderer : 'WebKit WebGL',
  };
  const document = { createElement: () => ({ getContext: () => gl }) };
  Object.defineProperty(globalThis, 'document', {
    value: document,
    configurable: true,
    writable: true,
  });
  if (tf.findBackendFactory('webgl') !== null) tf.removeBackend('webgl');
  tf.registerBackend('webgl', () => new MathBackendCPU(), 0);
}

afterEach(() => {
  for (const name of ['webgpu', 'webgl']) {
    if (tf.findBackendFactory(name) !== null) tf.removeBackend(name);
  }
  delete (globalThis as { navigator?: unknown }).navigator;
  delete (globalThis as { document?: unknown }).document;
});

describe('isSoftwareAdapter', () => {
  it('recognises CPU renderers by name or by the fallback flag, and nothing else', () => {
    expect(isSoftwareAdapter({ device: 'llvmpipe-llvm-15-0-6-256-bits-' })).toBe(true);
    expect(isSoftwareAdapter({ description: 'llvmpipe (LLVM 15.0.6, 256 bits)' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'google', architecture: 'swiftshader' })).toBe(true);
    expect(isSoftwareAdapter({ description: 'Microsoft Basic Render Driver' })).toBe(true);
    expect(isSoftwareAdapter({ device: 'lavapipe' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', isFallbackAdapter: true })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'ampere' })).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3' })).toBe(false);
    expect(
      isSoftwareAdapter({ description: 'Intel(R) Arc(TM) Graphics', isFallbackAdapter: false }),
    ).toBe(false);
    expect(isSoftwareAdapter({})).toBe(false);
  });
});

describe('selectBackend (browser entry)', () => {
  it('takes WebGPU automatically on a real GPU', async () => {
    fakeWebGpu({ vendor: 'nvidia', architecture: 'ampere' });
    const notices: string[] = [];
    expect(await selectBackend({ onNotice: (m) => notices.push(m) })).toBe('webgpu');
    expect(notices).toEqual([]);
  });

  it('skips a software adapter automatically, and takes it with a notice when forced', async () => {
    fakeWebGpu({ device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'Mesa 22.3.6' });
    const notices: string[] = [];
    const onNotice = (m: string) => notices.push(m);
    expect(await selectBackend({ onNotice })).toBe('wasm');
    expect(notices).toEqual([]);
    expect(await selectBackend({ backend: 'webgpu', onNotice })).toBe('webgpu');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(
      /software adapter \(llvmpipe-llvm-15-0-6-256-bits-, Mesa 22\.3\.6\)/,
    );
  });

  it('falls through to wasm when WebGPU has no adapter or no navigator.gpu, and says why when forced', async () => {
    fakeWebGpu(null);
    expect(await selectBackend({ onNotice: () => {} })).toBe('wasm');
    await expect(selectBackend({ backend: 'webgpu' })).rejects.toThrow(
      /backend 'webgpu' was requested but loading it failed: WebGPU found no adapter/,
    );
    delete (globalThis as { navigator?: unknown }).navigator;
    await expect(selectBackend({ backend: 'webgpu' })).rejects.toThrow(
      /no WebGPU \(navigator\.gpu\)/,
    );
  });

  it('takes WebGL on a GPU, skips a software renderer automatically, and takes it with a notice when forced', async () => {
    fakeWebGl('ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0)');
    expect(await selectBackend({ onNotice: () => {} })).toBe('webgl');
    fakeWebGl('ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)), SwiftShader driver)');
    const notices: string[] = [];
    const onNotice = (m: string) => notices.push(m);
    expect(await selectBackend({ onNotice })).toBe('wasm');
    expect(notices).toEqual([]);
    expect(await selectBackend({ backend: 'webgl', onNotice })).toBe('webgl');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/WebGL runs on a software renderer \(ANGLE \(Google, Vulkan/);
  });

  it('reports an uninstalled WebGL as not installed, with what to do', async () => {
    await expect(selectBackend({ backend: 'webgl' })).rejects.toThrow(
      /backend 'webgl' was requested but it is not installed \(npm install @tensorflow\/tfjs-backend-webgl/,
    );
  });
});
