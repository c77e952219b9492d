/**
 * Expand-Route-Ablate (ERA, Cloud et al. 2024, Section 4.2) on a small transformer trained on
 * labelled text: the runner, its presets, and the summary. Browser-safe: it takes documents,
 * not files (`loadWordNetGlosses` / `loadLabelledCorpus` in `gradient-routing/node` read them).
 */
import * as tf from '@tensorflow/tfjs-core';
import { buildWordTokenizer, PAD_ID, type WordTokenizer } from '../core/data/tokenizer.js';
import { GradientRoutingError } from '../core/errors.js';
import { MaskTable } from '../core/masks/table.js';
import {
  type DisposableTableRule,
  expandRouteRows,
  tokenFrequencyWeights,
  tokenRule,
} from '../core/masks/tokens.js';
import {
  contractTransformerMlps,
  EXPANDED_REGION,
  expandTransformerMlps,
} from '../core/models/expand.js';
import {
  createTransformer,
  type TinyTransformer,
  type TransformerConfig,
  tokenCrossEntropy,
  tokenLosses,
} from '../core/models/transformer.js';
import { AdamW, warmupCosine } from '../core/optim/adamw.js';
import { forwardContext, type RoutingPlan } from '../core/routing/points.js';
import { seededPermutation, seededRandom } from '../core/util/random.js';

/** The methods compared. */
export type EraMethod = 'era' | 'control' | 'filter';
/** Every method, in the order runs and tables list them. */
export const ERA_METHODS: readonly EraMethod[] = ['era', 'control', 'filter'];

/** A labelled document (what the node loaders return). */
export interface EraDocument {
  readonly text: string;
  readonly label: string;
}

/** Everything that defines an ERA experiment. */
export interface EraConfig {
  /**
   * The transformer's shape, in its own config's terms (`vocabSize` counts the word vocabulary
   * with its special tokens; documents longer than `contextLength` tokens are cut); its seed is
   * the experiment's.
   */
  readonly model: Omit<TransformerConfig, 'seed'>;
  /** Labels of the forget concept (WordNet: lexicographer files such as `noun.plant`). */
  readonly forget: readonly string[];
  /** Methods to run. */
  readonly methods: readonly EraMethod[];
  /** Fractions of forget training documents that are labelled, each in [0, 1]. */
  readonly labelFractions: readonly number[];
  /** Hidden units added to each expanded MLP (the paper: 64 of 2048). */
  readonly expandUnits: number;
  /** Blocks whose MLPs are expanded (the paper: the first 5 of 8). */
  readonly expandLayers: readonly number[];
  /** Mask weight of the original units for labelled forget tokens (the paper: −0.75). */
  readonly originalUnitWeight: number;
  /**
   * L1 coefficient on the expanded layers' MLP activations (the paper: 1e-4), times the mean
   * absolute activation over tokens and units of each expanded layer.
   */
  readonly l1Coefficient: number;
  readonly steps: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly minLearningRate: number;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  /** Validation documents per side (retain, forget) for the reported losses. */
  readonly evalDocuments: number;
  /** Coherence fine-tune after contraction: retain documents, steps, learning rate. */
  readonly coherence: {
    readonly documents: number;
    readonly steps: number;
    readonly learningRate: number;
  };
  /** Retraining attack: held-out forget documents, steps, seeds, learning rate, batch. */
  readonly attack: {
    readonly documents: number;
    readonly steps: number;
    readonly seeds: number;
    readonly learningRate: number;
    readonly batchSize: number;
    /** Evaluate the forget loss every this many attack steps (and at step 0). */
    readonly evalEvery: number;
  };
  /** Seed of the split, the labelling, the initial weights and the batch order. */
  readonly seed: number;
}

/**
 * The paper's protocol (layers 0-4 of 8 expanded, 5 seeds, a 64-document attack, label fractions
 * of 25, 50 and 100 %) on a model a workstation CPU trains overnight with the wasm backend: an
 * estimate of ~12 hours for its 7 trainings, extrapolated from the quick preset, not measured.
 */
