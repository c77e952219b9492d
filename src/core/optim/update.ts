import * as tf from '@tensorflow/tfjs-core';
import {
  type AdamKernelAttrs,
  hasLibraryKernel,
  LibraryKernel,
} from '../backend/library-kernels.js';
import type { MomentState } from './moments.js';

/** The settings of one Adam step that do not depend on the variable's own step count. */
export interface AdamStepSettings {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** PyTorch Adam's L2 term added to the gradient; 0 for none. */
  l2Decay: number;
  /** AdamW's decoupled decay coefficient (`p -= lr·decoupledDecay·p`); 0 for none. */
  decoupledDecay: number;
}

/**
 * One Adam step of `variable` with `gradient`, advancing `state` (moments and step count):
 * `torch.optim.Adam` with `l2Decay`, `torch.optim.AdamW` with `decoupledDecay`. On a backend that
 * registers {@link LibraryKernel.adam} (WebGPU, once the library's kernels are installed) it is one
 * kernel with the constants as uniforms; elsewhere the same arithmetic from stock ops.
 */
export function adamStep(
  variable: tf.Variable,
  gradient: tf.Tensor,
  state: MomentState,
  settings: AdamStepSettings,
): void {
  const { learningRate, beta1, beta2, epsilon, l2Decay, decoupledDecay } = settings;
  state.step += 1;
  // Bias corrections in double precision on the host: the step count is known here, so no
  // tensor has to be read back.
  const attrs: AdamKernelAttrs = {
    beta1,
    beta2,
    oneMinusBeta1: 1 - beta1,
    oneMinusBeta2: 1 - beta2,
    epsilon,
    l2Decay,
    decayFactor: 1 - learningRate * decoupledDecay,
    stepSize: learningRate / (1 - beta1 ** state.step),
    sqrtCorrection2: Math.sqrt(1 - beta2 ** state.step),
  };
  const { m: mVar, v: vVar } = state;
  if (
    hasLibraryKernel(LibraryKernel.adam) &&
    variable.dtype === 'float32' &&
    gradient.dtype === 'float32'
  ) {
    const fresh = tf
      .engine()
      .runKernel(
        LibraryKernel.adam,
        { variable, gradient, m: mVar, v: vVar },
        attrs as unknown as tf.NamedAttrMap,
      ) as tf.Tensor[];
    // Only when a buffer was shared with another tensor: the kernel worked on copies.
    if (fresh.length === 3) {
      variable.assign(fresh[0]!);
      mVar.assign(fresh[1]!);
      vVar.assign(fresh[2]!);
      tf.dispose(fresh);
    }
    return;
  }
  tf.tidy(() => {
    const g = l2Decay === 0 ? gradient : tf.add(gradient, tf.mul(variable, l2Decay));
    const m = tf.add(tf.mul(mVar, beta1), tf.mul(g, attrs.oneMinusBeta1));
    const v = tf.add(tf.mul(vVar, beta2), tf.mul(tf.square(g), attrs.oneMinusBeta2));
    mVar.assign(m);
    vVar.assign(v);
    const decayed = decoupledDecay === 0 ? variable : tf.mul(variable, attrs.decayFactor);
    const denominator = tf.add(tf.div(tf.sqrt(v), attrs.sqrtCorrection2), epsilon);
    variable.assign(tf.sub(decayed, tf.mul(tf.div(m, denominator), attrs.stepSize)));
  });
}
