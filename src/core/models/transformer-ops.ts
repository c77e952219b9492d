import * as tf from '@tensorflow/tfjs-core';
import {
  hasLibraryKernel,
  LibraryKernel,
  type LibraryKernelName,
} from '../backend/library-kernels.js';
import { GradientRoutingError } from '../errors.js';

/*
 * The transformer's building blocks, each in two forms with the same value and gradient:
 * - a fused kernel of the library's (named 'GradientRouting…', e.g. the WebGPU ones that backend
 *   selection installs), used whenever the active backend has it, with its gradient registered
 *   below, so a forward and its backward are one to four programs instead of tens;
 * - the composite of stock tfjs ops otherwise, which tfjs differentiates; on those backends the
 *   model computes exactly what it computed before the kernels existed.
 */

/** Head widths up to this run fused: each thread keeps a few rows of this width in registers. */
const MAX_FUSED_HEAD_DIM = 128;

function runKernel(
  kernelName: LibraryKernelName,
  inputs: tf.NamedTensorMap,
  attrs: tf.NamedAttrMap = {},
): tf.Tensor | tf.Tensor[] {
  return tf.engine().runKernel(kernelName, inputs, attrs);
}

let gradientsRegistered = false;

/** Registers the fused kernels' gradients, once, before the first fused op is recorded. */
function registerFusedGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: LibraryKernel.layerNorm,
    inputsToSave: ['x', 'gain'],
    gradFunc: (dy, saved, attrs) => {
      const [x, gain] = saved as [tf.Tensor, tf.Tensor];
      const [dx, dGain, dShift] = runKernel(
        LibraryKernel.layerNormGrad,
        { x, gain, dy: dy as tf.Tensor },
        attrs,
      ) as [tf.Tensor, tf.Tensor, tf.Tensor];
      return { x: () => dx, gain: () => dGain, shift: () => dShift };
    },
  });
  tf.registerGradient({
    kernelName: LibraryKernel.gelu,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved as [tf.Tensor];
      return {
        x: () => runKernel(LibraryKernel.geluGrad, { x, dy: dy as tf.Tensor }) as tf.Tensor,
      };
    },
  });
  tf.registerGradient({
    kernelName: LibraryKernel.causalAttention,
    inputsToSave: ['qkv'],
    gradFunc: (dy, saved, attrs) => {
      const [qkv] = saved as [tf.Tensor];
      return {
        qkv: () =>
          runKernel(
            LibraryKernel.causalAttentionGrad,
            { qkv, dy: dy as tf.Tensor },
            attrs,
          ) as tf.Tensor,
      };
    },
  });
  tf.registerGradient({
    kernelName: LibraryKernel.embed,
    inputsToSave: ['ids'],
    gradFunc: (dy, saved, attrs) => {
      const [ids] = saved as [tf.Tensor];
      const [dTable, dPositions] = runKernel(
        LibraryKernel.embedGrad,
        { ids, dy: dy as tf.Tensor },
        attrs,
      ) as [tf.Tensor, tf.Tensor];
      return { table: () => dTable, positions: () => dPositions, ids: () => tf.zerosLike(ids) };
    },
  });
  tf.registerGradient({
    kernelName: LibraryKernel.tokenLosses,
    inputsToSave: ['logits', 'labels'],
    gradFunc: (dy, saved) => {
      const [logits, labels] = saved as [tf.Tensor, tf.Tensor];
      return {
        logits: () =>
          runKernel(LibraryKernel.tokenLossesGrad, {
            logits,
            labels,
            dy: dy as tf.Tensor,
          }) as tf.Tensor,
        labels: () => tf.zerosLike(labels),
      };
    },
  });
  tf.registerGradient({
    kernelName: LibraryKernel.tokenCrossEntropy,
    inputsToSave: ['logits', 'labels', 'weights'],
    gradFunc: (dy, saved) => {
      const [logits, labels, weights] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      return {
        logits: () =>
          runKernel(LibraryKernel.tokenCrossEntropyGrad, {
            logits,
            labels,
            weights,
            dy: dy as tf.Tensor,
          }) as tf.Tensor,
        labels: () => tf.zerosLike(labels),
        // Weights are data in every use of the library; if they ever depend on variables, this
        // is d(S / M)/dw = (loss − [W >= 1] · S / M) / M with W = Σw, M = max(W, 1), as tfjs's
        // maximum routes the gradient.
        weights: () => {
          const losses = runKernel(LibraryKernel.tokenLosses, { logits, labels }) as tf.Tensor;
          const total = tf.sum(weights);
          const count = tf.maximum(total, 1);
          const mean = tf.div(tf.sum(tf.mul(losses, weights)), count);
          const countGrad = tf.cast(tf.greaterEqual(total, 1), 'float32');
          return tf.mul(dy as tf.Tensor, tf.div(tf.sub(losses, tf.mul(mean, countGrad)), count));
        },
      };
    },
  });
}

