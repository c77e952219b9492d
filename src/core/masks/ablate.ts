import type * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { gateForward } from '../routing/route.js';
import { type Region, regionMaskValues } from './regions.js';

/**
 * Switches a module off: zeroes the given feature regions of `x` (last axis) in the forward
 * pass. The gradient is consistent with that: exactly +0 inside the regions, `dy` elsewhere.
 *
 * @param x - A float32 tensor whose last axis holds the features, e.g. a latent `[B, D]`.
 * @param regions - One region `[start, end)` or a list of disjoint regions.
 * @returns A new tensor; `x` is not modified.
 *
 * @example
 * ```ts
 * const withoutHighHalf = ablate(latent, [16, 32]);
 * ```
 */
export function ablate<T extends tf.Tensor>(x: T, regions: Region | readonly Region[]): T {
  const size = x.shape[x.shape.length - 1];
  if (size === undefined) {
    throw new GradientRoutingError(
      'gradient-routing: ablate needs a tensor with at least one axis.',
    );
  }
  const ablated = regionMaskValues(size, regions);
  const keep = Array.from(ablated, (value) => 1 - value);
  return gateForward(x, keep);
}
