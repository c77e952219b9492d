import * as tf from '@tensorflow/tfjs-core';
import { hasLibraryKernel, LibraryKernel } from '../backend/library-kernels.js';
import { GradientRoutingError } from '../errors.js';
import { exactMaskProduct } from '../routing/route.js';
import { formatShape } from '../routing/shapes.js';

const absOp = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  save([x]);
  return {
    value: tf.abs(x),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.sign(saved[0]!)),
  };
});

/**
 * `|x|` with PyTorch's gradient `sign(x)`, which is 0 at 0. tfjs's own abs has slope -1 at 0, so
 * an exactly-zero residual or activation would be pushed downwards instead of left alone.
 */
export function absWithTorchGrad<T extends tf.Tensor>(x: T): T {
  return absOp(x) as T;
}

function assertSameShape(pred: tf.Tensor, target: tf.Tensor, op: string): void {
  const same =
    pred.shape.length === target.shape.length &&
    pred.shape.every((size, axis) => size === target.shape[axis]);
  if (!same) {
    // Broadcasting [B,1] against [B] silently builds a [B,B] error matrix, so it is refused.
    throw new GradientRoutingError(
      `gradient-routing: ${op} needs pred and target of the same shape, got ` +
        `${formatShape(pred.shape)} and ${formatShape(target.shape)}. Reshape one of them ` +
        '(for example with tf.reshape) so both have the same shape.',
    );
  }
}

