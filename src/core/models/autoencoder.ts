import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { GradientRoutingError } from '../errors.js';
import { denseStack } from '../layers/dense-stack.js';
import { correlationPenalty, latentL1 } from '../losses/latent.js';
import {
  groupedMeanAbsoluteError,
  meanAbsoluteError,
  perExampleMeanAbsoluteError,
} from '../losses/mae.js';
import { compileLabelRoutes, type LabelRoute, type UnroutedPolicy } from '../masks/labels.js';
import { type Region, regionList, sliceRegions, validateRegions } from '../masks/regions.js';
import { RouteTable } from '../masks/table.js';
import { perLabelMeans } from '../probing/split.js';
import { ablate } from '../routing/ablate.js';
import { routeGradients, stopGradient } from '../routing/route.js';

/** Everything that defines a {@link RoutedAutoencoder}; saved with it. */
export interface RoutedAutoencoderConfig {
  /** Features per example, e.g. 784 for flattened MNIST. */
  inputDim: number;
  /** Hidden sizes of the encoder, e.g. `[2048, 512]`; the decoders mirror them. */
  hidden: number[];
  /** Size of the latent code, e.g. 32. */
  latentDim: number;
  /** Which labels may update which latent regions, e.g. digits 0–4 → `[0, 16)`. */
  routes: LabelRoute[];
  /** What labels in no route do (see {@link UnroutedPolicy}); `'error'` by default. */
  unrouted?: UnroutedPolicy;
  /** Labels are integers in `[0, numClasses)`; defaults to the largest routed label + 1. */
  numClasses?: number;
  /**
   * Latent slices that get a concurrent "certificate" decoder trained on the stopped latent:
   * `'routes'` (the default) gives one per route, reading that route's regions; `[]` none.
   */
  certificates?: 'routes' | Array<Region | Region[]>;
  /** Seed of the weight initialisers. */
  seed?: number;
}

/** Weights of the loss terms; the defaults are the paper's. */
export interface RoutedLossWeights {
  /** L1 of each route's latent region, `|z_r|.mean(0).sum()`. Default 3e-3. */
  l1?: number;
  /** Mean |correlation| between the regions of each pair of routes. Default 0.1. */
  correlation?: number;
  /** Certificates' reconstruction MAE. Default 1. */
  certificates?: number;
}

/** The loss terms of one batch, each a scalar. */
export interface RoutedLossTerms {
  total: tf.Scalar;
  /** Sum over routes of the decoder's MAE on that route's examples, each a mean over its own. */
  reconstruction: tf.Scalar;
  /** Sum of the certificates' MAE on all examples (zero when there are none). */
  certificates: tf.Scalar;
  l1: tf.Scalar;
  correlation: tf.Scalar;
}

/** Options of {@link RoutedAutoencoder.loss} and {@link RoutedAutoencoder.trainStep}. */
export interface RoutedStepOptions {
  /** Route the latent's gradient (default true). False is the control: same losses, no routing. */
  routed?: boolean;
  /** Loss weights; the paper's by default. */
  weights?: RoutedLossWeights;
}

/** Per-label mean absolute errors on a dataset. */
export interface PerLabelErrors {
  /** The decoder on the whole latent, one entry per label (NaN for a label with no example). */
  decoder: number[];
  /** Each certificate, in the order of {@link RoutedAutoencoder.certificateSlices}. */
  certificates: number[][];
}

const DEFAULT_WEIGHTS: Required<RoutedLossWeights> = {
  l1: 3e-3,
  correlation: 0.1,
  certificates: 1,
};
const ARTIFACT_FORMAT = 'gradient-routing/RoutedAutoencoder';
const ARTIFACT_VERSION = 1;

/** How many features a region list covers. */
function regionWidth(regions: readonly Region[]): number {
  return regions.reduce((width, [start, end]) => width + end - start, 0);
}

