import * as tf from '@tensorflow/tfjs-core';

/*
 * The contract between the library's ops (optimisers, routing, losses, dense layers, the
 * transformer's blocks) and the backends that fuse them into one kernel each. A backend registers
 * a kernel under one of these names; the op runs it when the active backend has one and otherwise
 * computes the same values from stock ops. The fused kernels take their constants as attributes,
 * so no plain number becomes an uploaded scalar tensor. Inputs are named; each `…Grad` kernel is
 * the gradient of the kernel before it.
 */
export const LibraryKernel = {
  /**
   * The Adam/AdamW update of one variable. Inputs `{ variable, gradient, m, v }`, attrs
   * {@link AdamKernelAttrs}. Updates `variable`, `m` and `v` in place and returns no tensor;
   * where one of them shares its buffer with another tensor (a clone), it returns the three new
   * values instead, `[variable, m, v]`, for the caller to assign.
   */
  adam: 'GradientRoutingAdam',
  /**
   * `values · mask` broadcast, exactly +0 wherever the mask is 0 (even where `values` is NaN or
   * ±Infinity). Inputs `{ values, mask }`, float32; returns one tensor of the broadcast shape.
   */
  maskProduct: 'GradientRoutingMaskProduct',
  /**
   * `sign(x) · (scale / divisor)` with `scale` a scalar tensor and `divisor` an attribute: the
   * gradient of a mean of absolute values, `dy / N` times the sign of each residual. Inputs
   * `{ x, scale }`, float32; attrs `{ divisor }`.
   */
  scaledSign: 'GradientRoutingScaledSign',
  /**
   * A dense layer `activation(a·b + bias)` forward (a the batch, b the kernel), with a gradient
   * of its own (src/core/layers/dense.ts). Inputs `{ a, b, bias? }`, attrs
   * `{ activation: 'linear' | 'relu' }`.
   */
  dense: 'GradientRoutingDense',
  /**
   * A product whose one operand is read through ReLU's backward: `(a ⊙ [gate > 0])·b` or
   * `a·(b ⊙ [gate > 0])`. Inputs `{ a, b, gate? }`, attrs {@link GatedMatMulAttrs}.
   */
  gatedMatMul: 'GradientRoutingGatedMatMul',
  /**
   * Column sums of `x ⊙ [gate > 0]`: a dense layer's bias gradient. Inputs `{ x [M, N], gate? }`
   * (without `gate`, plain column sums).
   */
  gatedColumnSum: 'GradientRoutingGatedColumnSum',
  /**
   * Layer norm of `x [R, D]` with `gain [D]`, `shift [D]`, attr `epsilon` → `[R, D]`; its
   * gradient takes `x`, `gain`, `dy` and gives `[dx, dGain, dShift]`.
   */
  layerNorm: 'GradientRoutingLayerNorm',
  layerNormGrad: 'GradientRoutingLayerNormGrad',
  /** GPT-2's tanh GELU of `x`, elementwise; its gradient takes `x`, `dy`. */
  gelu: 'GradientRoutingGelu',
  geluGrad: 'GradientRoutingGeluGrad',
  /**
   * `qkv [B, T, 3D]` (queries, keys and values side by side, each split into attr `numHeads`
   * heads) → the heads' causal softmax attention merged back, `[B, T, D]`; its gradient takes
   * `qkv`, `dy` and gives `dQkv`.
   */
  causalAttention: 'GradientRoutingCausalAttention',
  causalAttentionGrad: 'GradientRoutingCausalAttentionGrad',
  /**
   * `table [V, D]`, `positions [C, D]`, `ids int32 [B, T]` (T <= C) →
   * `table[ids[b, t]] + positions[t]`; an id outside `[0, V)` embeds as zeros, as WebGPU's
   * gather does. Its gradient takes `ids`, `dy`, attrs `vocabSize`, `contextLength` and gives
   * `[dTable, dPositions]` in the full shapes.
   */
  embed: 'GradientRoutingEmbed',
  embedGrad: 'GradientRoutingEmbedGrad',
  /**
   * `logits [R, V]`, `labels int32 [R]` → `logSumExp(logits[r]) − logits[r, labels[r]]`, `[R]`;
   * a label outside `[0, V)` picks nothing, as a one-hot row of zeros does. Its gradient takes
   * `logits`, `labels`, `dy [R]`.
   */
  tokenLosses: 'GradientRoutingTokenLosses',
  tokenLossesGrad: 'GradientRoutingTokenLossesGrad',
  /**
   * `logits`, `labels`, `weights [R]` → `Σ w·loss / max(Σ w, 1)`, `[1]`; its gradient (for the
   * logits) takes `logits`, `labels`, `weights`, `dy [1]`.
   */
  tokenCrossEntropy: 'GradientRoutingTokenCrossEntropy',
  tokenCrossEntropyGrad: 'GradientRoutingTokenCrossEntropyGrad',
} as const;

/** The name of one of the library's own kernels. */
export type LibraryKernelName = (typeof LibraryKernel)[keyof typeof LibraryKernel];

/** Whether the active backend has the library's kernel `name`. */
export function hasLibraryKernel(name: LibraryKernelName): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/**
 * Constants of one Adam step for one variable ({@link LibraryKernel.adam}), computed on the host
 * in double precision, so the kernel needs no scalar tensors. With weights `p`, gradient `g`,
 * moments `m`, `v`: `g += l2Decay·p` (when l2Decay ≠ 0); `m = beta1·m + oneMinusBeta1·g`;
 * `v = beta2·v + oneMinusBeta2·g²`;
 * `p = decayFactor·p − stepSize·m / (sqrt(v) / sqrtCorrection2 + epsilon)`.
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

/**
 * Which operand of {@link LibraryKernel.gatedMatMul} is gated by a ReLU's output: read as 0
 * wherever the gate is not positive, the backward pass of ReLU, applied while the operand is
 * loaded instead of in a pass of its own.
 */
export type GatedOperand = 'none' | 'a' | 'b';

/** Attributes of {@link LibraryKernel.gatedMatMul}. */
export interface GatedMatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
  /** Which operand the gate (an input named `gate`, same shape as that operand) applies to. */
  gated: GatedOperand;
  [name: string]: tf.NamedAttrMap[string];
}