function assertBatched(x: tf.Tensor, op: string): number {
  const batch = x.shape[0];
  if (batch === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: ${op} needs a tensor with a batch axis, got a scalar. ` +
        'Give it shape [B, ...].',
    );
  }
  return batch;
}

/**
 * Mean absolute error over all elements, `(pred - target).abs().mean()` in PyTorch terms,
 * with PyTorch's gradient (0, not tfjs's -1, where a residual is exactly 0); so are all the
 * losses of this library.
 *
 * @param pred - Predictions of any shape.
 * @param target - Targets of the same shape as `pred` (no broadcasting).
 * @returns A scalar.
 * @throws If the shapes differ.
 */
export function meanAbsoluteError(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  assertSameShape(pred, target, 'meanAbsoluteError');
  return meanAbsResidual(pred, target, null) as tf.Scalar;
}

/**
 * `mean(|pred - target|)` over `axes` (all of them when null), with its gradient written out:
 * tfjs's mean gradient multiplies by a tensor of ones made on the host (an upload of the whole
 * input's size every step) and divides by an uploaded scalar. Here it is `sign(d) · (dy / N)`,
 * the same values, one fused program where the backend has one.
 */
function meanAbsResidual(pred: tf.Tensor, target: tf.Tensor, axes: number[] | null): tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [p, t, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const residual = tf.sub(p, t);
    save([residual]);
    return {
      value: axes === null ? tf.mean(tf.abs(residual)) : tf.mean(tf.abs(residual), axes),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const d = saved[0]!;
        const reduced = axes ?? d.shape.map((_, axis) => axis);
        const count = reduced.reduce((n, axis) => n * d.shape[axis]!, 1);
        // dy with the reduced axes kept as 1, so it broadcasts over them.
        const scale = tf.reshape(
          dy,
          d.shape.map((size, axis) => (reduced.includes(axis) ? 1 : size)),
        );
        const gradient =
          hasLibraryKernel(LibraryKernel.scaledSign) && d.dtype === 'float32' && d.rank > 0
            ? (tf.engine().runKernel(
                LibraryKernel.scaledSign,
                { x: d, scale },
                {
                  divisor: count,
                },
              ) as tf.Tensor)
            : tf.mul(tf.sign(d), tf.div(scale, count));
        return [gradient, tf.neg(gradient)];
      },
    };
  });
  return op(pred, target);
}

/**
 * Mean absolute error of each example: the mean of `|pred - target|` over every axis but the
 * first, so `[B, ...]` inputs give `[B]`. This is the per-example error the paper's evaluation
 * averages per digit.
 *
 * @param pred - Predictions `[B, ...]`.
 * @param target - Targets of the same shape.
 * @returns A `[B]` tensor.
 * @throws If the shapes differ or the tensors are scalars.
 */
export function perExampleMeanAbsoluteError(pred: tf.Tensor, target: tf.Tensor): tf.Tensor1D {
  assertSameShape(pred, target, 'perExampleMeanAbsoluteError');
  assertBatched(pred, 'perExampleMeanAbsoluteError');
  return tf.tidy(() => {
    if (pred.rank === 1) return absWithTorchGrad(tf.sub(pred, target)) as tf.Tensor1D;
    const featureAxes = Array.from({ length: pred.rank - 1 }, (_, i) => i + 1);
    return meanAbsResidual(pred, target, featureAxes) as tf.Tensor1D;
  });
}

/** Options of {@link groupedMeanAbsoluteError}. */
export interface GroupedMaeOptions {
  /**
   * Number of groups when `groups` holds int32 group indices; indices outside `[0, numGroups)`
   * belong to no group (checking them would need a device-to-host read).
   */
  numGroups?: number;
}

/** Turns any accepted membership form into float32 weights `[B, G]`. */
function membershipWeights(
  groups: tf.Tensor,
  batch: number,
  options: GroupedMaeOptions,
  op: string,
): tf.Tensor2D {
  if (groups.shape[0] !== batch) {
    throw new GradientRoutingError(
      `gradient-routing: ${op} got group membership of shape ${formatShape(groups.shape)} for a ` +
        `batch of ${batch}. Give one entry (or one row) per example: shape [${batch}] or [${batch}, G].`,
    );
  }
  if (groups.dtype === 'int32') {
    const numGroups = options.numGroups;
    if (
      groups.rank !== 1 ||
      numGroups === undefined ||
      !Number.isInteger(numGroups) ||
      numGroups < 1
    ) {
      throw new GradientRoutingError(
        `gradient-routing: ${op} got int32 group indices; they must have shape [B] and need ` +
          `options.numGroups (a positive integer), got shape ${formatShape(groups.shape)} and ` +
          `numGroups ${String(numGroups)}. Pass { numGroups: G }.`,
      );
    }
    // Not tf.oneHot: tfjs-backend-wasm 4.22 fills a float32 oneHot with int bit patterns (~0).
    const ids = tf.range(0, numGroups, 1, 'int32');
    return tf.cast(tf.equal(tf.reshape(groups, [batch, 1]), ids), 'float32') as tf.Tensor2D;
  }
  if (groups.dtype !== 'float32' && groups.dtype !== 'bool') {
    throw new GradientRoutingError(
      `gradient-routing: ${op} needs group membership as float32 or bool weights, or int32 ` +
        `group indices, got ${groups.dtype}. Cast it with tf.cast(groups, 'float32').`,
    );
  }
  const weights = tf.cast(groups, 'float32');
  if (groups.rank === 1) return tf.reshape(weights, [batch, 1]);
  if (groups.rank === 2) return weights as tf.Tensor2D;
  throw new GradientRoutingError(
    `gradient-routing: ${op} needs group membership of shape [B] (one group) or [B, G], got ` +
      `${formatShape(groups.shape)}. Reshape it to [B, G].`,
  );
}

/**
 * The mean absolute error of each group of examples, each a mean over its own examples only:
 * `mae(pred[group], target[group])` for every group, in one pass and without reading anything
 * back from the device, so it can sit inside a training step.
 *
 * A group with no examples gives exactly 0 (PyTorch would give NaN, or skip it as the
 * reference code does) and passes no gradient. Examples outside every group contribute
 * exactly 0, even where their predictions are NaN.
 *
 * @param pred - Predictions `[B, ...]`.
 * @param target - Targets of the same shape.
 * @param groups - Membership, one of: float32/bool weights `[B]` (one group; 1 = member),
 *   float32 weights `[B, G]` (G groups, possibly overlapping), or int32 group indices `[B]`
 *   with `options.numGroups`. Fractional weights give a weighted mean; weights must be >= 0.
 * @param options - `numGroups` for int32 indices.
 * @returns A `[G]` tensor of per-group errors.
 * @throws If shapes or dtypes do not fit.
 *
 * @example
 * ```ts
 * // Digits 0-4 form group 0, digits 5-9 group 1.
 * const group = tf.cast(tf.greater(labels, 4), 'int32');
 * const perGroup = groupMeanAbsoluteErrors(out, x, group, { numGroups: 2 });
 * ```
 */
export function groupMeanAbsoluteErrors(
  pred: tf.Tensor,
  target: tf.Tensor,
  groups: tf.Tensor,
  options: GroupedMaeOptions = {},
): tf.Tensor1D {
  const op = 'groupMeanAbsoluteErrors';
  assertSameShape(pred, target, op);
  const batch = assertBatched(pred, op);
  return tf.tidy(() => {
    const weights = membershipWeights(groups, batch, options, op);
    const perExample = tf.reshape(perExampleMeanAbsoluteError(pred, target), [batch, 1]);
    // Not a plain product: a NaN in an example outside the group must not reach the group.
    const sums = tf.sum(exactMaskProduct(perExample, weights), 0);
    const counts = tf.sum(weights, 0);
    // Dividing by 1 where a group is empty keeps both the value (0/1) and its gradient finite.
    const safeCounts = tf.where(tf.greater(counts, 0), counts, tf.onesLike(counts));
    return tf.div(sums, safeCounts) as tf.Tensor1D;
  });
}

/**
 * The sum over groups of each group's own mean absolute error, the paper's reconstruction loss
 * `mae(out[low], x[low]) + mae(out[high], x[high])`. Empty groups add 0. Membership is a group
 * index per example (`[B]`; indices outside `[0, numGroups)` belong to no group) or a one-hot /
 * soft `[B, G]` matrix.
 *
 * @returns A scalar.
 */
export function groupedMeanAbsoluteError(
  pred: tf.Tensor,
  target: tf.Tensor,
  groups: tf.Tensor,
  options: GroupedMaeOptions = {},
): tf.Scalar {
  return tf.tidy(() => tf.sum(groupMeanAbsoluteErrors(pred, target, groups, options)));
}
