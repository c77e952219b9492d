import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { RoutingRule } from '../routing/points.js';
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
 * Partial oversight, the paper's limited-label setting: only the overseen examples (those whose
 * label is trusted) follow `rule`; every other example gets a mask of ones (the full gradient).
 * Reads `batch.indices`, the dataset index of each example; sample the flags once per dataset with
 * {@link sampleOversight}. The flags live on device, so a batch's masks cost no host sync.
 *
 * @example
 * ```ts
 * const overseen = sampleOversight(60000, 0.25, 0);   // a fixed quarter of the data
 * const plan = { latent: oversightRule(labelRule(32, routes), overseen) };
 * ```
 */
export function oversightRule(
  rule: RoutingRule,
  overseen: ArrayLike<number | boolean>,
): RoutingRule & {
  /** Frees the oversight flags (not the wrapped rule). Safe to call twice. */
  dispose(): void;
} {
  const flags = tf.keep(
    tf.tensor1d(
      Int32Array.from({ length: overseen.length }, (_, i) => (overseen[i] ? 1 : 0)),
      'int32',
    ),
  );
  const description = `oversight of ${overseen.length} examples over ${rule.description}`;
  return {
    description,
    ...(rule.range === undefined ? {} : { range: rule.range }),
    masks(batch, activation) {
      if (batch.indices === undefined) {
        throw new GradientRoutingError(
          `the rule '${description}' reads batch.indices (each example's dataset index), which is missing.`,
        );
      }
      if (flags.isDisposed) {
        throw new GradientRoutingError('this oversight rule was disposed.', 'disposed');
      }
      const indices = batch.indices;
      return tf.tidy(() => {
        const masks = tf.cast(rule.masks(batch, activation), 'float32');
        const routed = tf.gather(flags, indices);
        const shape = [indices.shape[0], ...masks.shape.slice(1).map(() => 1)];
        return tf.where(tf.cast(tf.reshape(routed, shape), 'bool'), masks, tf.onesLike(masks));
      });
    },
    dispose() {
      flags.dispose();
    },
  };
}