function lastDim(x: tf.Tensor): number {
  return x.shape[x.shape.length - 1]!;
}

/**
 * Layer norm over the last axis, `(x − mean) / sqrt(variance + epsilon) · gain + shift`, with
 * `gain` and `shift` of shape `[D]`.
 */
export function layerNorm(
  x: tf.Tensor,
  gain: tf.Tensor,
  shift: tf.Tensor,
  epsilon = 1e-5,
): tf.Tensor {
  const dim = lastDim(x);
  if (gain.rank !== 1 || shift.rank !== 1 || gain.size !== dim || shift.size !== dim) {
    throw new GradientRoutingError(
      `layerNorm needs gain and shift of shape [${dim}] (the last axis of x), got [${gain.shape}] and [${shift.shape}].`,
    );
  }
  if (!hasLibraryKernel(LibraryKernel.layerNorm) || x.dtype !== 'float32') {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon))), gain), shift);
  }
  registerFusedGradients();
  return tf.tidy(() => {
    const flat = tf.reshape(x, [-1, dim]);
    const y = runKernel(
      LibraryKernel.layerNorm,
      { x: flat, gain, shift },
      { epsilon },
    ) as tf.Tensor;
    return tf.reshape(y, x.shape);
  });
}

/** GPT-2's tanh GELU, `x/2 · (1 + tanh(sqrt(2/π) · (x + 0.044715 x³)))`. */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (!hasLibraryKernel(LibraryKernel.gelu) || x.dtype !== 'float32') {
    // tfjs-core has no GELU op, and every op here has a gradient.
    return tf.tidy(() => {
      const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
    });
  }
  registerFusedGradients();
  return runKernel(LibraryKernel.gelu, { x }) as tf.Tensor;
}

/**
 * Causal multi-head self-attention from the packed projection `qkv [B, T, 3D]` (queries, keys
 * and values side by side, each split into `numHeads` heads): softmax(q·kᵀ/sqrt(D/numHeads))·v
 * per head, position t attending to 0..t, heads merged back into `[B, T, D]`. `causalBias` is
 * the composite's additive mask, at least `[T, T]`: 0 on and below the diagonal, -1e9 above (the
 * fused kernel masks by position instead).
 */
export function causalSelfAttention(
  qkv: tf.Tensor3D,
  numHeads: number,
  causalBias: tf.Tensor2D,
): tf.Tensor3D {
  const [batch, length, packed] = qkv.shape;
  const dim = packed / 3;
  const headDim = dim / numHeads;
  if (!(Number.isInteger(dim) && Number.isInteger(headDim) && headDim > 0)) {
    throw new GradientRoutingError(
      `causalSelfAttention needs qkv's last axis (${packed}) to be 3 · numHeads (${numHeads}) · a head width.`,
    );
  }
  if (
    hasLibraryKernel(LibraryKernel.causalAttention) &&
    qkv.dtype === 'float32' &&
    headDim <= MAX_FUSED_HEAD_DIM
  ) {
    registerFusedGradients();
    return runKernel(LibraryKernel.causalAttention, { qkv }, { numHeads }) as tf.Tensor3D;
  }
  return tf.tidy(() => {
    const bias = tf.slice(causalBias, [0, 0], [length, length]);
    const toHeads = (t: tf.Tensor) =>
      tf.transpose(tf.reshape(t, [batch, length, numHeads, headDim]), [0, 2, 1, 3]);
    const [q, k, v] = tf.split(qkv, 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const scores = tf.add(
      tf.mul(tf.matMul(toHeads(q), toHeads(k), false, true), 1 / Math.sqrt(headDim)),
      bias,
    );
    const attended = tf.matMul(tf.softmax(scores, -1), toHeads(v));
    return tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [batch, length, dim]) as tf.Tensor3D;
  });
}

