/**
 * ERA's configuration: the methods, the config type, the presets and their validation, and the
 * result types every step of the protocol shares.
 */
import { GradientRoutingError } from '../../core/errors.js';
import type { TransformerConfig } from '../../core/models/transformer.js';
import type { EraLocalisation } from './localisation.js';

/** The methods compared. */
export type EraMethod = 'era' | 'control' | 'filter';
/** Every method, in the order runs and tables list them. */
export const ERA_METHODS: readonly EraMethod[] = ['era', 'control', 'filter'];

/** How the L1 term reduces activations (see {@link EraConfig.l1Reduction}). */
export type EraL1Reduction = 'sum' | 'mean';
/** Which tokens of labelled forget documents are routed (see {@link EraConfig.forgetTokens}). */
export type EraForgetTokens = 'frequency' | 'all';

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
  /** L1 coefficient on the expanded layers' MLP activations (the paper: 1e-4). */
  readonly l1Coefficient: number;
  /**
   * How the L1 term reduces each expanded layer's |activation| `[B, T, width]`: `'sum'` sums over
   * units and divides by the batch's token positions `B·T` (the paper's code: `h.norm(p=1) /
   * (batch · context)`); `'mean'` divides by the units as well (`sum` / width), a penalty `width`
   * times weaker.
   */
  readonly l1Reduction: EraL1Reduction;
  /**
   * Which tokens of a labelled forget document are routed: `'frequency'` (the paper) softens each
   * token's mask toward all-ones by the token-frequency rule on its target token; `'all'` routes
   * every token fully, a mechanism check with no rule between the labels and the masks.
   */
  readonly forgetTokens: EraForgetTokens;
  readonly steps: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly minLearningRate: number;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  /** Validation documents per side (retain, forget) for the reported losses. */
  readonly evalDocuments: number;
  /**
   * Validation documents per side for the checkpoints taken every 10 % of training: the first
   * ones of the validation sets (all of them when `evalDocuments` is smaller). Each checkpoint
   * evaluates 4 losses, so fewer than `evalDocuments` keeps them cheap.
   */
  readonly checkpointDocuments: number;
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
  l1Reduction: 'sum',
  forgetTokens: 'frequency',
  weightDecay: 0.1,
  steps: 3000,
  batchSize: 64,
  learningRate: 1e-3,
  minLearningRate: 1e-4,
  warmupSteps: 100,
  evalDocuments: 1000,
  checkpointDocuments: 256,
  coherence: { documents: 64, steps: 40, learningRate: 1e-4 },
  attack: { documents: 64, steps: 40, seeds: 5, learningRate: 1e-4, batchSize: 16, evalEvery: 2 },
  seed: 0,
};

/**
 * A few minutes on a 2-core CPU: a smaller model, 150 steps, one label fraction. Its vocabulary
 * of 4,096 words leaves 13 % of the plant glosses' target tokens `<unk>` (24 % at 1,024); its L1
 * term is the mean over units, a measured choice (docs/era.md): the paper's sum held this model
 * near its unigram plateau.
 */
const quick: EraConfig = {
  ...full,
  labelFractions: [0.5],
  model: {
    ...full.model,
    vocabSize: 4096,
    contextLength: 24,
    modelDim: 64,
    numLayers: 4,
    mlpDim: 256,
  },
  l1Reduction: 'mean',
  expandLayers: [0, 1],
  steps: 150,
  batchSize: 32,
  learningRate: 3e-3,
  minLearningRate: 3e-4,
  warmupSteps: 15,
  evalDocuments: 256,
  checkpointDocuments: 64,
  coherence: { ...full.coherence, steps: 10, learningRate: 3e-4 },
  attack: { ...full.attack, learningRate: 3e-4, batchSize: 8, evalEvery: 10 },
};

/**
 * Named configurations: `quick` (the default, a few minutes on a 2-core CPU: a pipeline check,
 * too small to show ERA's effect, docs/era.md), `medium` (quick's model trained 16× longer at
 * 100 % labels: the scale study's longest setting, where deleting the expansion removes noun.plant
 * and noun.animal; ERA and the control take about an hour on 2 CPU cores), `gpu` (the paper's step
 * count on `full`'s model, for a GPU backend; its time is still to be measured), `full` (overnight
 * on a workstation CPU) and `smoke` (seconds, for tests; its numbers mean nothing). Each differs
 * from the one it spreads only where it says.
 */
export const eraPresets = {
  quick,
  medium: {
    ...quick,
    labelFractions: [1],
    steps: 2400,
  },
  full,
  gpu: {
    ...full,
    labelFractions: [0.5, 1],
    steps: 5000,
  },
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
    checkpointDocuments: 8,
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
  /** Where the concept went (ERA, control); null for `filter`, which has no expansion. */
  readonly localisation: EraLocalisation | null;
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
  /**
   * Work done and total: optimisation steps (training, coherence and attack), plus one unit per
   * evaluation before an attack and per localisation checkpoint of an expanded run.
   */
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

/** Throws a {@link GradientRoutingError} with `message` (every ERA input check uses it). */
export function fail(message: string): never {
  throw new GradientRoutingError(message);
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
    ['checkpointDocuments', config.checkpointDocuments],
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
  if (!(['sum', 'mean'] as const).includes(config.l1Reduction)) {
    fail(`ERA l1Reduction must be 'sum' (the paper's) or 'mean', got '${config.l1Reduction}'.`);
  }
  if (!(['frequency', 'all'] as const).includes(config.forgetTokens)) {
    fail(
      `ERA forgetTokens must be 'frequency' (the paper's) or 'all', got '${config.forgetTokens}'.`,
    );
  }
}
