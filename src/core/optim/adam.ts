import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { Moments } from './moments.js';
import { adamStep } from './update.js';

/** Settings of {@link TorchAdamOptimizer}; the defaults are `torch.optim.Adam`'s. */
export interface TorchAdamConfig {
  /** Step size. Default 1e-3. */
  learningRate?: number;
  /** Decay of the first-moment average. Default 0.9. */
  beta1?: number;
  /** Decay of the second-moment average. Default 0.999. */
  beta2?: number;
  /** Added to the bias-corrected `sqrt(v)`. Default 1e-8 (tfjs's own Adam uses its backend's, 1e-7). */
  epsilon?: number;
  /**
   * L2 coefficient added to the gradient before the moments, `g + weightDecay * p`, as PyTorch's
   * `Adam(weight_decay=...)` does (this is not AdamW's decoupled decay). Default 0.
   */
  weightDecay?: number;
}

/** One gradient as `applyGradients` receives it in list form (tfjs's `NamedTensor`). */
export interface NamedGradient {
  /** The variable's name, `variable.name`. */
  name: string;
  /** Its gradient; `null`/`undefined` means the variable got none this step and is skipped. */
  tensor: tf.Tensor | null | undefined;
}

function checkConfig(config: Required<TorchAdamConfig>): void {
  const { learningRate, beta1, beta2, epsilon, weightDecay } = config;
  const problems: string[] = [];
  if (!(Number.isFinite(learningRate) && learningRate >= 0))
    problems.push(`learningRate ${learningRate} (needs >= 0)`);
  if (!(beta1 >= 0 && beta1 < 1)) problems.push(`beta1 ${beta1} (needs 0 <= beta1 < 1)`);
  if (!(beta2 >= 0 && beta2 < 1)) problems.push(`beta2 ${beta2} (needs 0 <= beta2 < 1)`);
  if (!(Number.isFinite(epsilon) && epsilon >= 0)) problems.push(`epsilon ${epsilon} (needs >= 0)`);
  if (!(Number.isFinite(weightDecay) && weightDecay >= 0))
    problems.push(`weightDecay ${weightDecay} (needs >= 0)`);
  if (problems.length > 0) {
    throw new GradientRoutingError(
      `gradient-routing: invalid Adam setting: ${problems.join(', ')}. Pass values in those ranges.`,
    );
  }
}

/**
 * Adam that matches `torch.optim.Adam` step for step, including its `weight_decay` (an L2 term
 * added to the gradient before the moments), which tfjs's `AdamOptimizer` lacks. The paper's
 * experiment trains with `Adam(lr=1e-3, weight_decay=5e-5)`.
 *
 * Update per variable `p` with gradient `g`, at that variable's step `t`:
 * `g += weightDecay * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;`
 * `p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)`.
 *
 * Unlike tfjs's Adam, state is kept per variable name, so calls with different variable lists
 * do not mix up moments; a variable with no gradient in a step is left untouched and its step
 * count does not advance (PyTorch skips parameters whose `grad` is `None`). Works with
 * `minimize(f, returnCost, varList)`, with `applyGradients` given a name→gradient map or a list,
 * and with tfjs-layers' `model.compile({ optimizer })`. Call {@link TorchAdamOptimizer.dispose}
 * to free the moment variables (two per trained variable, created on its first step).
 *
 * Saving optimizer state (`getWeights`/`setWeights`) is not supported.
 */
export class TorchAdamOptimizer extends tf.Optimizer {
  /** The name tfjs serialisation uses for this class. */
  static get className(): string {
    return 'TorchAdam';
  }

  /** The settings in force, defaults filled in. */
  readonly config: Readonly<Required<TorchAdamConfig>>;
  private readonly moments = new Moments();

  /** @param config - Settings; omitted ones take PyTorch's defaults. */
  constructor(config: TorchAdamConfig = {}) {
    super();
    const full: Required<TorchAdamConfig> = {
      learningRate: config.learningRate ?? 1e-3,
      beta1: config.beta1 ?? 0.9,
      beta2: config.beta2 ?? 0.999,
      epsilon: config.epsilon ?? 1e-8,
      weightDecay: config.weightDecay ?? 0,
    };
    checkConfig(full);
    this.config = Object.freeze(full);
  }

  /**
   * Takes one Adam step for every variable that has a gradient.
   *
   * @param variableGradients - Gradients keyed by variable name (what `tf.variableGrads` and
   *   `computeGradients` return), or a list of `{ name, tensor }`. The gradients are not disposed.
   * @throws If a name does not belong to a live variable, or a gradient's shape differs from it.
   */
  override applyGradients(variableGradients: tf.NamedTensorMap | readonly NamedGradient[]): void {
    const list: readonly NamedGradient[] = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients as tf.NamedTensorMap).map(([name, tensor]) => ({
          name,
          tensor,
        }));
    const registered = tf.engine().registeredVariables;
    const { learningRate, beta1, beta2, epsilon, weightDecay } = this.config;
    for (const { name, tensor: gradient } of list) {
      if (gradient == null) continue;
      const variable = registered[name];
      if (variable === undefined) {
        throw new GradientRoutingError(
          `gradient-routing: TorchAdamOptimizer got a gradient for "${name}", which is not a live ` +
            'variable. Pass gradients keyed by variable.name of variables that are not disposed.',
        );
      }
      if (!tf.util.arraysEqual(variable.shape, gradient.shape)) {
        throw new GradientRoutingError(
          `gradient-routing: TorchAdamOptimizer got a gradient of shape [${gradient.shape}] for ` +
            `variable "${name}" of shape [${variable.shape}]. Pass the gradient of that variable.`,
        );
      }
      adamStep(variable, gradient, this.moments.of(variable), {
        learningRate,
        beta1,
        beta2,
        epsilon,
        l2Decay: weightDecay,
        decoupledDecay: 0,
      });
    }
    this.incrementIterations();
  }

  /** Frees the moment variables. The optimizer can be used again afterwards, starting afresh. */
  override dispose(): void {
    this.moments.dispose();
    super.dispose();
  }

  /** The settings, for tfjs serialisation. */
  override getConfig(): tf.serialization.ConfigDict {
    return { ...this.config };
  }
}

/**
 * A {@link TorchAdamOptimizer}: Adam exactly as `torch.optim.Adam`, with PyTorch's L2 weight decay.
 *
 * @example
 * ```ts
 * const optimizer = torchAdam({ learningRate: 1e-3, weightDecay: 5e-5 });
 * optimizer.minimize(() => loss(), false, variables);
 * optimizer.dispose();
 * ```
 */
export function torchAdam(config: TorchAdamConfig = {}): TorchAdamOptimizer {
  return new TorchAdamOptimizer(config);
}
