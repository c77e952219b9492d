import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { seededPermutation, seededRandom } from '../util/random.js';

// Partial routing, the paper's limited-oversight setting: only overseen examples (those whose
// label we trust) are routed; every other example keeps the full gradient. Oversight is a fixed
// property of a dataset example, so it is sampled once per dataset index and looked up per batch.

/**
 * Which of `numExamples` dataset examples are overseen: exactly `Math.round(fraction *
 * numExamples)` of them, chosen uniformly and reproducibly from `seed`. Pure: no tensors.
 *
 * @returns One flag per dataset index: 1 = routed (overseen), 0 = full gradient.
 * @throws If `fraction` is not in `[0, 1]` or `seed` is not a 32-bit integer.
 *
 * @example
 * ```ts
 * const overseen = sampleOversight(60000, 0.1, 1234); // a fixed 10% of MNIST is routed
 * ```
 */
export function sampleOversight(numExamples: number, fraction: number, seed: number): Uint8Array {
  if (!(fraction >= 0 && fraction <= 1)) {
    throw new GradientRoutingError(
      `gradient-routing: oversight fraction must be in [0, 1], got ${fraction}; ` +
        'use 1 to route every example and 0 to route none.',
    );
  }
  if (!Number.isInteger(numExamples) || numExamples < 0) {
    throw new GradientRoutingError(
      `gradient-routing: numExamples must be a non-negative integer (the dataset size), got ${numExamples}.`,
    );
  }
  const flags = new Uint8Array(numExamples);
  // The first `count` entries of a uniform permutation are a uniform subset of that size.
  const order = seededPermutation(numExamples, seededRandom(seed));
  for (const index of order.subarray(0, Math.round(fraction * numExamples))) flags[index] = 1;
  return flags;
}

/**
 * The routed flag of each example of a batch. Without `indices`, `oversight` already holds one
 * flag per batch example; with them, batch example `b` is dataset example `indices[b]`.
 */
function batchFlags(
  oversight: ArrayLike<number | boolean>,
  indices: ArrayLike<number> | undefined,
  batchSize: number,
): Uint8Array {
  const count = indices?.length ?? oversight.length;
  if (count !== batchSize) {
    throw new GradientRoutingError(
      `gradient-routing: the masks hold ${batchSize} examples but ${count} ` +
        `${indices ? 'dataset indices' : 'oversight flags'} were given; give one per example.`,
    );
  }
  return Uint8Array.from({ length: batchSize }, (_, b) => {
    const index = indices ? indices[b]! : b;
    if (!Number.isInteger(index) || index < 0 || index >= oversight.length) {
      throw new GradientRoutingError(
        `gradient-routing: dataset index ${index} (batch example ${b}) is outside the oversight ` +
          `flags [0, ${oversight.length}); sample the flags for the whole dataset.`,
      );
    }
    return oversight[index] ? 1 : 0;
  });
}

function batchSizeOf(shape: readonly number[]): number {
  const size = shape[0];
  if (shape.length < 2 || size === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: partial routing needs per-example masks [B, ...], got shape [${shape}]; ` +
        'build them with labelMask or RouteTable.masksFor.',
    );
  }
  return size;
}

/**
 * Partial routing on host masks: rows of unrouted examples become all ones. Pure: no tensors.
 * @param masks - Row-major `[B, D]` values; a new array is returned.
 * @param oversight - Routed flags, per batch example or (with `indices`) per dataset example.
 * @param indices - The dataset index of each batch example.
 */
export function applyOversightValues(
  masks: Float32Array,
  size: number,
  oversight: ArrayLike<number | boolean>,
  indices?: ArrayLike<number>,
): Float32Array {
  if (!Number.isInteger(size) || size <= 0 || masks.length % size !== 0) {
    throw new GradientRoutingError(
      `gradient-routing: ${masks.length} mask values do not form rows of size ${size}; ` +
        'pass the feature size D of the [B, D] masks.',
    );
  }
  const flags = batchFlags(oversight, indices, masks.length / size);
  const out = Float32Array.from(masks);
  flags.forEach((routed, b) => {
    if (!routed) out.fill(1, b * size, (b + 1) * size);
  });
  return out;
}

/**
 * Partial routing: keeps the masks of routed examples and gives the others the full gradient
 * (a mask of ones). The flags are host data, uploaded as one `[B]` tensor.
 *
 * @param masks - Per-example masks `[B, ...]` (e.g. from `RouteTable.masksFor`).
 * @param oversight - Routed flags, per batch example or (with `indices`) per dataset example,
 *   as returned by {@link sampleOversight}.
 * @param indices - The dataset index of each batch example.
 * @returns A new float32 tensor of the masks' shape.
 *
 * @example
 * ```ts
 * const overseen = sampleOversight(train.size, 0.25, seed);        // once
 * const masks = applyOversight(table.masksFor(labels), overseen, batchIndices); // per step
 * ```
 */
export function applyOversight<T extends tf.Tensor>(
  masks: T,
  oversight: ArrayLike<number | boolean>,
  indices?: ArrayLike<number>,
): T {
  const flags = batchFlags(oversight, indices, batchSizeOf(masks.shape));
  return tf.tidy(() => {
    const routedShape = [flags.length, ...masks.shape.slice(1).map(() => 1)];
    const routed = tf.tensor(flags, routedShape, 'bool');
    return tf.where(routed, tf.cast(masks, 'float32'), tf.ones(masks.shape, 'float32'));
  }) as T;
}