/**
 * An MLP autoencoder whose latent is split by gradient routing (the paper's Section 4.1 model).
 *
 * The encoder maps `inputDim → hidden… → latentDim` (no bias on the latent layer) and one shared
 * decoder maps the latent back. During training, each example's gradient may enter only the
 * latent regions of its label's route, through {@link routeGradients} in a single decoder pass
 * with per-example masks. The forward pass sees the whole latent. Optional certificate decoders
 * read slices of the stopped latent, measuring what each slice holds while training.
 *
 * @example
 * ```ts
 * const model = new RoutedAutoencoder({
 *   inputDim: 784, hidden: [512, 128], latentDim: 32,
 *   routes: [
 *     { labels: [0, 1, 2, 3, 4], region: [0, 16] },
 *     { labels: [5, 6, 7, 8, 9], region: [16, 32] },
 *   ],
 * });
 * const optimizer = torchAdam({ learningRate: 1e-3, weightDecay: 5e-5 });
 * const loss = model.trainStep(optimizer, xBatch, labelBatch); // a scalar; dispose it
 * ```
 */
export class RoutedAutoencoder {
  readonly config: Readonly<RoutedAutoencoderConfig>;
  readonly encoder: tfl.Sequential;
  readonly decoder: tfl.Sequential;
  /** Certificate decoders, one per entry of {@link RoutedAutoencoder.certificateSlices}. */
  readonly certificateDecoders: tfl.Sequential[];
  /** The latent regions each certificate reads. */
  readonly certificateSlices: ReadonlyArray<readonly Region[]>;
  /** The routing rules in lookup-table form; its masks are one gather per batch. */
  readonly routeTable: RouteTable;
  private readonly routeRegions: ReadonlyArray<readonly Region[]>;

  /** @throws If the sizes, routes or certificate slices are invalid. */
  constructor(config: RoutedAutoencoderConfig) {
    const { inputDim, hidden, latentDim, routes, seed = 0 } = config;
    const spec = compileLabelRoutes(latentDim, routes, {
      unrouted: config.unrouted ?? 'error',
      ...(config.numClasses === undefined ? {} : { numClasses: config.numClasses }),
    });
    this.routeRegions = routes.map((route) => regionList(route.region));
    const slices =
      config.certificates === undefined || config.certificates === 'routes'
        ? this.routeRegions
        : config.certificates.map((slice) => regionList(slice));
    for (const slice of slices) validateRegions(latentDim, slice);
    this.config = { ...config, hidden: [...hidden], routes: routes.map((r) => ({ ...r })) };
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
    this.routeTable = new RouteTable(spec);
  }

  /** Every trainable variable: encoder, decoder and certificates. */
  get trainableVariables(): tf.Variable[] {
    return this.networks().flatMap((net) =>
      net.trainableWeights.map((w) => w.read() as tf.Variable),
    );
  }

  /** The latent code `[B, latentDim]` of a batch `[B, inputDim]`. */
  encode(x: tf.Tensor2D): tf.Tensor2D {
    return this.encoder.apply(x) as tf.Tensor2D;
  }

  /** The decoder's reconstruction of a latent batch. */
  decode(z: tf.Tensor2D): tf.Tensor2D {
    return this.decoder.apply(z) as tf.Tensor2D;
  }