const full: EraConfig = {
  forget: ['noun.plant'],
  methods: ERA_METHODS,
  labelFractions: [0.25, 0.5, 1],
  model: {
    vocabSize: 4096,
    contextLength: 32,
    modelDim: 128,
    numLayers: 8,
    numHeads: 4,
    mlpDim: 512,
  },
  expandUnits: 32,
  expandLayers: [0, 1, 2, 3, 4],
  originalUnitWeight: -0.75,
  l1Coefficient: 1e-4,
  weightDecay: 0.1,
  steps: 3000,
  batchSize: 64,
  learningRate: 1e-3,
  minLearningRate: 1e-4,
  warmupSteps: 100,
  evalDocuments: 1000,
  coherence: { documents: 64, steps: 40, learningRate: 1e-4 },
  attack: { documents: 64, steps: 40, seeds: 5, learningRate: 1e-4, batchSize: 16, evalEvery: 2 },
  seed: 0,
};

/** A few minutes on a 2-core CPU: a smaller model, 150 steps, one label fraction. */
const quick: EraConfig = {
  ...full,
  labelFractions: [0.5],
  model: {
    ...full.model,
    vocabSize: 1024,
    contextLength: 24,
    modelDim: 64,
    numLayers: 4,
    mlpDim: 256,
  },
  expandLayers: [0, 1],
  steps: 150,
  batchSize: 32,
  learningRate: 3e-3,
  minLearningRate: 3e-4,
  warmupSteps: 15,
  evalDocuments: 256,
  coherence: { ...full.coherence, steps: 10, learningRate: 3e-4 },
  attack: { ...full.attack, learningRate: 3e-4, batchSize: 8, evalEvery: 10 },
};

/**
 * Named configurations: `quick` (the default, a few minutes on a 2-core CPU), `full` (overnight
 * on a workstation) and `smoke` (seconds, for tests; its numbers mean nothing). `quick` differs
 * from `full` and `smoke` from `quick` only where they say.
 */
export const eraPresets = {
  quick,
  full,
  smoke: {
    ...quick,
    labelFractions: [1],
    model: { vocabSize: 64, contextLength: 8, modelDim: 16, numLayers: 2, numHeads: 2, mlpDim: 32 },
    expandUnits: 8,
    expandLayers: [0],
    steps: 6,
    batchSize: 8,
    warmupSteps: 2,
    evalDocuments: 8,
    coherence: { ...quick.coherence, documents: 8, steps: 2 },
    attack: { ...quick.attack, documents: 8, steps: 4, seeds: 2, batchSize: 4, evalEvery: 2 },
  },
} satisfies Record<string, EraConfig>;

/** The names of {@link eraPresets}. */
export type EraPresetName = keyof typeof eraPresets;

/** Losses in nats per token at the three stages of a run. */
export interface EraLosses {
  /** Before contraction (the trained model; for `filter`, the trained model). */
  readonly before: number;
  /** After contraction and the coherence fine-tune (for `filter`, the trained model). */
  readonly after: number;
  /** The minimum over the retraining attack (forget), or retain loss at that point. */
  readonly attacked: number;
}

/** One method at one label fraction. */
export interface EraRun {
  readonly method: EraMethod;
  /** Fraction of forget documents labelled; 0 for `control`, which uses no labels. */
  readonly labelFraction: number;
  readonly retain: EraLosses;
  readonly forget: EraLosses;
}

/** What a run measured beyond the summary, for figures and inspection. */
export interface EraRunDetails {
  readonly method: EraMethod;
  readonly labelFraction: number;
  /** Training objective every step: cross-entropy plus the L1 term (ERA, control). */
  readonly trainLosses: number[];
  /** Losses right after contraction, before the coherence fine-tune (null for `filter`). */
  readonly contracted: { retain: number; forget: number } | null;
  /** Coherence steps kept (0 = the contracted weights were best). */
  readonly coherenceStepsKept: number;
  /** Attack: the steps evaluated and, per seed, forget loss at those steps. */
  readonly attackSteps: number[];
  readonly attackCurves: number[][];
  /** Retain loss of the attacked model at the step of its minimum forget loss, per seed. */
  readonly attackRetain: number[];
  /** Documents of the training pool, and how many of them were labelled forget. */
  readonly trainDocuments: number;
  readonly labelledForget: number;
}

