import type * as tf from '@tensorflow/tfjs-core';
import { type AdamKernelAttrs, LibraryKernel } from '../library-kernels.js';
import { type InPlaceBinding, ownsBuffer, runInPlace } from './in-place.js';
import {
  type KernelArgs,
  type ScalarUniform,
  WEBGPU,
  type WebGpuBackend,
  type WebGpuKernelSet,
  webGpuBackendOf,
} from './tfjs-webgpu.js';

/*
 * Adam and AdamW in one dispatch per variable: the weights and both moments are read and written
 * in place, the step's constants are uniforms. The stock-op version of the same update costs
 * thirteen dispatches and seven uploaded scalars per variable.
 */

/** A private copy of `info` in a new buffer, for a tensor whose buffer another tensor shares. */
function copyOf(backend: WebGpuBackend, info: tf.TensorInfo): tf.TensorInfo {
  const copy = backend.makeTensorInfo([...info.shape], 'float32');
  runInPlace(
    backend,
    'Copy',
    [
      { name: 'copied', info: copy, writable: true },
      { name: 'source', info, writable: false },
    ],
    [],
    'copied[i] = source[i];',
  );
  return copy;
}

const UPDATE = `
  let p = weights[i];
  var g = grads[i];
  if (uniforms.l2Decay != 0.0) { g = g + p * uniforms.l2Decay; }
  let m = firstMoment[i] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
  let v = secondMoment[i] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
  firstMoment[i] = m;
  secondMoment[i] = v;
  let denominator = sqrt(v) / uniforms.sqrtCorrection2 + uniforms.epsilon;
  weights[i] = p * uniforms.decayFactor - (m / denominator) * uniforms.stepSize;
`;

const ATTR_ORDER: ReadonlyArray<keyof AdamKernelAttrs> = [
  'beta1',
  'beta2',
  'oneMinusBeta1',
  'oneMinusBeta2',
  'epsilon',
  'l2Decay',
  'decayFactor',
  'stepSize',
  'sqrtCorrection2',
];

function adamKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const gpu = webGpuBackendOf(backend);
  const { variable, gradient, m, v } = inputs as Record<
    'variable' | 'gradient' | 'm' | 'v',
    tf.TensorInfo
  >;
  const values = attrs as unknown as AdamKernelAttrs;
  const states = [variable, m, v];
  // Writing a buffer that a clone shares would change the clone: work on private copies then,
  // and hand them back for the caller to assign.
  const shared = !states.every((info) => ownsBuffer(gpu, info));
  const [weights, firstMoment, secondMoment] = shared ? states.map((s) => copyOf(gpu, s)) : states;
  const bindings: InPlaceBinding[] = [
    { name: 'weights', info: weights!, writable: true },
    { name: 'grads', info: gradient, writable: false },
    { name: 'firstMoment', info: firstMoment!, writable: true },
    { name: 'secondMoment', info: secondMoment!, writable: true },
  ];
  const uniforms: ScalarUniform[] = ATTR_ORDER.map((name) => ({
    name,
    type: 'f32',
    value: values[name],
  }));
  runInPlace(gpu, 'Adam', bindings, uniforms, UPDATE);
  return shared ? [weights!, firstMoment!, secondMoment!] : [];
}

/** The fused optimiser update, {@link LibraryKernel.adam}. */
export const adamKernels: WebGpuKernelSet = {
  name: 'optimisers',
  kernels: () => [
    {
      kernelName: LibraryKernel.adam,
      backendName: WEBGPU,
      kernelFunc: adamKernel as tf.KernelFunc,
    },
  ],
};