  /** Encode then decode. */
  reconstruct(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.decode(this.encode(x)));
  }

  /** Reconstruction with the given latent regions switched off (zeroed) — the paper's ablation. */
  reconstructAblated(x: tf.Tensor2D, regions: Region | readonly Region[]): tf.Tensor2D {
    return tf.tidy(() => this.decode(ablate(this.encode(x), regions)));
  }

  /** Each certificate's reconstruction from its slice of the latent `z`. */
  certify(z: tf.Tensor2D): tf.Tensor2D[] {
    return this.certificateDecoders.map((net, i) =>
      tf.tidy(() => net.apply(sliceRegions(z, this.certificateSlices[i]!)) as tf.Tensor2D),
    );
  }

  /**
   * The paper's training loss of one batch: routed grouped reconstruction + certificates on the
   * stopped latent + L1 of each route's region + correlation between routes' regions.
   *
   * @param x - Inputs `[B, inputDim]`.
   * @param labels - Integer labels `[B]` (int32), selecting each example's route.
   */
  loss(x: tf.Tensor2D, labels: tf.Tensor1D, options: RoutedStepOptions = {}): RoutedLossTerms {
    const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
    const routed = options.routed ?? true;
    return tf.tidy(() => {
      const z = this.encode(x);
      // Rows of routed labels are their route's index; the unrouted row falls outside the groups.
      // One lookup serves both the masks and the grouping of the loss.
      const rows = this.routeTable.deviceRowsFor(labels);
      const latent = routed ? routeGradients(z, this.routeTable.masksOfRows(rows)) : z;
      const reconstruction = groupedMeanAbsoluteError(this.decode(latent), x, rows, {
        numGroups: this.routeRegions.length,
      });
      // Terms with weight 0 are not computed: they would cost a pass and add signed zeros.
      const certificates =
        weights.certificates === 0
          ? tf.scalar(0)
          : sumOrZero(this.certify(stopGradient(z)).map((out) => meanAbsoluteError(out, x)));
      const l1 =
        weights.l1 === 0
          ? tf.scalar(0)
          : sumOrZero(this.routeRegions.map((regions) => latentL1(z, regions)));
      const correlation = weights.correlation === 0 ? tf.scalar(0) : this.correlationTerm(z);
      const weighted = [reconstruction];
      if (weights.certificates !== 0) weighted.push(tf.mul(certificates, weights.certificates));
      if (weights.l1 !== 0) weighted.push(tf.mul(l1, weights.l1));
      if (weights.correlation !== 0) weighted.push(tf.mul(correlation, weights.correlation));
      const total = sumOrZero(weighted);
      return { total, reconstruction, certificates, l1, correlation };
    });
  }

  /** Mean |correlation| over pairs of routes, each route's regions taken together. */
  private correlationTerm(z: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const pairs: tf.Scalar[] = [];
      this.routeRegions.forEach((left, a) => {
        this.routeRegions.slice(a + 1).forEach((right) => {
          const both = tf.concat([sliceRegions(z, left), sliceRegions(z, right)], 1);
          const split = regionWidth(left);
          pairs.push(correlationPenalty(both, [0, split], [split, split + regionWidth(right)]));
        });
      });
      return pairs.length === 0
        ? tf.scalar(0)
        : (tf.div(sumOrZero(pairs), pairs.length) as tf.Scalar);
    });
  }

  /**
   * One optimisation step on a batch. Returns the total loss as a scalar tensor (the caller
   * disposes it); nothing is read back from the device, so steps queue without syncing.
   */
  trainStep(
    optimizer: tf.Optimizer,
    x: tf.Tensor2D,
    labels: tf.Tensor1D,
    options: RoutedStepOptions = {},
  ): tf.Scalar {
    const loss = optimizer.minimize(
      () => this.loss(x, labels, options).total,
      true,
      this.trainableVariables,
    );
    if (loss === null)
      throw new GradientRoutingError('gradient-routing: the optimizer returned no loss.');
    return loss;
  }

  /**
   * Per-label MAE of the decoder and of each certificate on a dataset, computed in batches.
   * Label `k`'s entry is the mean over its examples of the per-example MAE (NaN if it has none).
   */
  async evaluate(
    x: tf.Tensor2D,
    labels: ArrayLike<number>,
    options: { batchSize?: number; numClasses?: number } = {},
  ): Promise<PerLabelErrors> {
    const batchSize = options.batchSize ?? 1000;
    const numClasses = options.numClasses ?? this.routeTable.numClasses;
    const count = x.shape[0];
    if (labels.length !== count) {
      throw new GradientRoutingError(
        `gradient-routing: evaluate got ${count} examples but ${labels.length} labels; give one label per example.`,
      );
    }
    const heads = 1 + this.certificateDecoders.length;
    const perExample = Array.from({ length: heads }, () => new Float32Array(count));
    for (let start = 0; start < count; start += batchSize) {
      const size = Math.min(batchSize, count - start);
      const errors = tf.tidy(() => {
        const batch = tf.slice(x, [start, 0], [size, -1]);
        const z = this.encode(batch);
        const outputs = [this.decode(z), ...this.certify(z)];
        return tf.stack(outputs.map((out) => perExampleMeanAbsoluteError(out, batch)));
      });
      // Read asynchronously: WebGPU in Node cannot read synchronously.
      const values = (await errors.data()) as Float32Array;
      errors.dispose();
      perExample.forEach((head, h) => {
        head.set(values.subarray(h * size, (h + 1) * size), start);
      });
    }
    const [decoder, ...certificates] = perExample.map((head) =>
      perLabelMeans(head, labels, numClasses),
    );
    return { decoder: decoder!, certificates };
  }

  /** Serialises the config and every weight through any tfjs IO handler (bit-exact). */
  async save(handler: tf.io.IOHandler): Promise<tf.io.SaveResult> {
    if (handler.save === undefined) {
      throw new GradientRoutingError(
        'gradient-routing: this IO handler cannot save; pass one made for saving.',
      );
    }
    const named: tf.NamedTensorMap = {};
    this.networks().forEach((net, n) => {
      net.getWeights().forEach((w, i) => {
        named[`${n}/${i}`] = w;
      });
    });
    const { data, specs } = await tf.io.encodeWeights(named);
    return handler.save({
      modelTopology: { format: ARTIFACT_FORMAT, version: ARTIFACT_VERSION, config: this.config },
      weightSpecs: specs,
      weightData: data,
      format: ARTIFACT_FORMAT,
      generatedBy: 'gradient-routing',
    });
  }

  /** Loads a model saved with {@link RoutedAutoencoder.save}. */
  static async load(handler: tf.io.IOHandler): Promise<RoutedAutoencoder> {
    if (handler.load === undefined) {
      throw new GradientRoutingError(
        'gradient-routing: this IO handler cannot load; pass one made for loading.',
      );
    }
    const artifacts = await handler.load();
    const topology = artifacts.modelTopology as
      | { format?: string; version?: number; config?: RoutedAutoencoderConfig }
      | undefined;
    if (topology?.format !== ARTIFACT_FORMAT || topology.config === undefined) {
      throw new GradientRoutingError(
        `gradient-routing: these artifacts are not a RoutedAutoencoder (format '${String(topology?.format)}'); load them with the function that saved them.`,
      );
    }
    if (artifacts.weightData === undefined || artifacts.weightSpecs === undefined) {
      throw new GradientRoutingError(
        'gradient-routing: the saved RoutedAutoencoder has no weights; save it again.',
      );
    }
    const model = new RoutedAutoencoder(topology.config);
    const weights = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
    try {
      model.networks().forEach((net, n) => {
        net.setWeights(
          net.getWeights().map((_, i) => {
            const weight = weights[`${n}/${i}`];
            if (weight === undefined) {
              throw new GradientRoutingError(
                `gradient-routing: the saved weights lack '${n}/${i}'; the file is incomplete.`,
              );
            }
            return weight;
          }),
        );
      });
    } catch (error) {
      model.dispose();
      throw error;
    } finally {
      tf.dispose(weights);
    }
    return model;
  }

  /** The serialisable config, as tfjs-layers objects give it. */
  getConfig(): RoutedAutoencoderConfig {
    return structuredClone(this.config) as RoutedAutoencoderConfig;
  }

  /** Frees every weight and lookup tensor. */
  dispose(): void {
    for (const net of this.networks()) net.dispose();
    this.routeTable.dispose();
  }

  private networks(): tfl.Sequential[] {
    return [this.encoder, this.decoder, ...this.certificateDecoders];
  }
}

function sumOrZero(terms: tf.Scalar[]): tf.Scalar {
  if (terms.length === 0) return tf.scalar(0);
  return (terms.length === 1 ? terms[0]! : tf.addN(terms)) as tf.Scalar;
}
