import * as tf from '@tensorflow/tfjs-core';
import { ADAM_KERNELS } from './adam.js';
import { ELEMENTWISE_KERNELS } from './elementwise.js';
import { denseMatMulKernels } from './matmul.js';
import { transformerKernels } from './transformer-kernels.js';

/*
 * The library's own WebGPU kernels, installed by backend selection the way the fast wasm kernels
 * are. Each kernel set is a module of this folder that lists tfjs kernel configs for the 'webgpu'
 * backend: either a replacement for a stock kernel (same kernelName; the stock one is kept and put
 * back by uninstallWebGpuKernels) or a kernel of the library's own (a name starting with
 * 'GradientRouting'), which ops look up with `tf.getKernel(name, tf.getBackend())` and replace by
 * their composite of stock ops where it is missing.
 */

const BACKEND = 'webgpu';

/** A group of kernels that belong together (e.g. the dense-layer products). */
export interface WebGpuKernelSet {
  readonly name: string;
  readonly kernels: () => readonly tf.KernelConfig[];
}

/** Every set the library ships; each module adds itself here. */
const KERNEL_SETS: readonly WebGpuKernelSet[] = [
  ADAM_KERNELS,
  ELEMENTWISE_KERNELS,
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
  if (tf.findBackendFactory(BACKEND) === null) return false;
  const originals = new Map<string, tf.KernelConfig | undefined>();
  for (const set of KERNEL_SETS) {
    for (const config of set.kernels()) {
      const current = tf.getKernel(config.kernelName, BACKEND);
      // Another copy of this library already installed its kernels: keep those.
      if (isOurs(current)) return true;
      const kernelFunc: MarkedKernelFunc = config.kernelFunc;
      kernelFunc[OURS] = true;
      originals.set(config.kernelName, current);
      if (current !== undefined) tf.unregisterKernel(config.kernelName, BACKEND);
      tf.registerKernel({ ...config, backendName: BACKEND, kernelFunc });
    }
  }
  replaced = originals;
  return true;
}

/** Puts back tfjs's stock WebGPU kernels, e.g. to compare speed or results. */
export function uninstallWebGpuKernels(): void {
  if (replaced === null) return;
  for (const [name, original] of replaced) {
    if (!isOurs(tf.getKernel(name, BACKEND))) continue; // someone else's since: keep theirs
    tf.unregisterKernel(name, BACKEND);
    if (original !== undefined) tf.registerKernel(original);
  }
  replaced = null;
}

/** Whether the kernels of {@link installWebGpuKernels} are active. */
export function webGpuKernelsInstalled(): boolean {
  return replaced !== null;
}