/** Sizes of the data after the split. */
export interface EraDataStats {
  readonly documents: number;
  readonly forgetDocuments: number;
  readonly trainRetain: number;
  readonly trainForget: number;
  readonly vocabSize: number;
  /** Share of training tokens that are `<unk>`. */
  readonly unknownTokenShare: number;
}

/** Everything an ERA experiment measured. */
export interface EraResult {
  /** The configuration that ran. */
  readonly config: EraConfig;
  /** One row per method and label fraction: losses before and after contraction and the attack. */
  readonly runs: EraRun[];
  /** Per run: training losses and attack curves, for the figures. */
  readonly details: EraRunDetails[];
  /** The corpus split's sizes. */
  readonly data: EraDataStats;
  /** Wall time of the whole experiment. */
  readonly seconds: number;
}

/** Progress of a run, for a progress bar. */
export interface EraProgress {
  /** Work done and total, in optimisation steps (training, coherence and attack). */
  readonly done: number;
  readonly total: number;
  /** e.g. `train era 0.5`, `attack control`. */
  readonly phase: string;
  /** Latest training loss, when the phase is training. */
  readonly loss?: number;
}

/** Callbacks of {@link runEraExperiment}. */
export interface EraCallbacks {
  /** Called after every optimisation step of every phase. */
  readonly onProgress?: (progress: EraProgress) => void;
}

function fail(message: string): never {
  throw new GradientRoutingError(`${message}`);
}

/**
 * Checks a config; throws naming the problem and the fix.
 */
export function validateEraConfig(config: EraConfig): void {
  if (config.forget.length === 0) fail('ERA needs at least one forget label, e.g. noun.plant.');
  for (const m of config.methods) {
    if (!ERA_METHODS.includes(m)) {
      fail(`unknown ERA method '${m}'; use ${ERA_METHODS.join(', ')}.`);
    }
  }
  if (config.methods.length === 0)
    fail(`ERA needs at least one method (${ERA_METHODS.join(', ')}).`);
  if (config.labelFractions.length === 0) fail('ERA needs at least one label fraction, e.g. 1.');
  for (const f of config.labelFractions) {
    if (!(Number.isFinite(f) && f >= 0 && f <= 1)) {
      fail(`label fraction ${f} is outside [0, 1]; pass fractions such as 0.25,0.5,1.`);
    }
  }
  const positive: Array<[string, number]> = [
    ['steps', config.steps],
    ['batchSize', config.batchSize],
    ['evalDocuments', config.evalDocuments],
    ['expandUnits', config.expandUnits],
    ['attack.documents', config.attack.documents],
    ['attack.steps', config.attack.steps],
    ['attack.seeds', config.attack.seeds],
    ['attack.batchSize', config.attack.batchSize],
    ['attack.evalEvery', config.attack.evalEvery],
    ['coherence.documents', config.coherence.documents],
  ];
  for (const [name, value] of positive) {
    if (!(Number.isInteger(value) && value > 0))
      fail(`ERA ${name} must be a positive integer, got ${value}.`);
  }
  if (!(Number.isInteger(config.coherence.steps) && config.coherence.steps >= 0)) {
    fail(`ERA coherence.steps must be an integer >= 0, got ${config.coherence.steps}.`);
  }
  for (const layer of config.expandLayers) {
    if (!(Number.isInteger(layer) && layer >= 0 && layer < config.model.numLayers)) {
      fail(`ERA expandLayers holds ${layer}; layers are 0..${config.model.numLayers - 1}.`);
    }
  }
  if (config.expandLayers.length === 0) fail('ERA needs at least one layer to expand.');
}

interface Batch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  weights: tf.Tensor2D;
  /** 1 where the token's document is labelled forget (and routed), else 0. */
  tokenLabels: tf.Tensor2D;
  /** Frequency-rule weight of each token's target. */
  softWeights: tf.Tensor2D;
}

