import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';

/** A half-open range `[start, end)` of indices on the feature (last) axis. */
export type Region = readonly [start: number, end: number];

function describe(region: Region): string {
  return `[${region[0]}, ${region[1]})`;
}

/**
 * Checks that `regions` are integer, non-empty, inside `[0, size)` and pairwise disjoint.
 * @throws With the offending region and the valid range.
 */
export function validateRegions(size: number, regions: readonly Region[]): void {
  if (!Number.isInteger(size) || size <= 0) {
    throw new GradientRoutingError(
      `gradient-routing: feature size must be a positive integer, got ${size}.`,
    );
  }
  if (regions.length === 0) {
    throw new GradientRoutingError('gradient-routing: give at least one region [start, end).');
  }
  for (const region of regions) {
    if (!Array.isArray(region) || region.length !== 2) {
      throw new GradientRoutingError(
        `gradient-routing: a region is a pair [start, end), got ${JSON.stringify(region)}.`,
      );
    }
    const [start, end] = region;
    if (!Number.isInteger(start) || !Number.isInteger(end)) {
      throw new GradientRoutingError(
        `gradient-routing: region ${describe(region)} must have integer bounds.`,
      );
    }
    if (start < 0 || end > size || start >= end) {
      throw new GradientRoutingError(
        `gradient-routing: region ${describe(region)} is out of bounds or empty; ` +
          `regions must satisfy 0 <= start < end <= ${size}.`,
      );
    }
  }
  const sorted = [...regions].sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1]!;
    const current = sorted[i]!;
    if (current[0] < previous[1]) {
      throw new GradientRoutingError(
        `gradient-routing: regions ${describe(previous)} and ${describe(current)} overlap; ` +
          'merge them into one region or make them disjoint.',
      );
    }
  }
}

/** Normalises the one-region and many-region forms to a list. */
export function regionList(regions: Region | readonly Region[]): readonly Region[] {
  return typeof regions[0] === 'number' ? [regions as Region] : (regions as readonly Region[]);
}

/**
 * The 0/1 values of a feature mask of length `size` that is 1 inside `regions`.
 * Pure: no tensors are created.
 */
export function regionMaskValues(size: number, regions: Region | readonly Region[]): Float32Array {
  const list = regionList(regions);
  validateRegions(size, list);
  const values = new Float32Array(size);
  for (const [start, end] of list) values.fill(1, start, end);
  return values;
}

/**
 * A `[size]` mask that is 1 inside the given feature regions and 0 elsewhere.
 *
 * @example
 * ```ts
 * regionMask(8, [2, 5]);            // [0,0,1,1,1,0,0,0]
 * regionMask(8, [[0, 2], [6, 8]]);  // [1,1,0,0,0,0,1,1]
 * ```
 */
export function regionMask(size: number, regions: Region | readonly Region[]): tf.Tensor1D {
  return tf.tensor1d(regionMaskValues(size, regions), 'float32');
}

/**
 * The features of `x` (last axis) inside `regions`, concatenated in region order. Built from
 * slices, whose gradient every backend has (a gather's needs a kernel tfjs-wasm lacks).
 *
 * @example
 * ```ts
 * sliceRegions(latent, [[0, 4], [8, 12]]); // [B, 8]
 * ```
 */
export function sliceRegions(x: tf.Tensor, regions: Region | readonly Region[]): tf.Tensor {
  const axis = x.rank - 1;
  const size = x.shape[axis];
  if (size === undefined) {
    throw new GradientRoutingError(
      'gradient-routing: sliceRegions needs a tensor with at least one axis.',
    );
  }
  const list = regionList(regions);
  validateRegions(size, list);
  return tf.tidy(() => {
    const parts = list.map(([start, end]) => {
      const begin = x.shape.map((_, a) => (a === axis ? start : 0));
      const extent = x.shape.map((s, a) => (a === axis ? end - start : s));
      return tf.slice(x, begin, extent);
    });
    return parts.length === 1 ? parts[0]! : tf.concat(parts, axis);
  });
}
