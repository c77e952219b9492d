import type { Tensor } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { hasLibraryKernel, LibraryKernel } from '../backend/library-kernels.js';
import { GradientRoutingError } from '../errors.js';
import { readSync } from '../util/read.js';
import { assertBroadcastsTo, nestedArrayShape } from './shapes.js';

/** A number array of any depth, such as `[1, 0]` or `[[1, 0], [0, 1]]`. */
export type NestedNumbers = number | NestedNumbers[];

/**
 * What {@link routeGradients} accepts as a mask: a tensor, a (nested) number array, or a function
 * that builds the mask from the routed tensor itself (for masks that depend on activations).
 * The mask must broadcast to the routed tensor's shape. A mask function's ops are not
 * differentiated, so it may use ops without gradients (`tf.greater`, …) and read variables
 * without them receiving gradient.
 */
export type MaskInput = tf.Tensor | NestedNumbers[] | ((x: tf.Tensor) => tf.Tensor);

/** Sums `gradient` over the axes its input was broadcast along, back to `shape`. */
function unbroadcast(gradient: tf.Tensor, shape: readonly number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes([...shape], gradient.shape);
  return axes.length === 0 ? gradient : tf.reshape(tf.sum(gradient, axes), [...shape]);
}

// The fused kernel's gradient, the same as the stock composite's below. tfjs calls each input's
// function only when that input leads to what is differentiated (the mask seldom does).
tf.registerGradient({
  kernelName: LibraryKernel.maskProduct,
  inputsToSave: ['values', 'mask'],
  gradFunc: (dy, saved) => {
    const [values, mask] = saved as [tf.Tensor, tf.Tensor];
    const gradient = dy as tf.Tensor;
    return {
      values: () => unbroadcast(exactMaskProduct(gradient, mask), values.shape),
      mask: () => {
        const passed = tf.where(tf.notEqual(mask, 0), gradient, tf.zerosLike(gradient));
        return unbroadcast(tf.mul(passed, values), mask.shape);
      },
    };
  },
});

/**
 * `values * mask` (broadcast), with one exception that matters for routing: wherever the mask
 * is 0 the result is exactly +0, even where `values` is NaN or ±Infinity (plain multiplication
 * gives NaN there, which would leak a blocked example into the weights).
 */
export function exactMaskProduct(values: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  if (
    hasLibraryKernel(LibraryKernel.maskProduct) &&
    values.dtype === 'float32' &&
    mask.dtype === 'float32'
  ) {
    // One program and no scalar uploads (WebGPU); the same values as below.
    return tf.engine().runKernel(LibraryKernel.maskProduct, { values, mask }) as tf.Tensor;
  }
  return tf.tidy(() =>
    tf.where(tf.notEqual(mask, 0), tf.mul(values, mask), tf.scalar(0, values.dtype)),
  );
}

/** The range mask values must lie in when validation is on. */
export type MaskRange = readonly [min: number, max: number];

let validating = false;

/**
 * Turns mask validation on or off for the whole process (off by default). When on,
 * {@link routeGradients} and {@link gateForward} read every mask back to the host and throw on
 * NaN or a value outside its range (`[0, 1]` unless the caller declares a wider one), and label
 * rules check tensor labels each batch. Each check is a device sync: cheap on cpu and wasm,
 * a pipeline stall on WebGPU. Turn it on in tests and while developing; the library's tests and
 * examples run with it on.
 *
 * @returns Whether validation was on before the call, to restore it later.
 *
 * @example
 * ```ts
 * setMaskValidation(true);
 * routeGradients(x, tf.tensor1d([1, Number.NaN])); // throws: mask has weight NaN at flat index 1
 * ```
 */
export function setMaskValidation(enabled: boolean): boolean {
  const previous = validating;
  validating = enabled;
  return previous;
}

/** Whether mask validation is on (see {@link setMaskValidation}). */
export function maskValidationEnabled(): boolean {
  return validating;
}

/**
 * Throws unless every value of `mask` is a number in `range`. Reads the tensor back (a sync).
 * @param what - How the message names the mask.
 */
