/*
 * The contract between the optimisers (src/core/optim) and the backends that fuse their update
 * into one kernel. A backend registers a kernel under ADAM_KERNEL; the optimisers run it when the
 * active backend has one and otherwise compute the same update from stock ops.
 */

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
