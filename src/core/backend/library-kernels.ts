import * as tf from '@tensorflow/tfjs-core';

/*
 * The contract between the library's ops (optimisers, routing, losses) and the backends that
 * fuse them into one kernel each. A backend registers a kernel under one of these names; the op
 * runs it when the active backend has one and otherwise computes the same values from stock ops.
 * The fused kernels take their constants as attributes, so no plain number becomes an uploaded
 * scalar tensor.
 */

/** The kernel registered as `name` on the active backend, if any. */
export function hasLibraryKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/**
 * `values · mask` broadcast, exactly +0 wherever the mask is 0 (even where `values` is NaN or
 * ±Infinity). Inputs `{ values, mask }`, float32; returns one tensor of the broadcast shape.
 */
export const MASK_PRODUCT_KERNEL = 'GradientRoutingMaskProduct';

/**
 * `sign(x) · (scale / divisor)` with `scale` a scalar tensor and `divisor` an attribute: the
 * gradient of a mean of absolute values, `dy / N` times the sign of each residual. Inputs
 * `{ x, scale }`, float32; attrs `{ divisor }`.
 */
export const SCALED_SIGN_KERNEL = 'GradientRoutingScaledSign';

/** Name of the fused Adam/AdamW update kernel (see {@link AdamKernelAttrs}). */
export const ADAM_KERNEL = 'GradientRoutingAdam';

/**
 * Constants of one Adam step for one variable, computed on the host in double precision, so the
 * kernel needs no scalar tensors. With weights `p`, gradient `g`, moments `m`, `v`:
 * `g += l2Decay·p` (when l2Decay ≠ 0); `m = beta1·m + oneMinusBeta1·g`;
 * `v = beta2·v + oneMinusBeta2·g²`;
 * `p = decayFactor·p − stepSize·m / (sqrt(v) / sqrtCorrection2 + epsilon)`.
 * Inputs: `{ variable, gradient, m, v }`. The kernel updates `variable`, `m` and `v` in place and
 * returns no tensor; where one of them shares its buffer with another tensor (a clone), it
 * returns the three new values instead, `[variable, m, v]`, for the caller to assign.
 */
export interface AdamKernelAttrs {
  beta1: number;
  beta2: number;
  oneMinusBeta1: number;
  oneMinusBeta2: number;
  epsilon: number;
  /** PyTorch Adam's `weight_decay`, added to the gradient; 0 for none. */
  l2Decay: number;
  /** AdamW's decoupled decay, `1 − lr·weightDecay`; 1 for none. */
  decayFactor: number;
  /** `lr / (1 − beta1^t)`. */
  stepSize: number;
  /** `sqrt(1 − beta2^t)`. */
  sqrtCorrection2: number;
}
