import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { denseStack } from '../layers/dense-stack.js';
import { ablate } from '../masks/ablate.js';
import { type Region, regionList, sliceRegions, validateRegions } from '../masks/regions.js';
import type { ForwardContext, HasRoutingPoints } from '../routing/points.js';

/** Everything that defines an {@link Autoencoder}; saved with it. */
export interface AutoencoderConfig {
  /** Features per example, e.g. 784 for flattened MNIST. */
  inputDim: number;
  /** Hidden sizes of the encoder, e.g. `[2048, 512]`; the decoders mirror them. */
  hidden: number[];
  /** Size of the latent code, e.g. 32. */
  latentDim: number;
  /**
   * Latent slices that get a "certificate" decoder of their own, each one region or several
   * (read together). The split objective trains them on the stopped latent. Default none.
   */
  certificates?: Array<Region | Region[]>;
  /** Seed of the weight initialisers. Default 0. */
  seed?: number;
}

/**
 * An MLP autoencoder with named routing points: `encoder.0` … (after each hidden layer of the
 * encoder, post-ReLU), `latent` (the code) and `decoder.0` … (after each hidden layer of the
 * decoder). The architecture of the paper's Section 4.1: the encoder maps
 * `inputDim → hidden… → latentDim` (no bias on the latent layer), one decoder mirrors it, and
 * optional certificate decoders read slices of the latent.
 *
 * The model itself routes nothing: a routing plan given through a {@link ForwardContext} does.
 * `splitObjective` is the paper's loss over this model.
 *
 * @example
 * ```ts
 * const model = new Autoencoder({ inputDim: 784, hidden: [512, 128], latentDim: 32 });
 * model.routingPoints; // ['encoder.0', 'encoder.1', 'latent', 'decoder.0', 'decoder.1']
 * const out = tf.tidy(() => model.reconstruct(x));
 * ```
 */
export class Autoencoder implements HasRoutingPoints {
  readonly config: Readonly<AutoencoderConfig>;
  readonly encoder: tfl.Sequential;
  readonly decoder: tfl.Sequential;
  /** Certificate decoders, one per entry of {@link Autoencoder.certificateSlices}. */
  readonly certificateDecoders: tfl.Sequential[];
  /** The latent regions each certificate reads. */
  readonly certificateSlices: ReadonlyArray<readonly Region[]>;
  readonly routingPoints: readonly string[];

  /** @throws `GradientRoutingError` if the sizes or certificate slices are invalid. */
  constructor(config: AutoencoderConfig) {
    const { inputDim, hidden, latentDim, seed = 0 } = config;
    const slices = (config.certificates ?? []).map((slice) => regionList(slice));
    for (const slice of slices) validateRegions(latentDim, slice);
    this.config = {
      ...config,
      hidden: [...hidden],
      certificates: slices.map((slice) => slice.map((region) => [...region] as const)),
    };
    this.certificateSlices = slices;
    this.encoder = denseStack([inputDim, ...hidden, latentDim], {
      lastBias: false,
      seed,
      name: 'encoder',
    });
    const mirrored = [...hidden].reverse();
    this.decoder = denseStack([latentDim, ...mirrored, inputDim], {
      seed: seed + 1,
      name: 'decoder',
    });
    this.certificateDecoders = slices.map((slice, i) =>
      denseStack([regionWidth(slice), ...mirrored, inputDim], {
        seed: seed + 2 + i,
        name: `certificate${i}`,
      }),
    );
    this.routingPoints = [
      ...hidden.map((_, i) => `encoder.${i}`),
      'latent',
      ...hidden.map((_, i) => `decoder.${i}`),
    ];
  }

  /** Every trainable variable: encoder, decoder and certificates. */
  get trainableVariables(): tf.Variable[] {
    return this.networks().flatMap((net) =>
      net.trainableWeights.map((w) => w.read() as tf.Variable),
    );
  }

  /**
   * The latent code `[B, latentDim]` of a batch `[B, inputDim]`, through the encoder's points.
   * With a context, call it inside `tf.tidy` (activations it captures live in your scope).
   */
  encode(x: tf.Tensor2D, context?: ForwardContext): tf.Tensor2D {
    return runLayers(this.encoder, x, context, (i, last) => (last ? 'latent' : `encoder.${i}`));
  }

  /** The decoder's reconstruction of a latent batch, through the decoder's points. */
  decode(z: tf.Tensor2D, context?: ForwardContext): tf.Tensor2D {
    return runLayers(this.decoder, z, context, (i, last) => (last ? undefined : `decoder.${i}`));
  }

  /** Encode then decode, with an optional routing context. */
  reconstruct(x: tf.Tensor2D, context?: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => this.decode(this.encode(x, context), context));
  }

  /** Reconstruction with the given latent regions switched off (zeroed): the paper's ablation. */
  reconstructAblated(x: tf.Tensor2D, regions: Region | readonly Region[]): tf.Tensor2D {
    return tf.tidy(() => this.decode(ablate(this.encode(x), regions)));
  }

  /** Each certificate's reconstruction from its slice of the latent `z`. */
  certify(z: tf.Tensor2D): tf.Tensor2D[] {
    return this.certificateDecoders.map((net, i) =>
      tf.tidy(() => net.apply(sliceRegions(z, this.certificateSlices[i]!)) as tf.Tensor2D),
    );
  }

  /** The serialisable config. */
  getConfig(): AutoencoderConfig {
    return structuredClone(this.config) as AutoencoderConfig;
  }

  /** The networks in a fixed order: encoder, decoder, certificates (for saving and loading). */
  networks(): tfl.Sequential[] {
    return [this.encoder, this.decoder, ...this.certificateDecoders];
  }

  /** Frees every weight. */
  dispose(): void {
    for (const net of this.networks()) net.dispose();
  }
}

/**
 * Applies a dense stack layer by layer (the same ops as applying the whole stack), calling the
 * context at the point after each layer that `pointAfter` names. With a context there is no
 * inner `tf.tidy`: captured activations must outlive this call, so the caller's tidy owns them.
 */
function runLayers(
  net: tfl.Sequential,
  input: tf.Tensor2D,
  context: ForwardContext | undefined,
  pointAfter: (layer: number, last: boolean) => string | undefined,
): tf.Tensor2D {
  if (context === undefined) return net.apply(input) as tf.Tensor2D;
  return net.layers.reduce((h, layer, i) => {
    const out = layer.apply(h) as tf.Tensor2D;
    const point = pointAfter(i, i === net.layers.length - 1);
    return point === undefined ? out : context.point(point, out);
  }, input);
}

/** How many features a region list covers. */
export function regionWidth(regions: readonly Region[]): number {
  return regions.reduce((width, [start, end]) => width + end - start, 0);
}
