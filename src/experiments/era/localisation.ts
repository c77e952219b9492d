/**
 * Where ERA put the forget concept, measured: how much of it was routed, how the trained
 * expansion responds to forget and retain tokens, what routing did to the gradient, and how the
 * ablation effect grew during training. Every figure is comparable between ERA and its control
 * (the same expanded model, never routed), which is what makes it a measurement of routing.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DisposableTableRule } from '../../core/masks/tokens.js';
import { EXPANDED_REGION } from '../../core/models/expand.js';
import { type TinyTransformer, tokenCrossEntropy } from '../../core/models/transformer.js';
import { forwardContext, type RoutingPlan } from '../../core/routing/points.js';
import { fail } from './config.js';
import { disposeBatch, makeBatch } from './data.js';

/** A labelled forget token counts as routed when its mask weight toward all-ones is below this. */
export const ROUTED_WEIGHT = 0.5;

/** How much of the forget concept the routing reached. */
export interface EraRoutingCoverage {
  /**
   * Share of the target tokens of the forget training documents (labelled or not) whose routing
   * weight is below 0.5: 0 when nothing is routed (control, no labels).
   */
  readonly routedShare: number;
  /** Routed (weight < 0.5) target tokens in the batches training saw, repeats counted. */
  readonly routedTokensSeen: number;
}

/** One expanded layer's activations on held-out forget and retain documents. */
export interface EraLayerActivation {
  readonly layer: number;
  /**
   * Over the real (not padding) tokens of forget documents: mean |activation| per unit of the
   * expansion and of the original units, and the mean norm of what each part writes to the
   * residual stream (`h_part · W_out[part]`).
   */
  readonly forget: EraUnitActivity;
  /** The same over retain documents. */
  readonly retain: EraUnitActivity;
  /**
   * Localisation ratio: (expanded / original on forget tokens) / (expanded / original on retain
   * tokens). Near 1 when the expansion treats the concept like everything else; above 1 when
   * the concept lives in the expansion more than elsewhere.
   */
  readonly ratio: number;
  /** The same ratio on what each part writes to the residual stream (its output norms). */
  readonly outputRatio: number;
}

/** Activity of the expansion and of the original units of one layer on one set of tokens. */
export interface EraUnitActivity {
  /** Mean |activation| per unit. */
  readonly expanded: number;
  readonly original: number;
  /** Mean norm per token of what the part writes to the residual stream. */
  readonly expandedOutput: number;
  readonly originalOutput: number;
}

/** What routing did to the gradient of forget tokens at one expanded layer. */
export interface EraLayerGradient {
  readonly layer: number;
  /** L2 norm of the routed gradient of `W_in` over the original units' columns. */
  readonly original: number;
  /** The same over the expansion's columns. */
  readonly expanded: number;
  /**
   * The routed gradient's component along the unrouted one, as a multiple of it, on the original
   * units: 1 when nothing is routed, the original-unit weight (the paper: −0.75, reversed) when
   * every token is routed fully.
   */
  readonly originalAlongPlain: number;
  /** The same on the expansion: 1 routed or not, up to the routing of later layers. */
  readonly expandedAlongPlain: number;
}

/** Held-out losses of the model during training, whole and with the expansion removed. */
export interface EraCheckpoint {
  /** Training steps done. */
  readonly step: number;
  readonly forget: number;
  readonly retain: number;
  /** With the expanded units deleted (what contraction would give at this step). */
  readonly forgetAblated: number;
  readonly retainAblated: number;
}

/** Every localisation figure of one run of ERA or the control. */
export interface EraLocalisation {
  readonly routing: EraRoutingCoverage;
  /** Per expanded layer, of the trained model. */
  readonly activations: EraLayerActivation[];
  /** Per expanded layer, on a fixed probe batch of forget documents, at the trained model. */
  readonly gradients: EraLayerGradient[];
  /** Every 10 % of training (the last one is the trained model). */
  readonly checkpoints: EraCheckpoint[];
}

