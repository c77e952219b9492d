/**
 * ERA's training loops: the (optionally routed) training from scratch with the L1 term, one plain
 * step, and the coherence fine-tune after contraction.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkGpuErrors } from '../../core/backend/webgpu/device.js';
import type { DisposableTableRule } from '../../core/masks/tokens.js';
import { type TinyTransformer, tokenCrossEntropy } from '../../core/models/transformer.js';
import { AdamW } from '../../core/optim/adamw.js';
import { forwardContext, type RoutingPlan } from '../../core/routing/points.js';
import { seededPermutation, seededRandom } from '../../core/util/random.js';
import type { EraConfig, EraL1Reduction } from './config.js';
import { disposeBatch, documentLoss, makeBatch } from './data.js';
import { routedTokenCount } from './localisation.js';

export interface TrainOptions {
  readonly steps: number;
  readonly batchSize: number;
  readonly learningRate: (step: number) => number;
  readonly weightDecay: number;
  readonly seed: number;
  /** When set, tokens of labelled documents are routed through these masks. */
  readonly routing: {
    readonly rule: DisposableTableRule;
    readonly labelled: ReadonlySet<number>;
    /** Frequency-rule weight per target token id; null routes every labelled token fully. */
    readonly frequency: Float32Array | null;
  } | null;
  /** Expanded layers whose MLP activations get the L1 penalty. */
  readonly l1Layers: readonly number[];
  readonly l1Coefficient: number;
  readonly l1Reduction: EraL1Reduction;
  readonly onStep?: (step: number, loss: number) => void;
  /** Called after each of these steps (counted from 1), before the next one; awaited. */
  readonly checkpoints?: {
    readonly steps: readonly number[];
    readonly evaluate: (step: number) => Promise<void>;
  };
}

/** What {@link train} measured. */
export interface TrainingRecord {
  /** The training objective at every step. */
  readonly losses: number[];
  /** Target tokens of labelled documents with routing weight < 0.5 in the batches seen. */
  readonly routedTokensSeen: number;
}

/** Trains `model` in place on `pool` (indices into `docs`). */
export async function train(
  model: TinyTransformer,
  docs: readonly Int32Array[],
  pool: readonly number[],
  options: TrainOptions,
): Promise<TrainingRecord> {
  const optimizer = new AdamW({ weightDecay: options.weightDecay });
  const variables = model.trainableVariables();
  const random = seededRandom(options.seed);
  let order = seededPermutation(pool.length, random);
  let cursor = 0;
  const losses: number[] = [];
  let routedTokensSeen = 0;
  const hiddenPoints = options.l1Layers.map((l) => `blocks.${l}.mlp.hidden`);
  // The same rule routes every expanded layer: they all have width mlpDim + expandUnits.
  const plan: RoutingPlan =
    options.routing === null
      ? {}
      : Object.fromEntries(hiddenPoints.map((p) => [p, options.routing!.rule] as const));
  try {
    for (let step = 0; step < options.steps; step++) {
      const picked: number[] = [];
      while (picked.length < Math.min(options.batchSize, pool.length)) {
        if (cursor >= order.length) {
          order = seededPermutation(pool.length, random);
          cursor = 0;
        }
        picked.push(pool[order[cursor++]!]!);
      }
      const routing = options.routing;
      if (routing !== null) {
        const labelledDocs = picked.filter((i) => routing.labelled.has(i)).map((i) => docs[i]!);
        routedTokensSeen += routedTokenCount(
          labelledDocs,
          model.config.contextLength,
          routing.frequency,
        ).routed;
      }
      const batch = makeBatch(
        picked.map((i) => docs[i]!),
        model.config.contextLength,
        routing === null ? null : picked.map((i) => routing.labelled.has(i)),
        routing?.frequency ?? null,
      );
      const { value, grads } = tf.variableGrads(() => {
        const context = forwardContext(model, {
          ...(routing === null
            ? {}
            : { plan, batch: { labels: batch.tokenLabels, weights: batch.softWeights } }),
          capture: hiddenPoints,
        });
        const logits = model.forward(batch.inputs, context);
        const ce = tokenCrossEntropy(logits, batch.targets, batch.weights);
        if (hiddenPoints.length === 0 || options.l1Coefficient === 0) return ce;
        // Per expanded layer, sum |activation| over tokens and units / token positions (the
        // paper's `h.norm(p=1) / (batch · context)`); 'mean' divides by the units as well.
        const penalties = [...context.captured.values()].map((h) => {
          const units = options.l1Reduction === 'mean' ? h.shape[h.shape.length - 1]! : 1;
          return tf.div(tf.sum(tf.abs(h)), (h.size / h.shape[h.shape.length - 1]!) * units);
        });
        return tf.add(ce, tf.mul(tf.addN(penalties), options.l1Coefficient)) as tf.Scalar;
      }, variables);
      optimizer.step(variables, grads, options.learningRate(step));
      const loss = (await value.data())[0]!;
      // A WebGPU validation or out-of-memory error stops the run instead of training on garbage.
      checkGpuErrors();
      losses.push(loss);
      value.dispose();
      tf.dispose(grads);
      disposeBatch(batch);
      options.onStep?.(step, loss);
      if (options.checkpoints?.steps.includes(step + 1)) {
        await options.checkpoints.evaluate(step + 1);
      }
    }
  } finally {
    optimizer.dispose();
  }
  return { losses, routedTokensSeen };
}

/** Keeps fine-tuning on `trainDocs` while `evalDocs` loss improves; model updated in place. */
export async function coherenceFineTune(
  model: TinyTransformer,
  trainDocs: readonly Int32Array[],
  evalDocs: readonly Int32Array[],
  config: EraConfig,
  seed: number,
  onStep: () => void,
): Promise<number> {
  const steps = config.coherence.steps;
  if (steps === 0) return 0;
  const best = model.clone();
  let bestLoss = await documentLoss(model, evalDocs);
  let bestStep = 0;
  const pool = trainDocs.map((_, i) => i);
  const optimizer = new AdamW({ weightDecay: config.weightDecay });
  const variables = model.trainableVariables();
  const random = seededRandom(seed);
  try {
    for (let step = 1; step <= steps; step++) {
      trainStep(
        model,
        variables,
        optimizer,
        trainDocs,
        pool,
        config.batchSize,
        random,
        config.coherence.learningRate,
      );
      const loss = await documentLoss(model, evalDocs);
      if (loss < bestLoss) {
        bestLoss = loss;
        bestStep = step;
        best.assignFrom(model);
      }
      onStep();
    }
    model.assignFrom(best);
  } finally {
    optimizer.dispose();
    best.dispose();
  }
  return bestStep;
}

/** One plain (unrouted) optimisation step on a random batch from `pool`. */
export function trainStep(
  model: TinyTransformer,
  variables: tf.Variable[],
  optimizer: AdamW,
  docs: readonly Int32Array[],
  pool: readonly number[],
  batchSize: number,
  random: () => number,
  learningRate: number,
): void {
  const picked = Array.from(
    { length: Math.min(batchSize, pool.length) },
    () => docs[pool[Math.floor(random() * pool.length)]!]!,
  );
  const batch = makeBatch(picked, model.config.contextLength, null, null);
  const { value, grads } = tf.variableGrads(
    () => tokenCrossEntropy(model.forward(batch.inputs), batch.targets, batch.weights),
    variables,
  );
  optimizer.step(variables, grads, learningRate);
  value.dispose();
  tf.dispose(grads);
  disposeBatch(batch);
  checkGpuErrors();
}
