import * as tf from '@tensorflow/tfjs-core';

/** Adam's per-variable state: first and second moments and the variable's own step count. */
export interface MomentState {
  m: tf.Variable;
  v: tf.Variable;
  /** Steps taken by this variable; PyTorch keeps the count per parameter, so we do too. */
  step: number;
}

/**
 * Adam moments kept per variable name (tfjs gives every variable a unique name), created as zeros
 * on first use. Shared by `TorchAdamOptimizer` and `AdamW`.
 */
export class Moments {
  private readonly states = new Map<string, MomentState>();

  /** The state of `variable`, created on first use. */
  of(variable: tf.Variable): MomentState {
    let state = this.states.get(variable.name);
    if (state === undefined) {
      // The tidy frees the zeros a variable is made from; the variables themselves survive it.
      state = tf.tidy(() => ({
        m: tf.variable(tf.zerosLike(variable), false),
        v: tf.variable(tf.zerosLike(variable), false),
        step: 0,
      }));
      this.states.set(variable.name, state);
    }
    return state;
  }

  /** Every state, for serialisation. */
  entries(): IterableIterator<[string, MomentState]> {
    return this.states.entries();
  }

  /** Frees every moment variable. */
  dispose(): void {
    for (const { m, v } of this.states.values()) {
      m.dispose();
      v.dispose();
    }
    this.states.clear();
  }
}
