/**
 * The paper's MNIST autoencoder (Cloud et al. 2024, Section 4.1), written with plain tfjs-core
 * variables so the bench measures tfjs and this library's kernels, not a layers wrapper.
 * Encoder 784-2048-512-32, decoder 32-512-2048-784, and two "certificate" half-decoders
 * 16-512-2048-784 trained on the detached latent halves.
 */
import * as tf from '@tensorflow/tfjs-core';
// The public entry, as users import it (it also registers every op's gradient).
import {
  dense as denseLayer,
  meanAbsoluteError,
  routeGradients,
  stopGradient,
  torchAdam,
} from 'gradient-routing';

/** One dense layer: `y = x·W + b`, ReLU unless it is the last layer of its stack. */
interface Dense {
  w: tf.Variable;
  b: tf.Variable | null;
  relu: boolean;
}

/** Layer widths of each stack; the FLOP count of a step is derived from these. */
export const STACKS = {
  encoder: [784, 2048, 512, 32],
  decoder: [32, 512, 2048, 784],
  halfDecoder: [16, 512, 2048, 784],
} as const;

/** Width of the latent code; routing splits it into two halves. */
export const LATENT = 32;
const HALF = LATENT / 2;

/**
 * Floating-point operations of one training step per example: 2·in·out for the forward product
 * of each layer and twice that for the backward (dx and dW), over the encoder, the decoder and
 * both half-decoders. Ignores bias, activation, loss and Adam, which are O(in+out) per layer.
 */
export function flopsPerExample(): number {
  const macs = (widths: readonly number[]) =>
    widths.slice(1).reduce((sum, out, i) => sum + widths[i]! * out, 0);
  return 6 * (macs(STACKS.encoder) + macs(STACKS.decoder) + 2 * macs(STACKS.halfDecoder));
}

function dense(inputs: number, outputs: number, bias: boolean, relu: boolean): Dense {
  // PyTorch's default nn.Linear initialisation, U(-1/sqrt(in), 1/sqrt(in)).
  const bound = 1 / Math.sqrt(inputs);
  // In a tidy: a variable keeps its own reference to the data, and the initial tensor must go.
  const initial = (shape: number[]) =>
    tf.tidy(() => tf.variable(tf.randomUniform(shape, -bound, bound)));
  return { w: initial([inputs, outputs]), b: bias ? initial([outputs]) : null, relu };
}

function stack(widths: readonly number[], lastBias: boolean): Dense[] {
  return widths.slice(1).map((out, i) => {
    const last = i === widths.length - 2;
    return dense(widths[i]!, out, !last || lastBias, !last);
  });
}

/** How a dense layer is computed; the bench compares them. */
export type DenseStyle = 'plain' | 'fused' | 'library';

function forward(layers: Dense[], x: tf.Tensor2D, style: DenseStyle): tf.Tensor2D {
  let h = x;
  for (const layer of layers) {
    const w = layer.w as tf.Tensor2D;
    if (style === 'library') {
      // The library's dense op: bias and ReLU fused even under a gradient tape (on WebGPU).
      const bias = layer.b as tf.Tensor1D | null;
      h = denseLayer(h, w, bias, layer.relu ? 'relu' : 'linear');
      continue;
    }
    if (style === 'fused') {
      // Inside a gradient tape tfjs only fuses a linear activation, so ReLU stays separate.
      h = tf.fused.matMul({ a: h, b: w, bias: layer.b ?? undefined }) as tf.Tensor2D;
    } else {
      h = tf.matMul(h, w);
      if (layer.b !== null) h = tf.add(h, layer.b);
    }
    if (layer.relu) h = tf.relu(h);
  }
  return h;
}

/** The model, its optimizer and a training step. */
export interface PaperModel {
  readonly variables: tf.Variable[];
  /** Forward and backward pass: the loss and the gradient of every variable. */
  gradients(
    x: tf.Tensor2D,
    mask: tf.Tensor2D | null,
  ): { loss: tf.Scalar; grads: tf.NamedTensorMap };
  /** One Adam update (`torchAdam`); disposes `grads`. */
  apply(grads: tf.NamedTensorMap): void;
  /** `gradients` then `apply`: one training step. Returns the loss, which the caller disposes. */
  step(x: tf.Tensor2D, mask: tf.Tensor2D | null): tf.Scalar;
  dispose(): void;
}

/**
 * Builds the model on the current backend. `mask` in {@link PaperModel.step} routes the latent
 * (per-example `[B, 32]`, see {@link groupMask}); `null` trains without routing.
 */
export function buildPaperModel(style: DenseStyle = 'plain'): PaperModel {
  const encoder = stack(STACKS.encoder, false);
  const decoder = stack(STACKS.decoder, true);
  const halves = [stack(STACKS.halfDecoder, true), stack(STACKS.halfDecoder, true)];
  const layers = [...encoder, ...decoder, ...halves.flat()];
  const variables = layers.flatMap((l) => (l.b === null ? [l.w] : [l.w, l.b]));
  // The library's own optimiser, as the experiments train with it.
  const optimizer = torchAdam({ learningRate: 1e-3 });

  const loss = (x: tf.Tensor2D, mask: tf.Tensor2D | null): tf.Scalar => {
    const z = forward(encoder, x, style);
    const routed = mask === null ? z : routeGradients(z, mask);
    const reconstruction = meanAbsoluteError(forward(decoder, routed, style), x);
    // The certificates learn from the latent but must not shape it.
    const detached = stopGradient(z);
    const certificates = halves.map((half, i) =>
      meanAbsoluteError(forward(half, tf.slice(detached, [0, i * HALF], [-1, HALF]), style), x),
    );
    return tf.addN([reconstruction, ...certificates]) as tf.Scalar;
  };

  const model: PaperModel = {
    variables,
    gradients: (x, mask) => {
      const { value, grads } = optimizer.computeGradients(() => loss(x, mask), variables);
      return { loss: value, grads };
    },
    apply: (grads) => {
      optimizer.applyGradients(grads);
      tf.dispose(grads);
    },
    step: (x, mask) => {
      const { loss: value, grads } = model.gradients(x, mask);
      model.apply(grads);
      return value;
    },
    dispose: () => {
      optimizer.dispose();
      for (const v of variables) v.dispose();
    },
  };
  return model;
}

/**
 * The routing mask of the MNIST split: digits 0–4 may update latent dims [0, 16), digits 5–9
 * dims [16, 32). One row per example.
 */
export function groupMask(labels: Int32Array | number[]): tf.Tensor2D {
  const values = new Float32Array(labels.length * LATENT);
  Array.from(labels).forEach((label, row) => {
    const start = label < 5 ? 0 : HALF;
    values.fill(1, row * LATENT + start, row * LATENT + start + HALF);
  });
  return tf.tensor2d(values, [labels.length, LATENT]);
}
