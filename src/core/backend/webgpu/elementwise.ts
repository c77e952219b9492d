import * as tf from '@tensorflow/tfjs-core';
import { MASK_PRODUCT_KERNEL, SCALED_SIGN_KERNEL } from '../library-kernels.js';
import type { WebGpuBackendInternals } from './in-place.js';
import type { WebGpuKernelSet } from './install.js';

/*
 * Element-wise ops of the routed step that stock tfjs builds from several kernels and from
 * scalar tensors made of plain numbers (each one an upload per step): the routing op's exact
 * mask product and the gradient of a mean absolute error. Each is one program here, with its
 * constants in the shader or in a uniform. They use tfjs's own shader generator, so inputs
 * broadcast the way tfjs's binary ops do.
 */

const WORKGROUP_SIZE = 64;

/** A flat element-wise tfjs program over `outputShape`; `body` sets element `index`. */
function elementwiseProgram(
  name: string,
  variableNames: string[],
  outputShape: number[],
  body: string,
  uniforms?: string,
) {
  const size = outputShape.reduce((n, d) => n * d, 1);
  return {
    // tfjs names a program's timings (tf.profile) by its class; the counter does too.
    constructor: { name: `GradientRouting${name}Program` },
    variableNames,
    outputShape,
    shaderKey: `GradientRouting${name}`,
    dispatchLayout: { x: outputShape.map((_, axis) => axis) },
    dispatch: [Math.ceil(size / WORKGROUP_SIZE), 1, 1],
    workgroupSize: [WORKGROUP_SIZE, 1, 1],
    size: true,
    ...(uniforms === undefined ? {} : { uniforms }),
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let coords = getCoordsFromIndex(index);
          ${body}
        }
      }`,
  };
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

function maskProduct({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { values, mask } = inputs as Record<'values' | 'mask', tf.TensorInfo>;
  const shape = tf.backend_util.assertAndGetBroadcastShape(values.shape, mask.shape);
  const program = elementwiseProgram(
    'MaskProduct',
    ['values', 'mask'],
    shape,
    `let m = getMaskByOutputCoords(coords);
          // select, not a product, where the mask is 0: NaN·0 would be NaN.
          setOutputAtIndex(index, select(getValuesByOutputCoords(coords) * m, 0.0, m == 0.0));`,
  );
  return (backend as unknown as WebGpuBackendInternals).runWebGPUProgram(
    program,
    [values, mask],
    'float32',
  );
}

function scaledSign({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, scale } = inputs as Record<'x' | 'scale', tf.TensorInfo>;
  const { divisor } = attrs as { divisor: number };
  const program = elementwiseProgram(
    'ScaledSign',
    ['x', 'scale'],
    [...x.shape],
    // The same rounding as the stock ops: (scale / divisor) first, then times the sign.
    'setOutputAtIndex(index, sign(getXByOutputCoords(coords)) * (getScaleByOutputCoords(coords) / uniforms.divisor));',
    'divisor : f32,',
  );
  return (backend as unknown as WebGpuBackendInternals).runWebGPUProgram(
    program,
    [x, scale],
    'float32',
    [{ type: 'float32', data: [divisor] }],
  );
}

/** The routing op's mask product and the mean-absolute-error gradient, one program each. */
export const ELEMENTWISE_KERNELS: WebGpuKernelSet = {
  name: 'routing and loss element-wise ops',
  kernels: () => [
    { kernelName: MASK_PRODUCT_KERNEL, backendName: 'webgpu', kernelFunc: maskProduct },
    { kernelName: SCALED_SIGN_KERNEL, backendName: 'webgpu', kernelFunc: scaledSign },
  ],
};
