import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { correlationPenalty, latentL1 } from '../losses/latent.js';
import { groupedMeanAbsoluteError, meanAbsoluteError } from '../losses/mae.js';
import type { LabelRoute, LabelRouteOptions } from '../masks/labels.js';
import { type Region, regionList, sliceRegions } from '../masks/regions.js';
import { type LabelRule, labelRule } from '../masks/table.js';
import { forwardContext, type RoutingPlan } from '../routing/points.js';
import { stopGradient } from '../routing/route.js';
import { type Autoencoder, regionWidth } from './autoencoder.js';

/** Weights of the split objective's terms; the defaults are the paper's. */
export interface SplitLossWeights {
  /** L1 of each route's latent region, `|z_r|.mean(0).sum()`. Default 3e-3. */
  l1?: number;
  /** Mean |correlation| between the regions of each pair of routes. Default 0.1. */
  correlation?: number;
  /** Certificates' reconstruction MAE. Default 1. */
  certificates?: number;
}

/** The loss terms of one batch, each a scalar. */
export interface SplitLossTerms {
  total: tf.Scalar;
  /** Sum over routes of the decoder's MAE on that route's examples, each a mean over its own. */
  reconstruction: tf.Scalar;
  /** Sum of the certificates' MAE on all examples (zero when there are none). */
  certificates: tf.Scalar;
  l1: tf.Scalar;
  correlation: tf.Scalar;
}

/** Options of {@link splitObjective}. */
export interface SplitObjectiveOptions extends LabelRouteOptions {
  /** Which labels' examples may update which latent regions, e.g. digits 0–4 → `[0, 16)`. */
  routes: readonly LabelRoute[];
  /** Route the latent's gradient (default true). False is the control: same losses, no routing. */
  routed?: boolean;
  /** Loss weights; the paper's by default. */
  weights?: SplitLossWeights;
}

/** The paper's split objective over an {@link Autoencoder}; see {@link splitObjective}. */
export interface SplitObjective {
  /** The plan the objective trains with: `{ latent: rule }`, or `{}` for the control. */
  readonly plan: RoutingPlan;
  /** The label rule over the latent; its rows also group the reconstruction loss. */
  readonly rule: LabelRule;
  /** The loss terms of a batch `x [B, inputDim]` with integer `labels [B]`. */
  loss(model: Autoencoder, x: tf.Tensor2D, labels: tf.Tensor1D): SplitLossTerms;
  /** Frees the rule's tensors. */
  dispose(): void;
}

const DEFAULT_WEIGHTS: Required<SplitLossWeights> = {
  l1: 3e-3,
  correlation: 0.1,
  certificates: 1,
};

/**
 * The paper's objective for splitting an autoencoder's latent (Section 4.1): the decoder's MAE on
 * each route's examples (each a mean over its own group) with the latent routed by label, plus
 * certificates trained on the stopped latent, L1 of each route's region and the mean |correlation|
 * between routes' regions. The plan routes the `latent` point by `labelRule(latentDim, routes)`.
 *
 * @example
 * ```ts
 * const objective = splitObjective({ routes: [
 *   { labels: [0, 1, 2, 3, 4], region: [0, 16] },
 *   { labels: [5, 6, 7, 8, 9], region: [16, 32] },
 * ] }, 32);
 * const loss = optimizer.minimize(() => objective.loss(model, x, labels).total, true);
 * ```
 */
export function splitObjective(options: SplitObjectiveOptions, latentDim: number): SplitObjective {
  const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
  for (const [name, value] of Object.entries(weights)) {
    if (!(Number.isFinite(value) && value >= 0)) {
      throw new GradientRoutingError(
        `loss weight ${name} must be a finite number >= 0, got ${value}.`,
        'invalid-argument',
        value,
      );
    }
  }
  const rule = labelRule(latentDim, options.routes, {
    unrouted: options.unrouted ?? 'error',
    ...(options.numClasses === undefined ? {} : { numClasses: options.numClasses }),
  });
  const regions = options.routes.map((route) => regionList(route.region));
  const plan: RoutingPlan = options.routed === false ? {} : { latent: rule };
  return {
    plan,
    rule,
    loss: (model, x, labels) =>
      tf.tidy(() => {
        const context = forwardContext(model, { plan, batch: { labels }, capture: ['latent'] });
        const routed = model.encode(x, context);
        const z = context.captured.get('latent') as tf.Tensor2D;
        // The rows of routed labels are their route's index; the unrouted row falls outside the
        // groups, so those examples add nothing to the reconstruction term.
        const groups = rule.rowsOf({ labels }) as tf.Tensor1D;
        const reconstruction = groupedMeanAbsoluteError(model.decode(routed), x, groups, {
          numGroups: regions.length,
        });
        // Terms with weight 0 are not computed: they would cost a pass and add signed zeros.
        const certificates =
          weights.certificates === 0 || model.certificateDecoders.length === 0
            ? tf.scalar(0)
            : sumOrZero(model.certify(stopGradient(z)).map((out) => meanAbsoluteError(out, x)));
        const l1 = weights.l1 === 0 ? tf.scalar(0) : sumOrZero(regions.map((r) => latentL1(z, r)));
        const correlation = weights.correlation === 0 ? tf.scalar(0) : correlationTerm(z, regions);
        const weighted = [reconstruction];
        if (weights.certificates !== 0) weighted.push(tf.mul(certificates, weights.certificates));
        if (weights.l1 !== 0) weighted.push(tf.mul(l1, weights.l1));
        if (weights.correlation !== 0) weighted.push(tf.mul(correlation, weights.correlation));
        const total = sumOrZero(weighted);
        return { total, reconstruction, certificates, l1, correlation };
      }),
    dispose: () => rule.dispose(),
  };
}

/** Mean |correlation| over pairs of routes, each route's regions taken together. */
function correlationTerm(z: tf.Tensor2D, regions: ReadonlyArray<readonly Region[]>): tf.Scalar {
  return tf.tidy(() => {
    const pairs: tf.Scalar[] = [];
    regions.forEach((left, a) => {
      regions.slice(a + 1).forEach((right) => {
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

function sumOrZero(terms: tf.Scalar[]): tf.Scalar {
  if (terms.length === 0) return tf.scalar(0);
  return (terms.length === 1 ? terms[0]! : tf.addN(terms)) as tf.Scalar;
}
