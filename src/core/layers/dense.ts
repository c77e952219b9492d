import * as tf from '@tensorflow/tfjs-core';
import {
  type GatedMatMulAttrs,
  hasLibraryKernel,
  LibraryKernel,
} from '../backend/library-kernels.js';

/*
 * Why this op exists: tfjs fuses a dense layer's bias and activation into its matMul only when
 * no gradient is being recorded (tfjs-core's `fused.matMul` falls back to matMul, add and relu
 * whenever it is), so in training every layer costs three passes forward and five or six
 * backward. Where the backend has the library's dense kernels (WebGPU, see
 * src/core/backend/webgpu/matmul.ts), this op runs the layer as one kernel with a gradient of its
 * own: `dy·Wᵀ` and `xᵀ·dy` read `dy` through ReLU's backward as they load it, and the bias
 * gradient is one gated column sum. Elsewhere it is exactly what tfjs-layers' Dense computes.
 */

/** Activations of {@link dense}. */
export type DenseActivation = 'linear' | 'relu';

/** Whether the current backend has the kernels of the fused path (today: WebGPU, once installed). */
function fusedDenseAvailable(): boolean {
  return (
    hasLibraryKernel(LibraryKernel.dense) &&
    hasLibraryKernel(LibraryKernel.gatedMatMul) &&
    hasLibraryKernel(LibraryKernel.gatedColumnSum)
  );
}

function gatedMatMul(
  a: tf.Tensor,
  b: tf.Tensor,
  gate: tf.Tensor | null,
  attrs: Omit<GatedMatMulAttrs, 'gated'> & { gated: 'a' | 'b' },
): tf.Tensor2D {
  const inputs: tf.NamedTensorMap = gate === null ? { a, b } : { a, b, gate };
  const gated = gate === null ? 'none' : attrs.gated;
  return tf
    .engine()
    .runKernel(LibraryKernel.gatedMatMul, inputs, { ...attrs, gated }) as tf.Tensor2D;
}

/**
 * The backward pass of the fused layer. Each gradient is computed only when asked for (the input
 * of a first layer needs none), and none of them materialises `dy ⊙ [y > 0]`.
 */
function registerDenseGradient(): void {
  if (tf.getGradient(LibraryKernel.dense) !== undefined) return;
  tf.registerGradient({
    kernelName: LibraryKernel.dense,
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, kernel, y] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      const upstream = dy as tf.Tensor2D;
      const gate = attrs.activation === 'relu' ? y : null;
      return {
        a: () =>
          gatedMatMul(upstream, kernel, gate, { transposeA: false, transposeB: true, gated: 'a' }),
        b: () =>
          gatedMatMul(x, upstream, gate, { transposeA: true, transposeB: false, gated: 'b' }),
        bias: () => {
          const inputs: tf.NamedTensorMap = gate === null ? { x: upstream } : { x: upstream, gate };
          return tf.engine().runKernel(LibraryKernel.gatedColumnSum, inputs, {}) as tf.Tensor1D;
        },
      };
    },
  });
}

/**
 * A dense layer `activation(x·W + b)` for `x` `[B, in]`, `W` `[in, out]`, `b` `[out]` or null.
 * On a backend with the library's dense kernels it is one fused kernel forward and three
 * backward, whether or not gradients are recorded; elsewhere it is tfjs's `fused.matMul`, the
 * very call tfjs-layers' Dense makes, so the numbers are those of a Dense layer.
 */
export function dense(
  x: tf.Tensor2D,
  kernel: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  activation: DenseActivation,
): tf.Tensor2D {
  if (!fusedDenseAvailable() || x.dtype !== 'float32') {
    return tf.fused.matMul({ a: x, b: kernel, bias: bias ?? undefined, activation }) as tf.Tensor2D;
  }
  registerDenseGradient();
  const inputs: tf.NamedTensorMap = bias === null ? { a: x, b: kernel } : { a: x, b: kernel, bias };
  return tf.engine().runKernel(LibraryKernel.dense, inputs, { activation }) as tf.Tensor2D;
}