/** The share of `docs`' target tokens whose weight in `frequency` is below 0.5 (null: all). */
export function routedTokenCount(
  docs: readonly Int32Array[],
  contextLength: number,
  frequency: Float32Array | null,
): { routed: number; tokens: number } {
  let routed = 0;
  let tokens = 0;
  for (const doc of docs) {
    const end = Math.min(doc.length, contextLength + 1);
    for (let t = 1; t < end; t++) {
      tokens += 1;
      if (frequency === null || frequency[doc[t]!]! < ROUTED_WEIGHT) routed += 1;
    }
  }
  return { routed, tokens };
}

function expandedRegion(model: TinyTransformer, layer: number) {
  const region = model.mlpRegions(layer).find((r) => r.name === EXPANDED_REGION);
  if (region === undefined) {
    fail(`block ${layer} has no '${EXPANDED_REGION}' region; measure an expanded model.`);
  }
  return region;
}

/**
 * Mean |activation| per unit, on the expansion and on the original units of each expanded
 * layer, over the real tokens of `forgetDocs` and of `retainDocs`, and their localisation ratio.
 */
export async function expansionActivations(
  model: TinyTransformer,
  layers: readonly number[],
  forgetDocs: readonly Int32Array[],
  retainDocs: readonly Int32Array[],
  batchSize = 64,
): Promise<EraLayerActivation[]> {
  const points = layers.map((l) => `blocks.${l}.mlp.hidden`);
  const means = async (docs: readonly Int32Array[]) => {
    const sums = layers.map(() => ({ expanded: 0, original: 0, expandedOut: 0, originalOut: 0 }));
    let tokens = 0;
    for (let start = 0; start < docs.length; start += batchSize) {
      const batch = makeBatch(
        docs.slice(start, start + batchSize),
        model.config.contextLength,
        null,
        null,
      );
      const parts = tf.tidy(() => {
        const context = forwardContext(model, { capture: points });
        model.forward(batch.inputs, context);
        const real = batch.weights;
        return [
          tf.sum(real),
          ...layers.flatMap((layer, i) => {
            const h = context.captured.get(points[i]!)! as tf.Tensor3D;
            const region = expandedRegion(model, layer);
            const width = model.mlpWidth(layer);
            const outWeight = model.mlpWeights(layer).outWeight;
            const mask = tf.tensor1d(
              Array.from({ length: width }, (_, u) =>
                u >= region.start && u < region.end ? 1 : 0,
              ),
            );
            const perToken = (units: tf.Tensor) => {
              const part = tf.mul(h, units);
              // Mean |activation| per token over the part, and the norm of what it writes.
              const written = tf.norm(tf.matMul(tf.reshape(part, [-1, width]), outWeight), 2, 1);
              return [
                tf.sum(tf.mul(tf.sum(tf.abs(part), 2), real)),
                tf.sum(tf.mul(tf.reshape(written, real.shape), real)),
              ];
            };
            return [...perToken(mask), ...perToken(tf.sub(1, mask))];
          }),
        ];
      });
      const values = await Promise.all(parts.map(async (t) => (await t.data())[0]!));
      tf.dispose(parts);
      disposeBatch(batch);
      tokens += values[0]!;
      layers.forEach((_, i) => {
        sums[i]!.expanded += values[1 + 4 * i]!;
        sums[i]!.expandedOut += values[2 + 4 * i]!;
        sums[i]!.original += values[3 + 4 * i]!;
        sums[i]!.originalOut += values[4 + 4 * i]!;
      });
    }
    return layers.map((layer, i) => {
      const region = expandedRegion(model, layer);
      const size = region.end - region.start;
      return {
        expanded: sums[i]!.expanded / (tokens * size),
        original: sums[i]!.original / (tokens * (model.mlpWidth(layer) - size)),
        expandedOutput: sums[i]!.expandedOut / tokens,
        originalOutput: sums[i]!.originalOut / tokens,
      };
    });
  };
  const forget = await means(forgetDocs);
  const retain = await means(retainDocs);
  return layers.map((layer, i) => {
    const f = forget[i]!;
    const r = retain[i]!;
    return {
      layer,
      forget: f,
      retain: r,
      ratio: f.expanded / f.original / (r.expanded / r.original),
      outputRatio: f.expandedOutput / f.originalOutput / (r.expandedOutput / r.originalOutput),
    };
  });
}

