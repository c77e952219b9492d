import type * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { Moments } from './moments.js';
import { adamStep } from './update.js';

/** Settings of {@link AdamW}; the defaults are the ERA paper's (`torch.optim.AdamW`). */
export interface AdamWConfig {
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.95 (the paper's; PyTorch's default is 0.999). */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly epsilon?: number;
  /** Decoupled decay `p -= lr · weightDecay · p` before the Adam step. Default 0.1. */
  readonly weightDecay?: number;
}

/**
 * AdamW (decoupled weight decay) as `torch.optim.AdamW`, with the learning rate given per step
 * so a schedule (warm-up, cosine decay) needs no optimizer rebuild. Moments are kept per
 * variable name; {@link AdamW.dispose} frees them.
 */
export class AdamW {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly weightDecay: number;
  private readonly moments = new Moments();

  constructor(config: AdamWConfig = {}) {
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.95;
    this.epsilon = config.epsilon ?? 1e-8;
    this.weightDecay = config.weightDecay ?? 0.1;
    const ok =
      this.beta1 >= 0 &&
      this.beta1 < 1 &&
      this.beta2 >= 0 &&
      this.beta2 < 1 &&
      this.epsilon >= 0 &&
      this.weightDecay >= 0;
    if (!ok) {
      throw new GradientRoutingError(
        'AdamW needs 0 <= beta1, beta2 < 1 and epsilon, weightDecay >= 0; check the config.',
      );
    }
  }

  /**
   * One step for each variable with a gradient in `grads` (keyed by `variable.name`).
   * Gradients are not disposed.
   */
  step(variables: readonly tf.Variable[], grads: tf.NamedTensorMap, learningRate: number): void {
    if (!(Number.isFinite(learningRate) && learningRate >= 0)) {
      throw new GradientRoutingError(`AdamW learning rate must be >= 0, got ${learningRate}.`);
    }
    for (const variable of variables) {
      const g = grads[variable.name];
      if (g === undefined) continue;
      adamStep(variable, g, this.moments.of(variable), {
        learningRate,
        beta1: this.beta1,
        beta2: this.beta2,
        epsilon: this.epsilon,
        l2Decay: 0,
        decoupledDecay: this.weightDecay,
      });
    }
  }

  /** Frees the moment variables. */
  dispose(): void {
    this.moments.dispose();
  }
}

/**
 * Linear warm-up to `peak` over `warmupSteps`, then cosine decay to `floor` at `totalSteps`
 * (the paper's schedule). `step` counts from 0.
 */
export function warmupCosine(
  step: number,
  totalSteps: number,
  peak: number,
  floor: number,
  warmupSteps: number,
): number {
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const span = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / span);
  return floor + 0.5 * (peak - floor) * (1 + Math.cos(Math.PI * progress));
}