export function checkMaskTensor(mask: tf.Tensor, range: MaskRange = [0, 1], what = 'mask'): void {
  assertLiveTensor(mask, what);
  const values = readSync(
    mask,
    'mask validation',
    'turn mask validation off on this backend (setMaskValidation(false)) and check masks and labels on the host before they are uploaded.',
  );
  const [min, max] = range;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    if (!(value >= min && value <= max)) {
      throw new GradientRoutingError(
        `${what} has weight ${value} at flat index ${i}; mask weights must be numbers in ` +
          `[${min}, ${max}]${min === 0 && max === 1 ? ' (0 blocks the gradient, 1 lets it through)' : ' (as declared)'}. Clip or fix that value.`,
        'invalid-mask',
        value,
      );
    }
  }
}

/** Throws a clear error for a disposed tensor instead of tfjs's `reading 'backend'` one. */
function assertLiveTensor(t: tf.Tensor, what: string): void {
  if (t.isDisposed) {
    throw new GradientRoutingError(
      `the ${what} tensor was disposed before use; keep it alive until the step is done ` +
        '(build it inside the same tf.tidy, or dispose it after the loss).',
      'disposed',
    );
  }
}

const MASK_DTYPES: readonly tf.DataType[] = ['float32', 'int32', 'bool'];

function assertMaskDtype(mask: tf.Tensor): void {
  if (!MASK_DTYPES.includes(mask.dtype)) {
    throw new GradientRoutingError(
      `gradient-routing: a mask must be a float32, int32 or bool tensor, got ${mask.dtype}. ` +
        'Build it from numbers, e.g. tf.tensor([1, 0]).',
    );
  }
}

/**
 * Runs `build` inside a custom-gradient forward pass, where tfjs does not record ops on the
 * gradient tape. A mask built from `x` must be a constant: if its ops were taped, backprop would
 * multiply the mask's zero gradient by their local derivatives, and 0 · NaN (e.g. the derivative
 * of 1 / (1 + x²) at x = ±Infinity) would put NaN into the gradient of `x` or of variables the
 * mask function reads.
 */
function offTape(build: () => tf.Tensor): tf.Tensor {
  return tf.customGrad(() => ({ value: build(), gradFunc: () => [] }))();
}

/**
 * Resolves a {@link MaskInput} into a float32 tensor. Call inside `tf.tidy`: tensors it creates
 * are left to the tidy, and tensors it did not create (the caller's mask) are never disposed.
 */
function resolveMask(x: tf.Tensor, mask: MaskInput, range: MaskRange | undefined): tf.Tensor {
  const resolved = resolveUnchecked(x, mask);
  if (validating) checkMaskTensor(resolved, range);
  return resolved;
}

function resolveUnchecked(x: tf.Tensor, mask: MaskInput): tf.Tensor {
  if (typeof mask === 'function') {
    return offTape(() => {
      const built = mask(x);
      if (!(built instanceof tf.Tensor)) {
        throw new GradientRoutingError(
          'gradient-routing: a mask function must return a tf.Tensor; return e.g. tf.tensor([1, 0]).',
        );
      }
      assertMaskDtype(built);
      assertBroadcastsTo(built.shape, x.shape);
      // A fresh tensor even when the function returns x or a tensor it closes over, so the
      // custom-gradient node never outputs one of the caller's tensors.
      return tf.cast(built, 'float32');
    });
  }
  if (mask instanceof tf.Tensor) {
    assertLiveTensor(mask, 'mask');
    assertMaskDtype(mask);
    assertBroadcastsTo(mask.shape, x.shape);
    return mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32');
  }
  if (Array.isArray(mask)) {
    const shape = nestedArrayShape(mask);
    assertBroadcastsTo(shape, x.shape);
    return tf.tensor(mask as number[], shape, 'float32');
  }
  throw new GradientRoutingError(
    'gradient-routing: mask must be a tf.Tensor, a number array, or a function (x) => tf.Tensor.',
  );
}

