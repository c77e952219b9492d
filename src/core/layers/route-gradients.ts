import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { GradientRoutingError } from '../errors.js';
import { type Region, regionList, regionMaskValues, validateRegions } from '../masks/regions.js';
import { routeGradients } from '../routing/route.js';

/** tfjs-layers' `LayerArgs`, which the package does not export by name. */
type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;

/** A tfjs-layers shape: `null` for sizes unknown until the layer runs, such as the batch. */
type LayerShape = Array<number | null>;

/** Options of the {@link RouteGradients} layer, on top of tfjs-layers' usual ones (`name`, …). */
export interface RouteGradientsArgs extends LayerArgs {
  /**
   * Fixed feature regions `[start, end)` of the last axis that receive gradient; everything
   * else gets exactly +0. When set, the layer takes the routed tensor alone as its input.
   * When not set (the default), the layer takes `[x, mask]` and the mask, fed as a model input,
   * decides per example.
   */
  regions?: Region | readonly Region[];
}

/**
 * A pass-through layer that routes gradients (see {@link routeGradients}): its output is its
 * input bit for bit, and the gradient that flows back is `mask * dy`, exactly +0 where the mask
 * is 0. Use it in a tfjs-layers model to decide which examples may update which parts of the
 * layers before it.
 *
 * - Data-dependent mask: call it on `[x, mask]`, with `mask` a model input that broadcasts to
 *   `x` (e.g. `[batch, D]` or `[batch, 1]`) and feed the mask with the data in `fit`; feed ones at
 *   inference (the mask does not change the output).
 * - Fixed mask: give `regions` and call it on `x` alone.
 *
 * Registered with `tf.serialization.registerClass`, so a model containing it saves and loads
 * through `tf.io` once this module has been imported.
 *
 * @example
 * ```ts
 * const x = tfl.input({ shape: [8] });
 * const mask = tfl.input({ shape: [4] });
 * const hidden = tfl.layers.dense({ units: 4 }).apply(x) as tfl.SymbolicTensor;
 * const routed = new RouteGradients().apply([hidden, mask]) as tfl.SymbolicTensor;
 * const out = tfl.layers.dense({ units: 1 }).apply(routed) as tfl.SymbolicTensor;
 * const model = tfl.model({ inputs: [x, mask], outputs: out });
 * model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
 * await model.fit([xs, masks], ys);
 * ```
 */
export class RouteGradients extends tfl.layers.Layer {
  /** The name under which the layer is saved and registered for loading. */
  static className = 'RouteGradients';

  /** The fixed regions that receive gradient, or `undefined` when the mask is an input. */
  readonly regions: readonly Region[] | undefined;

  /** The fixed mask's values, cached per feature size. */
  private regionMaskCache: { size: number; values: number[] } | undefined;

  /** Regions are checked when the layer is applied, once the feature size is known. */
  constructor(args: RouteGradientsArgs = {}) {
    super(args);
    this.regions = args.regions === undefined ? undefined : regionList(args.regions);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const [x, mask] = this.splitShapes(inputShape);
    if (mask !== undefined && !maybeBroadcastsTo(mask, x)) {
      throw new GradientRoutingError(
        `gradient-routing: RouteGradients layer '${this.name}' got a mask of shape ` +
          `${formatLayerShape(mask)} that does not broadcast to its input of shape ` +
          `${formatLayerShape(x)}. Give the mask input the routed tensor's shape, or size 1 on ` +
          'the axes it should share (e.g. tfl.input({ shape: [1] }) for one weight per example).',
      );
    }
    if (this.regions !== undefined) {
      const size = x[x.length - 1];
      if (typeof size === 'number') validateRegions(size, this.regions);
    }
    return x;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      this.splitShapes(list.map((tensor) => tensor.shape));
      const [x, mask] = list as [tf.Tensor, tf.Tensor | undefined];
      return routeGradients(x, mask ?? this.fixedMask(x));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config = super.getConfig();
    if (this.regions !== undefined) {
      config.regions = this.regions.map((region) => [...region]);
    }
    return config;
  }

  /** Splits the input shapes into `[x, mask]`, checking that their count fits the mode. */
  private splitShapes(inputShape: tfl.Shape | tfl.Shape[]): [LayerShape, LayerShape | undefined] {
    const shapes = isShapeList(inputShape) ? inputShape : [inputShape];
    if (this.regions === undefined && shapes.length !== 2) {
      throw new GradientRoutingError(
        `gradient-routing: RouteGradients layer '${this.name}' takes two inputs [x, mask], got ` +
          `${shapes.length}. Apply it to [x, mask], or give it fixed regions ({ regions }) to ` +
          'route a single input.',
      );
    }
    if (this.regions !== undefined && shapes.length !== 1) {
      throw new GradientRoutingError(
        `gradient-routing: RouteGradients layer '${this.name}' has fixed regions and takes one ` +
          `input, got ${shapes.length}. Apply it to x alone, or drop regions to feed a mask input.`,
      );
    }
    return [shapes[0]!, shapes[1]];
  }

  private fixedMask(x: tf.Tensor): number[] {
    const size = x.shape[x.shape.length - 1];
    if (size === undefined) {
      throw new GradientRoutingError(
        `gradient-routing: RouteGradients layer '${this.name}' needs an input with a feature ` +
          'axis to apply its regions to; reshape scalars to [batch, features].',
      );
    }
    if (this.regionMaskCache?.size !== size) {
      this.regionMaskCache = {
        size,
        values: Array.from(regionMaskValues(size, this.regions ?? [])),
      };
    }
    return this.regionMaskCache.values;
  }
}

tf.serialization.registerClass(RouteGradients);

/**
 * Creates a {@link RouteGradients} layer, in the style of tfjs-layers' `tf.layers.dense(args)`.
 *
 * @example
 * ```ts
 * const routed = routeGradientsLayer({ regions: [0, 16] }).apply(hidden) as tfl.SymbolicTensor;
 * ```
 */
export function routeGradientsLayer(args: RouteGradientsArgs = {}): RouteGradients {
  return new RouteGradients(args);
}

function isShapeList(shape: tfl.Shape | tfl.Shape[]): shape is tfl.Shape[] {
  return Array.isArray(shape[0]);
}

/** Like `broadcastsTo`, with unknown (`null`) sizes taken to match whatever they meet. */
function maybeBroadcastsTo(mask: LayerShape, target: LayerShape): boolean {
  if (mask.length > target.length) return false;
  const offset = target.length - mask.length;
  return mask.every((size, axis) => {
    const other = target[axis + offset];
    return size === null || size === 1 || other === null || size === other;
  });
}

function formatLayerShape(shape: LayerShape): string {
  return `[${shape.map((size) => size ?? 'null').join(',')}]`;
}
