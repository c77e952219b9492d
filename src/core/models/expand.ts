import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { GradientRoutingError } from '../errors.js';
import {
  type MlpWeights,
  type ParameterValues,
  seededNormal,
  TinyTransformer,
  type UnitRegion,
} from './transformer.js';

/** The region name the expansion's hidden units get. */
export const EXPANDED_REGION = 'expanded';

/** Options of the expansion functions. */
export interface ExpandOptions {
  /** Hidden units to add, `k >= 1`. */
  readonly units: number;
  /** Seed of the new weights. */
  readonly seed: number;
  /** Standard deviation of the new `W_in` columns and `W_out` rows. Default 0.02 (GPT-2's). */
  readonly std?: number;
  /**
   * Standard deviation of the new `W_out` rows when it differs from `std`: a transformer whose
   * output projections start at `0.02/sqrt(2·layers)` (GPT-2's scheme) gives its new rows the
   * same, as the paper's re-initialised expanded model does. Default `std`.
   */
  readonly outStd?: number;
  /** Name of the new units' region. Default `'expanded'`. */
  readonly name?: string;
}

function checkUnits(units: number): void {
  if (!(Number.isInteger(units) && units > 0)) {
    throw new GradientRoutingError(
      `an expansion adds a positive whole number of units, got ${units}.`,
    );
  }
}

/**
 * Widens a dense MLP block's hidden layer by `k` units: `W_in [d, h] → [d, h+k]`,
 * `b_in [h] → [h+k]`, `W_out [h, d] → [h+k, d]`. The new `W_in` columns and `W_out` rows are
 * random (normal, seeded), the new biases zero — the paper's scheme — and the old weights are
 * copied unchanged, so the old units compute exactly what they did. Returns new tensors (the
 * caller disposes them and still owns `weights`) and the new units' region `[h, h+k)`.
 */
export function expandMlpWeights(
  weights: MlpWeights,
  options: ExpandOptions,
): { weights: MlpWeights; region: UnitRegion } {
  checkUnits(options.units);
  const [d, h] = weights.inWeight.shape as [number, number];
  const k = options.units;
  const std = options.std ?? 0.02;
  const outStd = options.outStd ?? std;
  const normal = seededNormal(options.seed);
  const outDim = weights.outWeight.shape[1]!;
  const expanded = tf.tidy(() => ({
    inWeight: tf.concat([weights.inWeight, tf.tensor2d(normal(d * k, std), [d, k])], 1),
    inBias: tf.concat([weights.inBias, tf.zeros([k])], 0),
    outWeight: tf.concat(
      [weights.outWeight, tf.tensor2d(normal(k * outDim, outStd), [k, outDim])],
      0,
    ),
    outBias: tf.clone(weights.outBias),
  }));
  return {
    weights: expanded,
    region: { name: options.name ?? EXPANDED_REGION, start: h, end: h + k },
  };
}

/**
 * Removes hidden units `[region.start, region.end)` from a dense MLP block (ERA's "ablate"):
 * the block then computes exactly what the wider block computed with those units' activations
 * set to 0, up to float32 rounding of the shorter sum. Returns new tensors.
 */
export function contractMlpWeights(weights: MlpWeights, region: UnitRegion): MlpWeights {
  const h = weights.inWeight.shape[1]!;
  if (!(region.start >= 0 && region.start < region.end && region.end <= h)) {
    throw new GradientRoutingError(
      `cannot remove units [${region.start}, ${region.end}) from a hidden layer of ${h} units.`,
    );
  }
  const keep = (t: tf.Tensor, axis: number) => {
    const parts: tf.Tensor[] = [];
    const size = t.shape[axis]!;
    const slice = (start: number, end: number) => {
      if (end <= start) return;
      const begin = t.shape.map((_, i) => (i === axis ? start : 0));
      const sizes = t.shape.map((s, i) => (i === axis ? end - start : s));
      parts.push(tf.slice(t, begin, sizes));
    };
    slice(0, region.start);
    slice(region.end, size);
    return parts.length === 1 ? parts[0]! : tf.concat(parts, axis);
  };
  return tf.tidy(() => ({
    inWeight: keep(weights.inWeight, 1),
    inBias: keep(weights.inBias, 0),
    outWeight: keep(weights.outWeight, 0),
    outBias: tf.clone(weights.outBias),
  }));
}

