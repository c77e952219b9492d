import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { NestedNumbers } from '../routing/route.js';
import { formatShape, nestedArrayShape } from '../routing/shapes.js';
import { readSync } from '../util/read.js';

/**
 * Throws unless every value is a number in `range` (`[0, 1]` unless given). A NaN weight would
 * turn a blocked gradient into NaN, and a weight above 1 would amplify it, so both are rejected
 * early.
 * @param what - How the error message names the array, e.g. `'mask'` or `'table row 3'`.
 */
export function validateMaskValues(
  values: ArrayLike<number>,
  what = 'mask',
  range: readonly [min: number, max: number] = [0, 1],
): void {
  const [min, max] = range;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    if (!(value >= min && value <= max)) {
      const meaning =
        min === 0 && max === 1 ? ' (0 blocks the gradient, 1 lets it through)' : ' (as declared)';
      throw new GradientRoutingError(
        `gradient-routing: ${what} has weight ${value} at flat index ${i}; mask weights must be ` +
          `numbers in [${min}, ${max}]${meaning}. Clip or fix that value.`,
        'invalid-mask',
        value,
      );
    }
  }
}

/** A validated float32 copy of `values`. Pure: no tensors are created. */
export function softMaskValues(values: ArrayLike<number>): Float32Array {
  validateMaskValues(values);
  return Float32Array.from(values);
}

/**
 * A mask tensor of soft weights in `[0, 1]`, validated on the host before upload.
 *
 * @example
 * ```ts
 * softMask([[1, 0.5, 0], [0, 0.5, 1]]); // example 0 mostly updates dim 0, example 1 dim 2
 * ```
 */
export function softMask(values: NestedNumbers[]): tf.Tensor {
  const shape = nestedArrayShape(values);
  const flat = (values as unknown[]).flat(Number.POSITIVE_INFINITY) as number[];
  return tf.tensor(softMaskValues(flat), shape, 'float32');
}

/**
 * Checks a mask tensor's weights like {@link validateMaskValues}. This reads the tensor back to
 * the host (a sync), which is why the tensor combinators below do not do it for you: call it
 * once on masks from outside this library, not every training step.
 */
export function assertSoftMask(mask: tf.Tensor): void {
  validateMaskValues(
    readSync(
      mask,
      'assertSoftMask',
      'check the values on the host (softMask(values)) before upload.',
    ),
  );
}

function assertSameLength(a: ArrayLike<number>, b: ArrayLike<number>, op: string): void {
  if (a.length !== b.length) {
    throw new GradientRoutingError(
      `gradient-routing: ${op} needs masks of equal length, got ${a.length} and ${b.length}. ` +
        `Use the tensor form (${op.replace('Values', '')}) to broadcast masks of different shapes.`,
    );
  }
}

/** `1 - m`: the weights a mask withholds. Pure; validates `values`. */
export function maskComplementValues(values: ArrayLike<number>): Float32Array {
  validateMaskValues(values);
  return Float32Array.from(values, (value) => 1 - value);
}

function combineValues(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  op: string,
  pick: (x: number, y: number) => number,
): Float32Array {
  assertSameLength(a, b, op);
  validateMaskValues(a, 'first mask');
  validateMaskValues(b, 'second mask');
  return Float32Array.from(a, (value, i) => pick(value, b[i]!));
}

/** Elementwise max: a gradient passes where either mask lets it. Pure; validates both. */
export function maskUnionValues(a: ArrayLike<number>, b: ArrayLike<number>): Float32Array {
  return combineValues(a, b, 'maskUnionValues', Math.max);
}

/** Elementwise min: a gradient passes only where both masks let it. Pure; validates both. */
export function maskIntersectionValues(a: ArrayLike<number>, b: ArrayLike<number>): Float32Array {
  return combineValues(a, b, 'maskIntersectionValues', Math.min);
}

/** The shape `a` and `b` broadcast to (numpy rules), or an error naming both shapes. */
function broadcastShape(a: readonly number[], b: readonly number[], op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const shape: number[] = [];
  for (let axis = 0; axis < rank; axis++) {
    const x = a[a.length - rank + axis] ?? 1;
    const y = b[b.length - rank + axis] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new GradientRoutingError(
        `gradient-routing: ${op} cannot broadcast masks of shapes ${formatShape(a)} and ` +
          `${formatShape(b)}; give them equal sizes or size 1 on each axis they share.`,
      );
    }
    shape.push(x === 1 ? y : x);
  }
  return shape;
}

function asFloat(mask: tf.Tensor): tf.Tensor {
  return mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32');
}

function combine(
  masks: readonly tf.Tensor[],
  op: string,
  pick: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
): tf.Tensor {
  const [first, ...rest] = masks;
  if (first === undefined) {
    throw new GradientRoutingError(`gradient-routing: ${op} needs at least one mask tensor.`);
  }
  rest.reduce((shape, mask) => broadcastShape(shape, mask.shape, op), first.shape);
  return tf.tidy(() =>
    rest.reduce((acc, mask) => pick(acc, asFloat(mask)), tf.clone(asFloat(first))),
  );
}

/**
 * `1 - mask` as a float32 tensor: route the complement of a region to the other data.
 * Like all tensor combinators here it does not read the tensor back, so weights are not
 * validated; see {@link assertSoftMask}.
 *
 * @example
 * ```ts
 * const others = maskComplement(regionMask(8, [0, 4])); // [0,0,0,0,1,1,1,1]
 * ```
 */
export function maskComplement<T extends tf.Tensor>(mask: T): T {
  return tf.tidy(() => tf.sub(tf.scalar(1), asFloat(mask))) as T;
}

/**
 * Elementwise max of the masks (broadcast): a gradient passes where any mask lets it.
 * @throws If the shapes do not broadcast together (the message names them).
 *
 * @example
 * ```ts
 * maskUnion(regionMask(8, [0, 2]), regionMask(8, [6, 8])); // [1,1,0,0,0,0,1,1]
 * ```
 */
export function maskUnion(...masks: tf.Tensor[]): tf.Tensor {
  return combine(masks, 'maskUnion', tf.maximum);
}

/**
 * Elementwise min of the masks (broadcast): a gradient passes only where every mask lets it.
 * @throws If the shapes do not broadcast together (the message names them).
 *
 * @example
 * ```ts
 * // Per-example label masks [B, D], restricted to the first half of the dims.
 * maskIntersection(labelMasks, regionMask(D, [0, D / 2]));
 * ```
 */
export function maskIntersection(...masks: tf.Tensor[]): tf.Tensor {
  return combine(masks, 'maskIntersection', tf.minimum);
}
