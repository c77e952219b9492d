import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { seededRandom } from '../util/random.js';

/**
 * What the probe trains: a function from a latent slice `[B, d]` to a reconstruction `[B, F]`
 * together with the variables to train. Wrap a tfjs-layers model as
 * `{ apply: (z) => model.apply(z) as tf.Tensor2D, variables: model.trainableWeights.map((w) => w.read() as tf.Variable), dispose: () => model.dispose() }`.
 */
export interface ProbeDecoder {
  /** The forward pass; called inside the optimizer's gradient tape. */
  apply(z: tf.Tensor2D): tf.Tensor2D;
  /** The variables the probe's optimizer updates. */
  readonly variables: readonly tf.Variable[];
  /** Frees the variables. */
  dispose(): void;
}

/**
 * Builds a fresh decoder for one slice: `inputSize` is the slice's width, `outputSize` the
 * number of features of `x`, `seed` a per-slice seed for initialisation.
 */
export type ProbeDecoderFactory = (
  inputSize: number,
  outputSize: number,
  seed: number,
) => ProbeDecoder;

function uniform(
  shape: [number] | [number, number],
  bound: number,
  random: () => number,
): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = (2 * random() - 1) * bound;
  return tf.tensor(values, shape, 'float32');
}

/**
 * A dense MLP, ReLU between layers and a linear last layer with bias, initialised as PyTorch's
 * `nn.Linear` (weights and biases uniform in `±1/sqrt(fanIn)`), from a seed.
 *
 * @param sizes - Layer widths from input to output, e.g. `[16, 128, 512, 784]`; at least two.
 * @param seed - Initialisation seed.
 * @throws If fewer than two sizes are given or a size is not a positive integer.
 */
export function mlpProbeDecoder(sizes: readonly number[], seed = 0): ProbeDecoder {
  if (sizes.length < 2 || !sizes.every((s) => Number.isInteger(s) && s > 0)) {
    throw new GradientRoutingError(
      `gradient-routing: an MLP decoder needs at least two positive integer layer sizes ` +
        `(input and output), got [${sizes.join(', ')}].`,
    );
  }
  const random = seededRandom(seed);
  const layers = sizes.slice(1).map((out, i) => {
    const fanIn = sizes[i]!;
    const bound = 1 / Math.sqrt(fanIn);
    return tf.tidy(() => ({
      weight: tf.variable(uniform([fanIn, out], bound, random), true),
      bias: tf.variable(uniform([out], bound, random), true),
    }));
  });
  return {
    apply: (z) =>
      tf.tidy(() => {
        let h: tf.Tensor2D = z;
        for (const [i, { weight, bias }] of layers.entries()) {
          h = tf.fused.matMul({
            a: h,
            b: weight as tf.Tensor2D,
            bias,
            activation: i === layers.length - 1 ? 'linear' : 'relu',
          }) as tf.Tensor2D;
        }
        return h;
      }),
    variables: layers.flatMap(({ weight, bias }) => [weight, bias]),
    dispose: () => {
      for (const { weight, bias } of layers) {
        weight.dispose();
        bias.dispose();
      }
    },
  };
}
