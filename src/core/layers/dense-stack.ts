import * as tfl from '@tensorflow/tfjs-layers';
import { GradientRoutingError } from '../errors.js';

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
 * ±1/√fan_in, so that runs are comparable with PyTorch references. tfjs-layers runs each
 * `Dense` as one fused matMul + bias + ReLU.
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
    model.add(
      tfl.layers.dense({
        units: sizes[i + 1]!,
        inputShape: i === 0 ? [fanIn] : undefined,
        activation: last ? 'linear' : 'relu',
        useBias: last ? lastBias : true,
        kernelInitializer: initializer(0),
        biasInitializer: initializer(1),
        name: uniqueName(`${name}_dense${i}`),
      }),
    );
  }
  return model;
}

let nameCounter = 0;
/** tfjs-layers needs globally unique layer names when several models share a session. */
function uniqueName(base: string): string {
  nameCounter += 1;
  return `${base}_${nameCounter}`;
}
