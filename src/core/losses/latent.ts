import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { type Region, regionList, sliceRegions, validateRegions } from '../masks/regions.js';
import { formatShape } from '../routing/shapes.js';
import { absWithTorchGrad } from './mae.js';

/** Size of the feature (last) axis; `exactly2` for ops that need a `[B, D]` matrix. */
function featureSize(z: tf.Tensor, op: string, exactly2: boolean): number {
  const size = z.shape[z.shape.length - 1];
  if (size === undefined || z.rank < 2 || (exactly2 && z.rank !== 2)) {
    throw new GradientRoutingError(
      `gradient-routing: ${op} needs a latent of shape ${exactly2 ? '[B, D]' : '[B, ..., D]'}, ` +
        `got ${formatShape(z.shape)}. Reshape it so the batch is the first axis and the ` +
        'features the last.',
    );
  }
  return size;
}

/**
 * L1 penalty on latent regions, `|z[:, region]|.mean(0).sum()` in PyTorch terms: the mean over
 * the batch of the summed absolute activations, so its scale does not depend on the batch size.
 * With one region covering all of `z` it equals the seed notebook's `|z|.sum() / B`.
 *
 * @param z - Latent `[B, D]` (or `[B, ..., D]`: every non-batch axis is summed).
 * @param regions - One region `[start, end)` of the last axis, or a list of disjoint regions
 *   (their penalties are summed). Defaults to the whole last axis.
 * @returns A scalar.
 * @throws If a region is out of bounds, empty or overlaps another.
 */
export function latentL1(z: tf.Tensor, regions?: Region | readonly Region[]): tf.Scalar {
  const size = featureSize(z, 'latentL1', false);
  const list = regions === undefined ? [[0, size] as const] : regionList(regions);
  validateRegions(size, list);
  return tf.tidy(() => {
    const parts = list.map((region) =>
      tf.sum(tf.mean(absWithTorchGrad(sliceRegions(z, region)), 0)),
    );
    return (parts.length === 1 ? parts[0]! : tf.addN(parts)) as tf.Scalar;
  });
}

/** Options of {@link correlationPenalty}. */
export interface CorrelationPenaltyOptions {
  /**
   * Added to each standard deviation before dividing, `(z - mean) / (std + epsilon)`. The default
   * 0 is the reference's `+ 0`.
   */
  epsilon?: number;
}

/**
 * Mean absolute correlation between the dimensions of two latent regions, exactly as the
 * paper's code computes it:
 * `zn = (z - z.mean(0)) / (z.std(0) + epsilon)`, `c = zn[:, A]^T @ zn[:, B] / n`, `mean(|c|)`.
 * As in PyTorch the standard deviation is the unbiased one (divides by n - 1) while `c` divides
 * by n, so a perfectly correlated pair gives `(n - 1) / n`, not 1.
 *
 * A dimension with zero variance over the batch (a dead unit) has no defined correlation;
 * PyTorch returns NaN there, which would poison the whole step. Here such a dimension is
 * standardised to 0 instead, so it adds 0 to every entry of `c` (still counted in the mean)
 * and its gradient is finite (0). Everywhere else the value is the reference's.
 *
 * @param z - Latent `[B, D]` with B >= 2.
 * @param regionA - Region `[start, end)` of the rows of `c`.
 * @param regionB - Region `[start, end)` of the columns of `c`. It may overlap `regionA`.
 * @param options - `epsilon` added to the standard deviation (default 0).
 * @returns A scalar.
 * @throws If `z` is not 2-D, has fewer than 2 rows, or a region is out of bounds.
 */
export function correlationPenalty(
  z: tf.Tensor,
  regionA: Region,
  regionB: Region,
  options: CorrelationPenaltyOptions = {},
): tf.Scalar {
  const size = featureSize(z, 'correlationPenalty', true);
  const batch = z.shape[0]!;
  if (batch < 2) {
    throw new GradientRoutingError(
      `gradient-routing: correlationPenalty needs at least 2 examples to estimate a standard ` +
        `deviation, got a batch of ${batch}. Skip the penalty for such batches or make them larger.`,
    );
  }
  validateRegions(size, [regionA]);
  validateRegions(size, [regionB]);
  const epsilon = options.epsilon ?? 0;
  if (!Number.isFinite(epsilon) || epsilon < 0) {
    throw new GradientRoutingError(
      `gradient-routing: correlationPenalty's epsilon must be a finite number >= 0, got ${epsilon}.`,
    );
  }
  return tf.tidy(() => {
    const centered = tf.sub(z, tf.mean(z, 0));
    const variance = tf.div(tf.sum(tf.square(centered), 0), batch - 1);
    // A 0/1 mask via tf.step, whose gradient is zero: tf.greater has no gradient in tfjs and
    // would break the backward pass here, since the variance depends on z.
    const alive = tf.step(variance);
    // sqrt has an infinite slope at 0; feeding it 1 for dead units keeps the backward pass finite.
    const std = tf.sqrt(tf.add(tf.mul(variance, alive), tf.sub(1, alive)));
    const standardised = tf.div(tf.mul(centered, alive), tf.add(std, epsilon));
    const c = tf.div(
      tf.matMul(sliceRegions(standardised, regionA), sliceRegions(standardised, regionB), true),
      batch,
    );
    return tf.mean(absWithTorchGrad(c));
  });
}