/**
 * `embedding[tokens]` with the gradient `oneHot(tokens)ᵀ · dy` as one matMul: tfjs's own
 * gradient of `gather` needs UnsortedSegmentSum, which the wasm backend lacks.
 */
function embedTokens(embedding: tf.Tensor, tokens: tf.Tensor2D): tf.Tensor3D {
  const [batch, length] = tokens.shape;
  const [vocab, dim] = embedding.shape as [number, number];
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [table, ids, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    // Saved, not closed over: tokens made inside the function being differentiated are disposed
    // before the backward pass, and only saved tensors outlive it.
    save([ids]);
    return {
      value: tf.gather(table, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const savedIds = saved[0]!;
        const flatIds = tf.reshape(savedIds, [-1]) as tf.Tensor1D;
        const oneHot = tf.oneHot(flatIds, vocab);
        const grad = tf.matMul(oneHot, tf.reshape(dy, [-1, dim]) as tf.Tensor2D, true, false);
        return [grad, tf.zerosLike(savedIds)];
      },
    };
  });
  return tf.reshape(op(embedding, tokens), [batch, length, dim]) as tf.Tensor3D;
}

/**
 * Token plus position embedding: `table[tokens[b, t]] + positions[t]` for `tokens int32 [B, T]`,
 * `table [V, D]` and `positions [C, D]` with `T <= C`.
 */
export function embedTokensAndPositions(
  table: tf.Tensor,
  positions: tf.Tensor,
  tokens: tf.Tensor2D,
): tf.Tensor3D {
  const length = tokens.shape[1];
  const [contextLength, dim] = positions.shape as [number, number];
  if (hasLibraryKernel(LibraryKernel.embed) && table.dtype === 'float32') {
    registerFusedGradients();
    return runKernel(
      LibraryKernel.embed,
      { table, positions, ids: tokens },
      { vocabSize: table.shape[0]!, contextLength },
    ) as tf.Tensor3D;
  }
  return tf.add(
    embedTokens(table, tokens),
    tf.slice(positions, [0, 0], [length, dim]),
  ) as tf.Tensor3D;
}

/** Per-token next-token cross-entropy `[B, T]` in nats. */
export function tokenLosses(logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [batch, length, vocab] = logits.shape;
    if (hasLibraryKernel(LibraryKernel.tokenLosses) && logits.dtype === 'float32') {
      registerFusedGradients();
      const losses = runKernel(LibraryKernel.tokenLosses, {
        logits: tf.reshape(logits, [-1, vocab]),
        labels: tf.reshape(targets, [-1]),
      }) as tf.Tensor;
      return tf.reshape(losses, [batch, length]) as tf.Tensor2D;
    }
    const lse = tf.logSumExp(logits, -1);
    const picked = tf.sum(tf.mul(logits, tf.oneHot(targets, vocab)), -1);
    return tf.sub(lse, picked) as tf.Tensor2D;
  });
}

/**
 * Mean next-token cross-entropy in nats per counted token. `logits [B, T, V]`, `targets int32
 * [B, T]`, `weights [B, T]` (1 = count the token, 0 = padding). Differentiable.
 */
export function tokenCrossEntropy(
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
  weights: tf.Tensor2D,
): tf.Scalar {
  return tf.tidy(() => {
    const vocab = logits.shape[2];
    if (hasLibraryKernel(LibraryKernel.tokenCrossEntropy) && logits.dtype === 'float32') {
      registerFusedGradients();
      const mean = runKernel(LibraryKernel.tokenCrossEntropy, {
        logits: tf.reshape(logits, [-1, vocab]),
        labels: tf.reshape(targets, [-1]),
        weights: tf.reshape(tf.cast(weights, 'float32'), [-1]),
      }) as tf.Tensor;
      return tf.reshape(mean, []) as tf.Scalar;
    }
    const perToken = tokenLosses(logits, targets);
    return tf.div(tf.sum(tf.mul(perToken, weights)), tf.maximum(tf.sum(weights), 1)) as tf.Scalar;
  });
}
