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
import { createTransformer, type TinyTransformer } from '../../core/models/transformer.js';
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
import {
  checkpointSteps,
  type EraCheckpoint,
  type EraLocalisation,
  expansionActivations,
  forgetGradientProbe,
  routedTokenCount,
} from './localisation.js';
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

/**
 * Total units of work of a config (for progress and ETA): optimisation steps (training,
 * coherence, attack), checkpoint evaluations during training (ERA, control) and one final
 * evaluation per run.
 */
export function eraTotalSteps(config: EraConfig): number {
  const checkpoints = checkpointSteps(config.steps).length - 1;
  return eraRunPlan(config).reduce(
    (sum, run) =>
      sum +
      config.steps +
      (run.method === 'filter' ? 0 : config.coherence.steps + checkpoints) +
      1 +
      config.attack.seeds * config.attack.steps,
    0,
  );
}

/** A checkpoint: held-out losses of `model`, whole and with its expansion deleted. */
async function checkpoint(
  model: TinyTransformer,
  step: number,
  forgetDocs: readonly Int32Array[],
  retainDocs: readonly Int32Array[],
): Promise<EraCheckpoint> {
  const contracted = contractTransformerMlps(model);
  try {
    return {
      step,
      forget: await documentLoss(model, forgetDocs),
      retain: await documentLoss(model, retainDocs),
      forgetAblated: await documentLoss(contracted, forgetDocs),
      retainAblated: await documentLoss(contracted, retainDocs),
    };
  } finally {
    contracted.dispose();
  }
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
  const forgetSet = new Set(data.forgetOrder);
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
            // The new rows start like the originals: W_in at 0.02, W_out at 0.02/sqrt(2L).
            std: 0.02,
            outStd: 0.02 / Math.sqrt(2 * config.model.numLayers),
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
      // The paper counts every forget training document, labelled or not, against the retain
      // ones: the rule measures how specific a token is to the concept, not to the labels.
      const frequency =
        config.forgetTokens === 'all'
          ? null
          : tokenFrequencyWeights(
              data.forgetOrder.map((i) => data.train[i]!.subarray(1)),
              allTrain.filter((i) => !forgetSet.has(i)).map((i) => data.train[i]!.subarray(1)),
              data.tokenizer.size,
            );
      routing = { rule, labelled, frequency };
    }
    const checkpoints: EraCheckpoint[] = [];
    const checkForget = data.evalForget.slice(0, config.checkpointDocuments);
    const checkRetain = data.evalRetain.slice(0, config.checkpointDocuments);
    const expanded = method !== 'filter';
    try {
      const training = await train(model, data.train, pool, {
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
        l1Reduction: config.l1Reduction,
        onStep: (_, loss) => tick(`train ${phase}`, loss),
        // The last checkpoint is the trained model, taken below.
        ...(expanded && {
          checkpoints: {
            steps: checkpointSteps(config.steps).slice(0, -1),
            evaluate: async (step: number) => {
              checkpoints.push(await checkpoint(model, step, checkForget, checkRetain));
              tick(`checkpoint ${phase}`);
            },
          },
        }),
      });
      const trainLosses = training.losses;
      const before = {
        retain: await documentLoss(model, data.evalRetain),
        forget: await documentLoss(model, data.evalForget),
      };
      let final = model;
      let contracted: EraRunDetails['contracted'] = null;
      let coherenceStepsKept = 0;
      let localisation: EraLocalisation | null = null;
      if (expanded) {
        final = contractTransformerMlps(model);
        contracted = {
          retain: await documentLoss(final, data.evalRetain),
          forget: await documentLoss(final, data.evalForget),
        };
        checkpoints.push(await checkpoint(model, config.steps, checkForget, checkRetain));
        const forgetTrain = data.forgetOrder.map((i) => data.train[i]!);
        const routedDocs = routing === null ? [] : [...routing.labelled].map((i) => data.train[i]!);
        const length = config.model.contextLength;
        localisation = {
          routing: {
            routedShare:
              routedTokenCount(routedDocs, length, routing?.frequency ?? null).routed /
              Math.max(1, routedTokenCount(forgetTrain, length, null).tokens),
            routedTokensSeen: training.routedTokensSeen,
          },
          activations: await expansionActivations(
            model,
            config.expandLayers,
            data.evalForget,
            data.evalRetain,
          ),
          gradients: await forgetGradientProbe(
            model,
            config.expandLayers,
            data.evalForget.slice(0, config.batchSize),
            rule,
            routing?.frequency ?? null,
          ),
          checkpoints,
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
        tick(`evaluate ${phase}`);
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
          localisation,
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