function makeBatch(
  docs: readonly Int32Array[],
  length: number,
  labelled: readonly boolean[] | null,
  frequency: Float32Array | null,
): Batch {
  const B = docs.length;
  const inputs = new Int32Array(B * length);
  const targets = new Int32Array(B * length);
  const weights = new Float32Array(B * length);
  const labels = new Int32Array(B * length);
  const soft = new Float32Array(B * length).fill(1);
  docs.forEach((doc, b) => {
    for (let t = 0; t < length; t++) {
      const input = doc[t] ?? PAD_ID;
      const target = doc[t + 1] ?? PAD_ID;
      const at = b * length + t;
      inputs[at] = input;
      targets[at] = target;
      weights[at] = t + 1 < doc.length ? 1 : 0;
      if (labelled?.[b] === true) {
        labels[at] = 1;
        soft[at] = frequency === null ? 0 : frequency[target]!;
      }
    }
  });
  const shape: [number, number] = [B, length];
  return {
    inputs: tf.tensor2d(inputs, shape, 'int32'),
    targets: tf.tensor2d(targets, shape, 'int32'),
    weights: tf.tensor2d(weights, shape),
    tokenLabels: tf.tensor2d(labels, shape, 'int32'),
    softWeights: tf.tensor2d(soft, shape),
  };
}

function disposeBatch(batch: Batch): void {
  for (const t of Object.values(batch)) (t as tf.Tensor).dispose();
}

/** Mean next-token loss in nats per token over `docs`. */
export async function documentLoss(
  model: TinyTransformer,
  docs: readonly Int32Array[],
  batchSize = 64,
): Promise<number> {
  let total = 0;
  let count = 0;
  const length = model.config.contextLength;
  for (let start = 0; start < docs.length; start += batchSize) {
    const batch = makeBatch(docs.slice(start, start + batchSize), length, null, null);
    const [sum, n] = tf.tidy(() => {
      const losses = tokenLosses(model.forward(batch.inputs), batch.targets);
      return [tf.sum(tf.mul(losses, batch.weights)), tf.sum(batch.weights)];
    });
    // Read asynchronously: WebGPU in Node cannot read synchronously.
    total += (await sum!.data())[0]!;
    count += (await n!.data())[0]!;
    sum!.dispose();
    n!.dispose();
    disposeBatch(batch);
  }
  return count === 0 ? Number.NaN : total / count;
}

interface TrainOptions {
  readonly steps: number;
  readonly batchSize: number;
  readonly learningRate: (step: number) => number;
  readonly weightDecay: number;
  readonly seed: number;
  /** When set, tokens of labelled documents are routed through these masks. */
  readonly routing: {
    readonly rule: DisposableTableRule;
    readonly labelled: ReadonlySet<number>;
    readonly frequency: Float32Array;
  } | null;
  /** Expanded layers whose MLP activations get the L1 penalty. */
  readonly l1Layers: readonly number[];
  readonly l1Coefficient: number;
  readonly onStep?: (step: number, loss: number) => void;
}

/** Trains `model` in place on `pool` (indices into `docs`); returns the loss of every step. */
async function train(
  model: TinyTransformer,
  docs: readonly Int32Array[],
  pool: readonly number[],
  options: TrainOptions,
): Promise<number[]> {
  const optimizer = new AdamW({ weightDecay: options.weightDecay });
  const variables = model.trainableVariables();
  const random = seededRandom(options.seed);
  let order = seededPermutation(pool.length, random);
  let cursor = 0;
  const losses: number[] = [];
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
        // Per expanded layer: mean |activation| over tokens and units (PyTorch's
        // `h.abs().mean()`). Summing over units instead made the penalty ~300x stronger here and
        // held the quick model at its unigram plateau (measured: train loss 4.06 vs 3.68 at 150 steps).
        const penalties = [...context.captured.values()].map((h) => tf.mean(tf.abs(h)));
        return tf.add(ce, tf.mul(tf.addN(penalties), options.l1Coefficient)) as tf.Scalar;
      }, variables);
      optimizer.step(variables, grads, options.learningRate(step));
      const loss = (await value.data())[0]!;
      losses.push(loss);
      value.dispose();
      tf.dispose(grads);
      disposeBatch(batch);
      options.onStep?.(step, loss);
    }
  } finally {
    optimizer.dispose();
  }
  return losses;
}

