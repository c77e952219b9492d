import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { GradientRoutingError } from '../errors.js';
import { type DenseActivation, dense } from './dense.js';

/** Options of {@link denseStack}. */
export interface DenseStackOptions {
  /** Whether the last layer has a bias. The paper's encoder has none on its latent layer. */
  lastBias?: boolean;
  /** Seed for the weight initialisers; the same seed gives the same weights on every backend. */
  seed?: number;
  /** Prefix of the layer names, for readable summaries. */
  name?: string;
}

/**
 * A ReLU multilayer perceptron `sizes[0] → … → sizes[n-1]` as a tfjs-layers `Sequential`
 * model, with no activation after the last layer.
 *
 * Weights and biases are initialised as PyTorch's `nn.Linear` does, uniform in
 * ±1/√fan_in, so that runs are comparable with PyTorch references. Each layer is a tfjs-layers
 * `Dense` (it saves and loads as one) that runs through the library's {@link dense} op: one fused
 * matMul + bias + ReLU forward, and a fused backward, where the backend has the library's kernels.
 *
 * @example
 * ```ts
 * const encoder = denseStack([784, 512, 128, 32], { lastBias: false, seed: 0 });
 * ```
 */
export function denseStack(
  sizes: readonly number[],
  options: DenseStackOptions = {},
): tfl.Sequential {
  if (sizes.length < 2 || sizes.some((size) => !Number.isInteger(size) || size <= 0)) {
    throw new GradientRoutingError(
      `gradient-routing: a dense stack needs at least two positive integer sizes (input and output), got [${sizes.join(', ')}].`,
    );
  }
  const { lastBias = true, seed = 0, name = 'mlp' } = options;
  const model = tfl.sequential({ name: uniqueName(name) });
  for (let i = 0; i + 1 < sizes.length; i++) {
    const fanIn = sizes[i]!;
    const bound = 1 / Math.sqrt(fanIn);
    const last = i + 2 === sizes.length;
    const initializer = (offset: number) =>
      tfl.initializers.randomUniform({
        minval: -bound,
        maxval: bound,
        seed: seed * 1000 + i * 2 + offset,
      });
    const activation: DenseActivation = last ? 'linear' : 'relu';
    const layer = tfl.layers.dense({
      units: sizes[i + 1]!,
      inputShape: i === 0 ? [fanIn] : undefined,
      activation,
      useBias: last ? lastBias : true,
      kernelInitializer: initializer(0),
      biasInitializer: initializer(1),
      name: uniqueName(`${name}_dense${i}`),
    });
    runThroughDenseOp(layer, activation);
    model.add(layer);
  }
  return model;
}

/**
 * Makes a Dense layer compute through {@link dense}, keeping the layer itself (weights, config,
 * serialisation) as tfjs-layers made it; inputs of another rank keep tfjs-layers' own path.
 */
function runThroughDenseOp(layer: tfl.layers.Layer, activation: DenseActivation): void {
  const stockCall = layer.call.bind(layer);
  layer.call = (inputs, kwargs) => {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (x === undefined || x.rank !== 2 || (Array.isArray(inputs) && inputs.length !== 1)) {
      return stockCall(inputs, kwargs);
    }
    const weight = (suffix: string) =>
      layer.weights.find((variable) => variable.originalName.endsWith(suffix))?.read();
    const kernel = weight('/kernel') as tf.Tensor2D;
    const bias = (weight('/bias') ?? null) as tf.Tensor1D | null;
    // Dense.call's own tidy: the composite path makes intermediates.
    return tf.tidy(() => dense(x as tf.Tensor2D, kernel, bias, activation));
  };
}

let nameCounter = 0;
/** tfjs-layers needs globally unique layer names when several models share a session. */
function uniqueName(base: string): string {
  nameCounter += 1;
  return `${base}_${nameCounter}`;
}