/**
 * The gradient of the loss on `probeDocs` (all treated as labelled forget documents) with
 * respect to each expanded layer's `W_in`, routed by `rule` with the frequency weights (null:
 * every token routed fully) and unrouted, split into the original units and the expansion.
 * With `rule` null the routed gradient is the unrouted one (the control).
 */
export async function forgetGradientProbe(
  model: TinyTransformer,
  layers: readonly number[],
  probeDocs: readonly Int32Array[],
  rule: DisposableTableRule | null,
  frequency: Float32Array | null,
): Promise<EraLayerGradient[]> {
  const batch = makeBatch(
    probeDocs,
    model.config.contextLength,
    probeDocs.map(() => true),
    frequency,
  );
  const variables = layers.map((l) => model.mlpWeights(l).inWeight);
  const gradients = (plan: RoutingPlan | null) =>
    tf.variableGrads(() => {
      const context =
        plan === null
          ? undefined
          : forwardContext(model, {
              plan,
              batch: { labels: batch.tokenLabels, weights: batch.softWeights },
            });
      return tokenCrossEntropy(model.forward(batch.inputs, context), batch.targets, batch.weights);
    }, variables);
  const plain = gradients(null);
  const routed =
    rule === null
      ? plain
      : gradients(Object.fromEntries(layers.map((l) => [`blocks.${l}.mlp.hidden`, rule])));
  try {
    const parts = tf.tidy(() =>
      layers.flatMap((layer, i) => {
        const name = variables[i]!.name;
        const g = routed.grads[name]!;
        const p = plain.grads[name]!;
        const region = expandedRegion(model, layer);
        const mask = tf.tensor1d(
          Array.from({ length: model.mlpWidth(layer) }, (_, u) =>
            u >= region.start && u < region.end ? 1 : 0,
          ),
        );
        const unmask = tf.sub(1, mask);
        const dot = (a: tf.Tensor, b: tf.Tensor, m: tf.Tensor) => tf.sum(tf.mul(tf.mul(a, b), m));
        return [
          dot(g, g, unmask),
          dot(g, g, mask),
          dot(g, p, unmask),
          dot(p, p, unmask),
          dot(g, p, mask),
          dot(p, p, mask),
        ];
      }),
    );
    const v = await Promise.all(parts.map(async (t) => (await t.data())[0]!));
    tf.dispose(parts);
    return layers.map((layer, i) => {
      const [oo, ee, op, pp, ep, qq] = v.slice(6 * i, 6 * i + 6) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      return {
        layer,
        original: Math.sqrt(oo),
        expanded: Math.sqrt(ee),
        originalAlongPlain: pp === 0 ? Number.NaN : op / pp,
        expandedAlongPlain: qq === 0 ? Number.NaN : ep / qq,
      };
    });
  } finally {
    plain.value.dispose();
    tf.dispose(plain.grads);
    if (routed !== plain) {
      routed.value.dispose();
      tf.dispose(routed.grads);
    }
    disposeBatch(batch);
  }
}

/** The training steps after which {@link EraCheckpoint}s are taken: every 10 %, the last included. */
export function checkpointSteps(steps: number): number[] {
  const at = new Set<number>();
  for (let tenth = 1; tenth <= 10; tenth++) at.add(Math.max(1, Math.round((tenth * steps) / 10)));
  return [...at].sort((a, b) => a - b);
}
