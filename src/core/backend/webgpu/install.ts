import * as tf from '@tensorflow/tfjs-core';
import { adamKernels } from './adam.js';
import { elementwiseKernels } from './elementwise.js';
import { denseMatMulKernels } from './matmul.js';
import { WEBGPU, type WebGpuKernelSet } from './tfjs-webgpu.js';
import { transformerKernels } from './transformer-kernels.js';

/*
 * The library's own WebGPU kernels, installed by backend selection the way the fast wasm kernels
 * are. There are four kernel sets, one module of this folder each: the fused Adam/AdamW update
 * (adam.ts), the routed step's element-wise ops (elementwise.ts), the dense-layer matMul
 * (matmul.ts) and the transformer's blocks (transformer-kernels.ts). Each lists tfjs kernel
 * configs for the 'webgpu' backend: either a replacement for a stock kernel (same kernelName; the
 * stock one is kept and put back by uninstallWebGpuKernels) or a kernel of the library's own
 * (named in `LibraryKernel`, ../library-kernels.ts), which ops look up with `hasLibraryKernel` and
 * replace by their composite of stock ops where it is missing.
 */

/** Every set the library ships; each module adds itself here. */
const KERNEL_SETS: readonly WebGpuKernelSet[] = [
  adamKernels,
  elementwiseKernels,
  denseMatMulKernels,
  transformerKernels,
];

/** Marks our configs, across copies of this library in one process, so they never nest. */
const OURS = Symbol.for('gradient-routing.webgpu-kernels');
type MarkedKernelFunc = tf.KernelFunc & { [OURS]?: true };

/** Stock configs we replaced (undefined: the kernel is our own and had no stock version). */
let replaced: Map<string, tf.KernelConfig | undefined> | null = null;

function isOurs(config: tf.KernelConfig | undefined): boolean {
  return (config?.kernelFunc as MarkedKernelFunc | undefined)?.[OURS] === true;
}

/**
 * Installs the library's WebGPU kernels (see the kernel sets of `src/core/backend/webgpu/`).
 * {@link selectBackend} and `selectNodeBackend` call it when they pick WebGPU; call it yourself
 * after `tf.setBackend('webgpu')`. Idempotent.
 *
 * @returns True when the kernels are active, false when tfjs-backend-webgpu has not been imported.
 */
export function installWebGpuKernels(): boolean {
  if (replaced !== null) return true;
  if (tf.findBackendFactory(WEBGPU) === null) return false;
  const originals = new Map<string, tf.KernelConfig | undefined>();
  for (const set of KERNEL_SETS) {
    for (const config of set.kernels()) {
      const current = tf.getKernel(config.kernelName, WEBGPU);
      // Another copy of this library already installed its kernels: keep those.
      if (isOurs(current)) return true;
      const kernelFunc: MarkedKernelFunc = config.kernelFunc;
      kernelFunc[OURS] = true;
      originals.set(config.kernelName, current);
      if (current !== undefined) tf.unregisterKernel(config.kernelName, WEBGPU);
      tf.registerKernel({ ...config, backendName: WEBGPU, kernelFunc });
    }
  }
  replaced = originals;
  return true;
}

/** Puts back tfjs's stock WebGPU kernels, e.g. to compare speed or results. */
export function uninstallWebGpuKernels(): void {
  if (replaced === null) return;
  for (const [name, original] of replaced) {
    if (!isOurs(tf.getKernel(name, WEBGPU))) continue; // someone else's since: keep theirs
    tf.unregisterKernel(name, WEBGPU);
    if (original !== undefined) tf.registerKernel(original);
  }
  replaced = null;
}

/** Whether the kernels of {@link installWebGpuKernels} are active. */
export function webGpuKernelsInstalled(): boolean {
  return replaced !== null;
}