/** Everything the methods share after the split. */
interface Prepared {
  readonly tokenizer: WordTokenizer;
  readonly train: Int32Array[];
  /** Forget training documents in labelling order (a prefix of length f·n is labelled). */
  readonly forgetOrder: number[];
  readonly evalRetain: Int32Array[];
  readonly evalForget: Int32Array[];
  readonly attackForget: Int32Array[];
  readonly coherenceTrain: Int32Array[];
  readonly coherenceEval: Int32Array[];
  readonly stats: EraDataStats;
}

/**
 * Splits the documents (seeded), builds the vocabulary on the training split and encodes.
 *
 * @throws If no document has a forget label, or too few to hold out evaluation and attack sets.
 */
function prepareEraData(documents: readonly EraDocument[], config: EraConfig): Prepared {
  const forgetLabels = new Set(config.forget);
  const isForget = documents.map((d) => forgetLabels.has(d.label));
  const forgetCount = isForget.filter(Boolean).length;
  if (forgetCount === 0) {
    const counts = new Map<string, number>();
    for (const d of documents) counts.set(d.label, (counts.get(d.label) ?? 0) + 1);
    const common = [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([l, n]) => `${l} (${n})`)
      .join(', ');
    fail(
      `no document has a forget label (${config.forget.join(', ')}); choose labels that occur in the corpus, e.g. ${common}.`,
    );
  }
  const heldForget = config.evalDocuments + config.attack.documents;
  const heldRetain = config.evalDocuments + 2 * config.coherence.documents;
  if (forgetCount < heldForget + config.batchSize) {
    fail(
      `the forget concept (${config.forget.join(', ')}) has ${forgetCount} documents; ERA holds out ${heldForget} (evaluation + attack) and trains on the rest, so it needs at least ${heldForget + config.batchSize}. Add labels to the forget concept or lower evalDocuments / attack.documents.`,
    );
  }
  if (documents.length - forgetCount < heldRetain + config.batchSize) {
    fail(
      `only ${documents.length - forgetCount} retain documents; ERA needs at least ${heldRetain + config.batchSize}. Use a larger corpus or lower evalDocuments / coherence.documents.`,
    );
  }
  const order = seededPermutation(documents.length, config.seed);
  const forgetIdx: number[] = [];
  const retainIdx: number[] = [];
  for (const i of order) (isForget[i] ? forgetIdx : retainIdx).push(i);
  const evalForgetIdx = forgetIdx.slice(0, config.evalDocuments);
  const attackIdx = forgetIdx.slice(config.evalDocuments, heldForget);
  const trainForgetIdx = forgetIdx.slice(heldForget);
  const evalRetainIdx = retainIdx.slice(0, config.evalDocuments);
  const coherenceTrainIdx = retainIdx.slice(
    config.evalDocuments,
    config.evalDocuments + config.coherence.documents,
  );
  const coherenceEvalIdx = retainIdx.slice(
    config.evalDocuments + config.coherence.documents,
    heldRetain,
  );
  const trainRetainIdx = retainIdx.slice(heldRetain);
  // Training documents in corpus-shuffled order, forget and retain interleaved as they fall.
  const trainSet = new Set([...trainForgetIdx, ...trainRetainIdx]);
  const trainIdx = Array.from(order).filter((i) => trainSet.has(i));
  const tokenizer = buildWordTokenizer(
    trainIdx.map((i) => documents[i]!.text),
    config.model.vocabSize,
  );
  const maxTokens = config.model.contextLength + 1;
  const encode = (idx: readonly number[]) =>
    idx.map((i) => tokenizer.encodeDocument(documents[i]!.text, maxTokens));
  const train = encode(trainIdx);
  const position = new Map(trainIdx.map((doc, at) => [doc, at]));
  const forgetOrder = trainForgetIdx.map((i) => position.get(i)!);
  let tokens = 0;
  let unknown = 0;
  for (const doc of train) {
    tokens += doc.length - 1;
    for (let t = 1; t < doc.length; t++) if (doc[t] === 1) unknown += 1;
  }
  return {
    tokenizer,
    train,
    forgetOrder,
    evalRetain: encode(evalRetainIdx),
    evalForget: encode(evalForgetIdx),
    attackForget: encode(attackIdx),
    coherenceTrain: encode(coherenceTrainIdx),
    coherenceEval: encode(coherenceEvalIdx),
    stats: {
      documents: documents.length,
      forgetDocuments: forgetCount,
      trainRetain: trainRetainIdx.length,
      trainForget: trainForgetIdx.length,
      vocabSize: tokenizer.size,
      unknownTokenShare: tokens === 0 ? 0 : unknown / tokens,
    },
  };
}

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

