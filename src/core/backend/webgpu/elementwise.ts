import * as tf from '@tensorflow/tfjs-core';
import { LibraryKernel } from '../library-kernels.js';
import {
  flatLaunch,
  type KernelArgs,
  programClass,
  type ScalarUniform,
  scalarUniforms,
  WEBGPU,
  type WebGpuKernelSet,
  type WebGpuProgram,
  webGpuBackendOf,
} from './tfjs-webgpu.js';

/*
 * Element-wise ops of the routed step that stock tfjs builds from several kernels and from
 * scalar tensors made of plain numbers (each one an upload per step): the routing op's exact
 * mask product and the gradient of a mean absolute error. Each is one program here, with its
 * constants in the shader or in a uniform. They use tfjs's own shader generator, so inputs
 * broadcast the way tfjs's binary ops do.
 */

/** A flat element-wise tfjs program over `outputShape`; `body` sets element `index`. */
function elementwiseProgram(
  name: string,
  variableNames: string[],
  outputShape: number[],
  body: string,
  uniforms: readonly ScalarUniform[] = [],
): WebGpuProgram {
  return {
    constructor: programClass(name),
    variableNames,
    outputShape,
    shaderKey: `GradientRouting${name}`,
    ...flatLaunch(outputShape),
    size: true,
    ...(uniforms.length === 0 ? {} : { uniforms: scalarUniforms(uniforms).declaration }),
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let coords = getCoordsFromIndex(index);
          ${body}
        }
      }`,
  };
}

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
  return webGpuBackendOf(backend).runWebGPUProgram(program, [values, mask], 'float32');
}

function scaledSign({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, scale } = inputs as Record<'x' | 'scale', tf.TensorInfo>;
  const { divisor } = attrs as { divisor: number };
  const uniforms: ScalarUniform[] = [{ name: 'divisor', type: 'f32', value: divisor }];
  const program = elementwiseProgram(
    'ScaledSign',
    ['x', 'scale'],
    [...x.shape],
    // The same rounding as the stock ops: (scale / divisor) first, then times the sign.
    'setOutputAtIndex(index, sign(getXByOutputCoords(coords)) * (getScaleByOutputCoords(coords) / uniforms.divisor));',
    uniforms,
  );
  return webGpuBackendOf(backend).runWebGPUProgram(
    program,
    [x, scale],
    'float32',
    scalarUniforms(uniforms).values,
  );
}

/** The routing op's mask product and the mean-absolute-error gradient, one program each. */
export const elementwiseKernels: WebGpuKernelSet = {
  name: 'routing and loss element-wise ops',
  kernels: () => [
    { kernelName: LibraryKernel.maskProduct, backendName: WEBGPU, kernelFunc: maskProduct },
    { kernelName: LibraryKernel.scaledSign, backendName: WEBGPU, kernelFunc: scaledSign },
  ],
};