function rebuild(
  model: TinyTransformer,
  replace: (
    layer: number,
    mlp: MlpWeights,
  ) => { weights: MlpWeights; regions: UnitRegion[] } | null,
): TinyTransformer {
  const values = new Map<string, tf.Tensor>();
  const regions = new Map<number, UnitRegion[]>();
  const created: tf.Tensor[] = [];
  try {
    for (const [name, v] of model.namedParameters()) values.set(name, v);
    for (let i = 0; i < model.config.numLayers; i++) {
      const result = replace(i, model.mlpWeights(i));
      if (result === null) {
        regions.set(i, [...model.mlpRegions(i)]);
        continue;
      }
      const p = `blocks.${i}.mlp`;
      const w = result.weights;
      values.set(`${p}.in.weight`, w.inWeight);
      values.set(`${p}.in.bias`, w.inBias);
      values.set(`${p}.out.weight`, w.outWeight);
      values.set(`${p}.out.bias`, w.outBias);
      created.push(w.inWeight, w.inBias, w.outWeight, w.outBias);
      regions.set(i, result.regions);
    }
    return new TinyTransformer(model.config, values as ParameterValues, regions);
  } finally {
    for (const t of created) t.dispose();
  }
}

/** Options of {@link expandTransformerMlps}. */
export interface ExpandTransformerOptions extends ExpandOptions {
  /** The blocks whose MLPs get the new units (the paper: layers 0-4 of 8). */
  readonly layers: readonly number[];
}

/**
 * A copy of `model` whose MLPs in `layers` have `units` more hidden units each, named region
 * `'expanded'` (see {@link expandMlpWeights}); the other blocks are copied unchanged (the
 * paper's "zero elsewhere": they get no new units). `model` is left as it was.
 */
export function expandTransformerMlps(
  model: TinyTransformer,
  options: ExpandTransformerOptions,
): TinyTransformer {
  const layers = new Set(options.layers);
  for (const layer of layers) {
    if (!(Number.isInteger(layer) && layer >= 0 && layer < model.config.numLayers)) {
      throw new GradientRoutingError(
        `cannot expand block ${layer}; the model has blocks 0..${model.config.numLayers - 1}.`,
      );
    }
  }
  const name = options.name ?? EXPANDED_REGION;
  return rebuild(model, (layer, mlp) => {
    if (!layers.has(layer)) return null;
    if (model.mlpRegions(layer).some((r) => r.name === name)) {
      throw new GradientRoutingError(
        `block ${layer} already has a region '${name}'; contract it first or pass another name.`,
      );
    }
    const { weights, region } = expandMlpWeights(mlp, { ...options, seed: options.seed + layer });
    return { weights, regions: [...model.mlpRegions(layer), region] };
  });
}

/**
 * A copy of `model` with the units of region `name` removed from every MLP that has them (ERA's
 * ablation): parameters return to their shapes before expansion, and the outputs equal the
 * expanded model's with those units' activations set to 0. `model` is left as it was.
 */
export function contractTransformerMlps(
  model: TinyTransformer,
  name: string = EXPANDED_REGION,
): TinyTransformer {
  let found = false;
  const result = rebuild(model, (layer, mlp) => {
    const region = model.mlpRegions(layer).find((r) => r.name === name);
    if (region === undefined) return null;
    found = true;
    const size = region.end - region.start;
    const rest = model
      .mlpRegions(layer)
      .filter((r) => r !== region)
      .map((r) => (r.start >= region.end ? { ...r, start: r.start - size, end: r.end - size } : r));
    return { weights: contractMlpWeights(mlp, region), regions: rest };
  });
  if (!found) {
    result.dispose();
    throw new GradientRoutingError(
      `no MLP of this transformer has a region '${name}'; expand it first with expandTransformerMlps().`,
    );
  }
  return result;
}

/** A tfjs-layers `Dense` layer, as the pair functions take and return it. */
type DenseLayer = tfl.layers.Layer;