/** Keeps fine-tuning on `trainDocs` while `evalDocs` loss improves; model updated in place. */
async function coherenceFineTune(
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
function trainStep(
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
}

/** The retraining attack on a copy of `model`, per seed; `model` is not changed. */
async function retrainingAttack(
  model: TinyTransformer,
  data: Prepared,
  config: EraConfig,
  onStep: () => void,
): Promise<{ steps: number[]; curves: number[][]; retainAtMin: number[] }> {
  const { attack } = config;
  const steps: number[] = [];
  for (let s = 0; s <= attack.steps; s += attack.evalEvery) steps.push(s);
  if (steps[steps.length - 1] !== attack.steps) steps.push(attack.steps);
  const curves: number[][] = [];
  const retainAtMin: number[] = [];
  const pool = data.attackForget.map((_, i) => i);
  const start = await documentLoss(model, data.evalForget);
  for (let seed = 0; seed < attack.seeds; seed++) {
    const attacked = model.clone();
    const optimizer = new AdamW({ weightDecay: config.weightDecay });
    const variables = attacked.trainableVariables();
    const random = seededRandom(config.seed * 1000 + 7919 * (seed + 1));
    const curve = [start];
    let best = start;
    let bestRetain = Number.NaN;
    try {
      for (let step = 1; step <= attack.steps; step++) {
        trainStep(
          attacked,
          variables,
          optimizer,
          data.attackForget,
          pool,
          attack.batchSize,
          random,
          attack.learningRate,
        );
        onStep();
        if (steps.includes(step)) {
          const loss = await documentLoss(attacked, data.evalForget);
          curve.push(loss);
          if (loss < best) {
            best = loss;
            bestRetain = await documentLoss(attacked, data.evalRetain);
          }
        }
      }
    } finally {
      optimizer.dispose();
      attacked.dispose();
    }
    curves.push(curve);
    retainAtMin.push(bestRetain);
  }
  return { steps, curves, retainAtMin };
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

/** The `summary.json` of an ERA run. */
export interface EraSummary {
  readonly preset: string;
  readonly backend: string;
  readonly wallSeconds: number;
  readonly config: EraConfig;
  readonly runs: EraRun[];
}

/** The JSON summary of an ERA experiment (what `summary.json` holds). */
export function summarizeEra(
  result: EraResult,
  meta: { preset: string; backend: string; wallSeconds: number },
): EraSummary {
  return {
    preset: meta.preset,
    backend: meta.backend,
    wallSeconds: meta.wallSeconds,
    config: result.config,
    runs: result.runs,
  };
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const signed = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(3)}` : 'n/a');

/**
 * The summary as a Markdown table: per method and label fraction, retain and forget loss
 * (nats/token) before and after contraction, their change, and the forget loss after the attack.
 */
export function formatEraTable(summary: EraSummary): string {
  const header =
    '| method | labels | retain before | retain after | Δ retain | forget before | forget after | Δ forget | forget attacked | Δ forget attacked |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = summary.runs.map((r) => {
    const labels = r.method === 'control' ? '–' : `${Math.round(r.labelFraction * 100)} %`;
    return `| ${r.method} | ${labels} | ${f3(r.retain.before)} | ${f3(r.retain.after)} | ${signed(r.retain.after - r.retain.before)} | ${f3(r.forget.before)} | ${f3(r.forget.after)} | ${signed(r.forget.after - r.forget.before)} | ${f3(r.forget.attacked)} | ${signed(r.forget.attacked - r.forget.before)} |`;
  });
  return [header, rule, ...rows].join('\n');
}