function assertFloat(x: tf.Tensor, op: string): void {
  if (!(x instanceof tf.Tensor)) {
    throw new GradientRoutingError(
      `gradient-routing: ${op} needs a tf.Tensor, got ${typeof x}. Wrap the values with tf.tensor(...).`,
    );
  }
  assertLiveTensor(x, `input of ${op}`);
  if (x.dtype !== 'float32') {
    throw new GradientRoutingError(
      `gradient-routing: ${op} needs a float32 tensor, got ${x.dtype}. Cast it first with tf.cast(x, 'float32').`,
    );
  }
}

/**
 * Builds a differentiable op `(x, mask) => forward(x, mask)` whose gradient into `x` is
 * `exactMaskProduct(dy, mask)`; the mask is a constant and gets a zero gradient.
 */
function maskedGradientOp(
  forward: (x: tf.Tensor, mask: tf.Tensor) => tf.Tensor,
): (x: tf.Tensor, mask: tf.Tensor) => tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, mask, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([mask]);
    return {
      value: forward(x, mask),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const savedMask = saved[0]!;
        return [exactMaskProduct(dy, savedMask), tf.zerosLike(savedMask)];
      },
    };
  });
  return (x, mask) => op(x, mask);
}

/** Runs a masked op on `x` with its mask resolved (and, in validation mode, checked). */
function applyMasked<T extends tf.Tensor>(
  op: (x: tf.Tensor, mask: tf.Tensor) => tf.Tensor,
  name: string,
  x: T,
  mask: MaskInput,
  options: RouteOptions = {},
): T {
  assertFloat(x, name);
  // Resolved tensors made here are disposed by the tidy; the op saves its own copy for backward.
  return tf.tidy(() => op(x, resolveMask(x, mask, options.range)) as T);
}

// A clone shares x's data: the forward value is x itself, bit for bit.
const routeOp = maskedGradientOp((x) => tf.clone(x));
const gateOp = maskedGradientOp(exactMaskProduct);

/**
 * Routes gradients through `x`: the forward value is `x`, unchanged bit for bit, and the gradient
 * that flows back into `x` is `mask * dy` (broadcast), exactly `+0` wherever the mask is 0.
 *
 * The mask is a constant of the computation: no gradient flows into it.
 *
 * @param x - The tensor to route, float32. Usually an activation such as a latent code `[B, D]`.
 * @param mask - A tensor or number array that broadcasts to `x` (`[D]`, `[B,1]`, `[B,D]`, …),
 *   or a function `(x) => mask`. Values are usually 0/1; soft weights in [0, 1] scale the gradient.
 * @returns A new tensor equal to `x`; dispose it as usual.
 * @throws If the mask's shape does not broadcast to `x`'s shape (the message names both shapes).
 *
 * @example
 * ```ts
 * // Examples 0 and 1 may update only the first two latent dims, example 2 only the last two.
 * const mask = tf.tensor2d([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]]);
 * const routed = routeGradients(latent, mask);
 * ```
 */
export function routeGradients<T extends Tensor>(x: T, mask: MaskInput, options?: RouteOptions): T {
  return applyMasked(routeOp, 'routeGradients', x, mask, options);
}

/** Options of {@link routeGradients} and {@link gateForward}. */
export interface RouteOptions {
  /**
   * The range the mask's values are declared to lie in, checked when mask validation is on
   * (see {@link setMaskValidation}). Default `[0, 1]`; widen it only on purpose (a negative
   * weight reverses the gradient).
   */
  range?: MaskRange;
}

const stopOp = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
});

/**
 * Returns `x` unchanged in the forward pass and blocks all gradient into it (PyTorch's
 * `detach`, JAX's `stop_gradient`). tfjs has no such op.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  assertFloat(x, 'stopGradient');
  return stopOp(x) as T;
}

/**
 * Scales `x` by `keep` in the forward pass and the gradient by the same mask in the backward
 * pass; both directions give exact +0 where `keep` is 0, even for NaN or infinite values.
 * {@link ablate} is this op with a feature-region mask; use it directly for other masks.
 */
export function gateForward<T extends Tensor>(x: T, keep: MaskInput, options?: RouteOptions): T {
  return applyMasked(gateOp, 'gateForward', x, keep, options);
}
