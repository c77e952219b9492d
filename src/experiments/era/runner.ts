/** The ERA runner: each method and label fraction through train, contract, coherence and attack. */
import { MaskTable } from '../../core/masks/table.js';
import {
  type DisposableTableRule,
  expandRouteRows,
  tokenFrequencyWeights,
  tokenRule,
} from '../../core/masks/tokens.js';
import {
  contractTransformerMlps,
  EXPANDED_REGION,
  expandTransformerMlps,
} from '../../core/models/expand.js';
import { createTransformer } from '../../core/models/transformer.js';
import { warmupCosine } from '../../core/optim/adamw.js';
import { retrainingAttack } from './attack.js';
import {
  type EraCallbacks,
  type EraConfig,
  type EraDocument,
  type EraMethod,
  type EraResult,
  type EraRun,
  type EraRunDetails,
  validateEraConfig,
} from './config.js';
import { documentLoss, prepareEraData } from './data.js';
import { coherenceFineTune, type TrainOptions, train } from './training.js';

/** The (method, fraction) pairs a config runs, in order; `control` runs once (it uses no labels). */
export function eraRunPlan(config: EraConfig): Array<{ method: EraMethod; labelFraction: number }> {
  const plan: Array<{ method: EraMethod; labelFraction: number }> = [];
  if (config.methods.includes('control')) plan.push({ method: 'control', labelFraction: 0 });
  for (const f of config.labelFractions) {
    for (const method of config.methods)
      if (method !== 'control') plan.push({ method, labelFraction: f });
  }
  return plan;
}

/** Total optimisation steps of a config (for progress and ETA). */
export function eraTotalSteps(config: EraConfig): number {
  return eraRunPlan(config).reduce(
    (sum, run) =>
      sum +
      config.steps +
      (run.method === 'filter' ? 0 : config.coherence.steps) +
      config.attack.seeds * config.attack.steps,
    0,
  );
}

/**
 * Runs ERA and its baselines on labelled documents: for each method and label fraction, train
 * the same transformer (same seed, same steps) — ERA with the forget tokens' gradients routed
 * into expanded MLP units, control expanded without routing, filter on the base model without
 * the labelled forget documents — then contract (ERA, control), fine-tune for coherence, and run
 * the retraining attack. Needs a tfjs backend with gradients registered (import
 * `@tensorflow/tfjs-layers`, which `gradient-routing` does).
 *
 * @throws On an invalid config, unknown forget labels (no document has them), or too few documents.
 */
export async function runEraExperiment(
  documents: readonly EraDocument[],
  config: EraConfig,
  callbacks: EraCallbacks = {},
): Promise<EraResult> {
  validateEraConfig(config);
  const started = performance.now();
  const data = prepareEraData(documents, config);
  const total = eraTotalSteps(config);
  let done = 0;
  const tick = (phase: string, loss?: number) => {
    done += 1;
    callbacks.onProgress?.({ done, total, phase, ...(loss === undefined ? {} : { loss }) });
  };
  const runs: EraRun[] = [];
  const details: EraRunDetails[] = [];
  const base = { ...config.model, vocabSize: data.tokenizer.size, seed: config.seed };
  const allTrain = data.train.map((_, i) => i);
  for (const { method, labelFraction } of eraRunPlan(config)) {
    const phase = `${method}${method === 'control' ? '' : ` ${labelFraction}`}`;
    const labelledCount =
      method === 'control' ? 0 : Math.round(labelFraction * data.forgetOrder.length);
    const labelled = new Set(data.forgetOrder.slice(0, labelledCount));
    const pool = method === 'filter' ? allTrain.filter((i) => !labelled.has(i)) : allTrain;
    const initial = createTransformer(base);
    // Filtering trains the base model; ERA and the control train the expanded one.
    const model =
      method === 'filter'
        ? initial
        : expandTransformerMlps(initial, {
            layers: config.expandLayers,
            units: config.expandUnits,
            seed: config.seed + 101,
          });
    if (model !== initial) initial.dispose();
    let routing: TrainOptions['routing'] = null;
    let rule: DisposableTableRule | null = null;
    if (method === 'era' && labelledCount > 0) {
      const layer = config.expandLayers[0]!;
      const region = model.mlpRegions(layer).find((r) => r.name === EXPANDED_REGION)!;
      const low = Math.min(0, config.originalUnitWeight);
      const table = new MaskTable(
        expandRouteRows(model.mlpWidth(layer), region, config.originalUnitWeight),
        { range: [low, Math.max(1, config.originalUnitWeight)] },
      );
      // Forget tokens are pulled toward row 0 (all ones) by the frequency rule's weight.
      rule = tokenRule(table, { toward: 0, description: 'ERA forget tokens' });
      const frequency = tokenFrequencyWeights(
        [...labelled].map((i) => data.train[i]!.subarray(1)),
        allTrain.filter((i) => !labelled.has(i)).map((i) => data.train[i]!.subarray(1)),
        data.tokenizer.size,
      );
      routing = { rule, labelled, frequency };
    }
    try {
      const trainLosses = await train(model, data.train, pool, {
        steps: config.steps,
        batchSize: config.batchSize,
        learningRate: (step) =>
          warmupCosine(
            step,
            config.steps,
            config.learningRate,
            config.minLearningRate,
            config.warmupSteps,
          ),
        weightDecay: config.weightDecay,
        seed: config.seed + 17,
        routing,
        l1Layers: method === 'filter' ? [] : config.expandLayers,
        l1Coefficient: config.l1Coefficient,
        onStep: (_, loss) => tick(`train ${phase}`, loss),
      });
      const before = {
        retain: await documentLoss(model, data.evalRetain),
        forget: await documentLoss(model, data.evalForget),
      };
      let final = model;
      let contracted: EraRunDetails['contracted'] = null;
      let coherenceStepsKept = 0;
      if (method !== 'filter') {
        final = contractTransformerMlps(model);
        contracted = {
          retain: await documentLoss(final, data.evalRetain),
          forget: await documentLoss(final, data.evalForget),
        };
        coherenceStepsKept = await coherenceFineTune(
          final,
          data.coherenceTrain,
          data.coherenceEval,
          config,
          config.seed + 23,
          () => tick(`coherence ${phase}`),
        );
      }
      try {
        const after =
          final === model
            ? before
            : {
                retain: await documentLoss(final, data.evalRetain),
                forget: await documentLoss(final, data.evalForget),
              };
        const attack = await retrainingAttack(final, data, config, () => tick(`attack ${phase}`));
        const minima = attack.curves.map((c) => Math.min(...c));
        const worst = minima.indexOf(Math.min(...minima));
        const attackedRetain = attack.retainAtMin[worst]!;
        runs.push({
          method,
          labelFraction,
          retain: {
            before: before.retain,
            after: after.retain,
            attacked: Number.isNaN(attackedRetain) ? after.retain : attackedRetain,
          },
          forget: { before: before.forget, after: after.forget, attacked: Math.min(...minima) },
        });
        details.push({
          method,
          labelFraction,
          trainLosses,
          contracted,
          coherenceStepsKept,
          attackSteps: attack.steps,
          attackCurves: attack.curves,
          attackRetain: attack.retainAtMin,
          trainDocuments: pool.length,
          labelledForget: labelledCount,
        });
      } finally {
        if (final !== model) final.dispose();
      }
    } finally {
      model.dispose();
      rule?.dispose();
    }
    // Let the event loop breathe between runs (progress output, signals).
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return { config, runs, details, data: data.stats, seconds: (performance.now() - started) / 1000 };
}
