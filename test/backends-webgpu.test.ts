/**
 * WebGPU in Node: the routing conformance checks against cpu, on whatever adapter the machine
 * has. Without a GPU that is Mesa's llvmpipe through Dawn's OpenGL ES backend, which CI installs
 * (`.ci/run`: libegl1 libegl-mesa0 libgl1-mesa-dri). The suite is skipped only where WebGPU truly
 * cannot start, with the reason; in CI (`CI` or `GRADIENT_ROUTING_REQUIRE_WEBGPU` set, as
 * `.ci/run` does) it must run, so a failure to start fails.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webGpuKernelsInstalled } from '../src/core/backend/webgpu/install.js';
import { routeGradients, setMaskValidation } from '../src/core/routing/route.js';
import { selectNodeBackend } from '../src/node/backend.js';
import { nodeWebGpuAdapter, releaseNodeWebGpu } from '../src/node/webgpu.js';
import { routingConformanceTests } from './helpers/conformance.js';

const notices: string[] = [];

/** Why WebGPU cannot run here, or null when it started. */
async function webGpuUnavailable(): Promise<string | null> {
  try {
    await selectNodeBackend({ backend: 'webgpu', onNotice: (message) => notices.push(message) });
    return null;
  } catch (error) {
    if (process.env.CI || process.env.GRADIENT_ROUTING_REQUIRE_WEBGPU) throw error;
    return (error as Error).message;
  }
}

const unavailable = await webGpuUnavailable();
if (unavailable !== null) console.warn(`WebGPU tests skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)('WebGPU in Node', () => {
  beforeAll(async () => {
    await tf.setBackend('webgpu');
  });
  afterAll(() => {
    releaseNodeWebGpu();
  });

  it('says when it runs on a software adapter, and only then', () => {
    const adapter = nodeWebGpuAdapter()!;
    expect(adapter).not.toBeNull();
    if (adapter.software) {
      expect(notices).toHaveLength(1);
      expect(notices[0]).toMatch(/WebGPU runs on a software adapter \(.+\)/);
    } else {
      expect(notices).toEqual([]);
    }
  });

  it('cannot read synchronously in Node, so the library reads with await', async () => {
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.square(x);
    expect(() => y.dataSync()).toThrow(/OffscreenCanvas/);
    expect(Array.from(await y.data())).toEqual([1, 4, 9]);
    tf.dispose([x, y]);
  });

  it('says what to do when mask validation, which reads synchronously, is on', async () => {
    const before = setMaskValidation(true);
    const x = tf.ones([2, 1024]);
    // Computed on the GPU: tfjs computes small tensors made from host values on the CPU, and
    // those can still be read synchronously.
    const mask = tf.tidy(() => tf.add(tf.fill([1024], 0.5), 0.5));
    try {
      expect(() => routeGradients(x, mask)).toThrow(
        /mask validation reads the tensor synchronously, which the webgpu backend cannot do in Node .*setMaskValidation\(false\)/,
      );
    } finally {
      setMaskValidation(before);
      tf.dispose([x, mask]);
    }
  });

  it('is not picked automatically on a software adapter', async () => {
    if (!nodeWebGpuAdapter()!.software) return;
    const picked = await selectNodeBackend({ onNotice: () => {} });
    expect(picked).not.toBe('webgpu');
    expect(await selectNodeBackend({ backend: 'webgpu', onNotice: () => {} })).toBe('webgpu');
  });

  it("runs the conformance checks below on the library's WebGPU kernels, which selection installs", () => {
    expect(webGpuKernelsInstalled()).toBe(true);
    expect(tf.getKernel('GradientRoutingGatedMatMul', 'webgpu')).toBeDefined();
  });

  routingConformanceTests('webgpu');
});