function denseParts(
  layer: DenseLayer,
  role: string,
): { kernel: tf.Tensor2D; bias: tf.Tensor1D | null } {
  if (layer.getClassName() !== 'Dense' || !layer.built) {
    throw new GradientRoutingError(
      `the ${role} layer must be a built tfjs-layers Dense layer (call the model once or build it), got ${layer.getClassName()}${layer.built ? '' : ' (not built)'}.`,
    );
  }
  const [kernel, bias] = layer.getWeights();
  return { kernel: kernel as tf.Tensor2D, bias: (bias as tf.Tensor1D | undefined) ?? null };
}

function denseLike(
  layer: DenseLayer,
  units: number,
  inputDim: number,
  weights: tf.Tensor[],
): DenseLayer {
  const config = { ...layer.getConfig(), units, name: undefined } as Record<string, unknown>;
  delete config.name;
  delete config.batchInputShape;
  const dense = tfl.layers.dense(config as unknown as Parameters<typeof tfl.layers.dense>[0]);
  dense.build([null, inputDim]);
  dense.setWeights(weights);
  return dense;
}

/**
 * Widens a pair of tfjs-layers `Dense` layers `first → second` (first's output is second's
 * input) by `units` hidden units: new `Dense` layers, weights copied, new first-kernel columns
 * and second-kernel rows random (seeded), new first bias zero. Rebuild your model with the
 * returned layers (e.g. a new `tf.sequential`). The old layers are not changed.
 */
export function expandDensePair(
  first: DenseLayer,
  second: DenseLayer,
  options: ExpandOptions,
): { first: DenseLayer; second: DenseLayer; region: UnitRegion } {
  const a = denseParts(first, 'first');
  const b = denseParts(second, 'second');
  const h = a.kernel.shape[1];
  if (b.kernel.shape[0] !== h) {
    throw new GradientRoutingError(
      `the first Dense layer has ${h} units but the second takes ${b.kernel.shape[0]} inputs; pass two consecutive Dense layers.`,
    );
  }
  const outDim = b.kernel.shape[1];
  const zerosIn = a.bias ?? tf.zeros([h]);
  const zerosOut = b.bias ?? tf.zeros([outDim]);
  try {
    const { weights, region } = expandMlpWeights(
      { inWeight: a.kernel, inBias: zerosIn, outWeight: b.kernel, outBias: zerosOut },
      options,
    );
    const k = options.units;
    const newFirst = denseLike(
      first,
      h + k,
      a.kernel.shape[0],
      a.bias === null ? [weights.inWeight] : [weights.inWeight, weights.inBias],
    );
    const newSecond = denseLike(
      second,
      outDim,
      h + k,
      b.bias === null ? [weights.outWeight] : [weights.outWeight, weights.outBias],
    );
    for (const t of Object.values(weights)) (t as tf.Tensor).dispose();
    return { first: newFirst, second: newSecond, region };
  } finally {
    if (a.bias === null) zerosIn.dispose();
    if (b.bias === null) zerosOut.dispose();
  }
}

/**
 * Removes hidden units `region` from a pair of tfjs-layers `Dense` layers (ERA's ablation on a
 * tfjs-layers model): new layers computing what the pair computed with those units set to 0.
 */
export function contractDensePair(
  first: DenseLayer,
  second: DenseLayer,
  region: UnitRegion,
): { first: DenseLayer; second: DenseLayer } {
  const a = denseParts(first, 'first');
  const b = denseParts(second, 'second');
  const h = a.kernel.shape[1];
  const outDim = b.kernel.shape[1];
  const zerosIn = a.bias ?? tf.zeros([h]);
  const zerosOut = b.bias ?? tf.zeros([outDim]);
  try {
    const weights = contractMlpWeights(
      { inWeight: a.kernel, inBias: zerosIn, outWeight: b.kernel, outBias: zerosOut },
      region,
    );
    const kept = h - (region.end - region.start);
    const newFirst = denseLike(
      first,
      kept,
      a.kernel.shape[0],
      a.bias === null ? [weights.inWeight] : [weights.inWeight, weights.inBias],
    );
    const newSecond = denseLike(
      second,
      outDim,
      kept,
      b.bias === null ? [weights.outWeight] : [weights.outWeight, weights.outBias],
    );
    for (const t of Object.values(weights)) (t as tf.Tensor).dispose();
    return { first: newFirst, second: newSecond };
  } finally {
    if (a.bias === null) zerosIn.dispose();
    if (b.bias === null) zerosOut.dispose();
  }
}
