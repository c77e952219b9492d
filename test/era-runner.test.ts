import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXPANDED_REGION } from '../src/core/models/expand.js';
import { createTransformer, tokenLosses } from '../src/core/models/transformer.js';
import {
  AdamW,
  buildWordTokenizer,
  documentLoss,
  type EraConfig,
  type EraDocument,
  type EraProgress,
  type EraResult,
  type EraRun,
  type EraSummary,
  eraPresets,
  eraRunPlan,
  eraTotalSteps,
  formatEraTable,
  runEraExperiment,
  summarizeEra,
  validateEraConfig,
} from '../src/experiments/index.js';
import { eraAttackChartSpec, eraLossChartSpec } from '../src/experiments/reports/era.js';
import { withPipelineCheckNote } from '../src/experiments/reports/pipeline-check.js';
import {
  expandRouteRows,
  expandTransformerMlps,
  forwardContext,
  GradientRoutingError,
  MaskTable,
  tokenCrossEntropy,
  tokenFrequencyWeights,
  tokenRule,
} from '../src/index.js';
import { useBackend } from './helpers/backends.js';
import { lcgUniform } from './helpers/random.js';

const smoke: EraConfig = eraPresets.smoke;

/** `validateEraConfig` on `smoke` with `change` applied; returns the error it throws, if any. */
function validationError(change: Partial<EraConfig>): GradientRoutingError | undefined {
  try {
    validateEraConfig({ ...smoke, ...change });
    return undefined;
  } catch (error) {
    if (!(error instanceof GradientRoutingError)) throw error;
    return error;
  }
}

describe('validateEraConfig', () => {
  it("has medium as quick trained 16× longer at 100 % labels: the scale study's setting", () => {
    // docs/era.md quotes the scale study's ERA and control runs as medium's; they are the same
    // runs only while medium differs from quick in nothing else.
    const { steps, labelFractions, ...medium } = eraPresets.medium;
    const { steps: quickSteps, labelFractions: _, ...quick } = eraPresets.quick;
    expect(medium).toEqual(quick);
    expect(steps).toBe(16 * quickSteps);
    expect(labelFractions).toEqual([1]);
  });

  it('accepts every preset and the edges of each range', () => {
    for (const preset of Object.values(eraPresets)) expect(validationError(preset)).toBeUndefined();
    expect(validationError({ labelFractions: [0, 1] })).toBeUndefined();
    expect(validationError({ coherence: { ...smoke.coherence, steps: 0 } })).toBeUndefined();
    // The last block of a 2-layer model is 1.
    expect(validationError({ expandLayers: [0, 1] })).toBeUndefined();
    expect(
      validationError({ steps: 1, batchSize: 1, expandUnits: 1, evalDocuments: 1 }),
    ).toBeUndefined();
  });

  it('asks for a forget label, a method, a fraction and a layer to expand', () => {
    expect(validationError({ forget: [] })?.message).toMatch(
      /ERA needs at least one forget label, e\.g\. noun\.plant\./,
    );
    expect(validationError({ methods: [] })?.message).toMatch(
      /ERA needs at least one method \(era, control, filter\)\./,
    );
    expect(validationError({ labelFractions: [] })?.message).toMatch(
      /ERA needs at least one label fraction, e\.g\. 1\./,
    );
    expect(validationError({ expandLayers: [] })?.message).toMatch(
      /ERA needs at least one layer to expand\./,
    );
    const error = validationError({ forget: [] });
    expect(error?.code).toBe('invalid-argument');
    expect(error?.message).toMatch(/^gradient-routing: /);
  });

  it('names an unknown method and lists the known ones', () => {
    expect(validationError({ methods: ['era', 'rmu' as 'era'] })?.message).toMatch(
      /unknown ERA method 'rmu'; use era, control, filter\./,
    );
  });

  it.each([[-0.01], [1.01], [Number.NaN], [Number.POSITIVE_INFINITY]])(
    'rejects the label fraction %d',
    (fraction) => {
      expect(validationError({ labelFractions: [0.5, fraction] })?.message).toMatch(
        new RegExp(`label fraction ${fraction} is outside \\[0, 1\\]; pass fractions such as`),
      );
    },
  );

  const positive: Array<[string, (value: number) => Partial<EraConfig>]> = [
    ['steps', (steps) => ({ steps })],
    ['batchSize', (batchSize) => ({ batchSize })],
    ['evalDocuments', (evalDocuments) => ({ evalDocuments })],
    ['checkpointDocuments', (checkpointDocuments) => ({ checkpointDocuments })],
    ['expandUnits', (expandUnits) => ({ expandUnits })],
    ['attack.documents', (documents) => ({ attack: { ...smoke.attack, documents } })],
    ['attack.steps', (steps) => ({ attack: { ...smoke.attack, steps } })],
    ['attack.seeds', (seeds) => ({ attack: { ...smoke.attack, seeds } })],
    ['attack.batchSize', (batchSize) => ({ attack: { ...smoke.attack, batchSize } })],
    ['attack.evalEvery', (evalEvery) => ({ attack: { ...smoke.attack, evalEvery } })],
    ['coherence.documents', (documents) => ({ coherence: { ...smoke.coherence, documents } })],
  ];
  it.each(positive)('requires %s to be a positive integer', (name, set) => {
    for (const bad of [0, -2, 1.5]) {
      expect(validationError(set(bad))?.message).toMatch(
        new RegExp(`ERA ${name.replace('.', '\\.')} must be a positive integer, got ${bad}\\.`),
      );
    }
    expect(validationError(set(1))).toBeUndefined();
  });

  it('requires coherence.steps to be an integer >= 0', () => {
    for (const steps of [-1, 0.5]) {
      expect(validationError({ coherence: { ...smoke.coherence, steps } })?.message).toMatch(
        new RegExp(`ERA coherence\\.steps must be an integer >= 0, got ${steps}\\.`),
      );
    }
  });

  it("names the L1 reductions and forget-token choices it knows, the paper's first", () => {
    expect(validationError({ l1Reduction: 'max' as 'sum' })?.message).toMatch(
      /ERA l1Reduction must be 'sum' \(the paper's\) or 'mean', got 'max'\./,
    );
    expect(validationError({ forgetTokens: 'some' as 'all' })?.message).toMatch(
      /ERA forgetTokens must be 'frequency' \(the paper's\) or 'all', got 'some'\./,
    );
    expect(validationError({ l1Reduction: 'mean', forgetTokens: 'all' })).toBeUndefined();
  });

  it('names an expanded layer outside the model and the valid range', () => {
    for (const layer of [-1, 2, 0.5]) {
      expect(validationError({ expandLayers: [0, layer] })?.message).toMatch(
        new RegExp(`ERA expandLayers holds ${layer}; layers are 0\\.\\.1\\.`),
      );
    }
  });
});

describe('eraRunPlan and eraTotalSteps', () => {
  const config: EraConfig = {
    ...smoke,
    methods: ['filter', 'control', 'era'],
    labelFractions: [0.25, 1],
    steps: 5,
    coherence: { ...smoke.coherence, steps: 3 },
    attack: { ...smoke.attack, seeds: 2, steps: 4 },
  };

  it('runs the control once, first, then each fraction with the other methods in config order', () => {
    expect(eraRunPlan(config)).toEqual([
      { method: 'control', labelFraction: 0 },
      { method: 'filter', labelFraction: 0.25 },
      { method: 'era', labelFraction: 0.25 },
      { method: 'filter', labelFraction: 1 },
      { method: 'era', labelFraction: 1 },
    ]);
    expect(eraRunPlan({ ...config, methods: ['era'] })).toEqual([
      { method: 'era', labelFraction: 0.25 },
      { method: 'era', labelFraction: 1 },
    ]);
    expect(eraRunPlan({ ...config, methods: ['control'] })).toEqual([
      { method: 'control', labelFraction: 0 },
    ]);
  });

  it('counts training, checkpoints and coherence (not for filter), one evaluation and every attack seed', () => {
    // control and era: 5 steps + 4 checkpoints (after steps 1-4; step 5 is the trained model)
    // + 3 coherence + 1 evaluation + 2·4 attack = 21; filter: 5 + 1 + 2·4 = 14.
    expect(eraTotalSteps(config)).toBe(21 + 14 + 21 + 14 + 21);
    expect(eraTotalSteps({ ...config, methods: ['filter'], labelFractions: [1] })).toBe(14);
    expect(eraTotalSteps({ ...config, methods: ['era'], labelFractions: [1] })).toBe(21);
  });
});

function eraRun(method: EraRun['method'], labelFraction: number, values: number[]): EraRun {
  const [rb, ra, rx, fb, fa, fx] = values as [number, number, number, number, number, number];
  return {
    method,
    labelFraction,
    retain: { before: rb, after: ra, attacked: rx },
    forget: { before: fb, after: fa, attacked: fx },
    localisation: null,
  };
}

describe('summarizeEra and formatEraTable', () => {
  const runs = [
    eraRun('control', 0, [3.25, 3.5, 3.6, 4, 4.0004, 3]),
    eraRun('era', 0.125, [3, 2.75, 3.1, 4, 5.5, 4.5]),
    eraRun('filter', 1, [Number.NaN, 3, 3, 4, Number.POSITIVE_INFINITY, 4]),
  ];

  it('keeps the run metadata and the runs, nothing else', () => {
    const result = { config: smoke, runs, details: [], data: {} as never, seconds: 99 };
    const summary = summarizeEra(result, { preset: 'smoke', backend: 'wasm', wallSeconds: 12.5 });
    expect(summary).toEqual({
      preset: 'smoke',
      backend: 'wasm',
      wallSeconds: 12.5,
      config: smoke,
      runs,
    });
    expect(Object.keys(summary)).toEqual(['preset', 'backend', 'wallSeconds', 'config', 'runs']);
  });

  it('formats losses to 3 decimals, signed changes, rounded percentages and n/a', () => {
    const summary: EraSummary = {
      preset: 'x',
      backend: 'cpu',
      wallSeconds: 1,
      config: smoke,
      runs,
    };
    expect(formatEraTable(summary).split('\n')).toEqual([
      '| method | labels | retain before | retain after | Δ retain | forget before | forget after | Δ forget | forget attacked | Δ forget attacked |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      '| control | – | 3.250 | 3.500 | +0.250 | 4.000 | 4.000 | +0.000 | 3.000 | -1.000 |',
      '| era | 13 % | 3.000 | 2.750 | -0.250 | 4.000 | 5.500 | +1.500 | 4.500 | +0.500 |',
      '| filter | 100 % | n/a | 3.000 | n/a | 4.000 | n/a | n/a | 4.000 | +0.000 |',
    ]);
  });
});

describe('a smoke run says it only checks the pipeline', () => {
  const summary = (preset: string): EraSummary => ({
    preset,
    backend: 'cpu',
    wallSeconds: 1,
    config: smoke,
    runs: [eraRun('era', 1, [3, 3, 3, 3, 3, 3])],
  });
  const result: EraResult = {
    config: smoke,
    runs: summary('smoke').runs,
    details: [
      {
        method: 'era',
        labelFraction: 1,
        trainLosses: [3],
        contracted: null,
        coherenceStepsKept: 0,
        attackSteps: [0, 2],
        attackCurves: [[3, 2.5]],
        attackRetain: [3],
        trainDocuments: 10,
        labelledForget: 2,
      },
    ],
    data: {} as never,
    seconds: 1,
  };
  const note = 'smoke run: checks the pipeline only; its numbers mean nothing';

  it('under the title of both charts, and above the table', () => {
    expect(eraLossChartSpec(summary('smoke')).title).toMatchObject({ subtitle: note });
    expect(eraAttackChartSpec(result, { preset: 'smoke' }).title).toMatchObject({ subtitle: note });
    expect(withPipelineCheckNote('smoke', 'TABLE')).toBe(`**${note}**\n\nTABLE`);
  });

  it('and only a smoke run', () => {
    expect(typeof eraLossChartSpec(summary('quick')).title).toBe('string');
    expect(typeof eraAttackChartSpec(result, { preset: 'quick' }).title).toBe('string');
    expect(typeof eraAttackChartSpec(result).title).toBe('string');
    expect(withPipelineCheckNote('quick', 'TABLE')).toBe('TABLE');
  });
});

describe('documentLoss', () => {
  beforeAll(() => useBackend('cpu'));

  it('is the mean next-token loss over real tokens, whatever the batch size, leaking nothing', async () => {
    const model = createTransformer({
      vocabSize: 12,
      contextLength: 5,
      modelDim: 8,
      numLayers: 1,
      numHeads: 2,
      mlpDim: 8,
      seed: 3,
    });
    // Lengths 6 (= context + 1, every position counted), 3 (padded) and 2.
    const docs = [
      Int32Array.from([2, 5, 6, 7, 8, 3]),
      Int32Array.from([2, 9, 3]),
      Int32Array.from([2, 3]),
    ];
    // Reference: each document on its own, unpadded; the model is causal, so padding after a
    // position does not change its loss.
    let total = 0;
    let count = 0;
    for (const doc of docs) {
      const sum = tf.tidy(() => {
        const inputs = tf.tensor2d(doc.subarray(0, doc.length - 1), [1, doc.length - 1], 'int32');
        const targets = tf.tensor2d(doc.subarray(1), [1, doc.length - 1], 'int32');
        return tf.sum(tokenLosses(model.forward(inputs), targets));
      });
      total += (await sum.data())[0]!;
      count += doc.length - 1;
      sum.dispose();
    }
    const before = tf.memory().numTensors;
    const loss = await documentLoss(model, docs);
    expect(loss).toBeCloseTo(total / count, 5);
    expect(loss).toBeGreaterThan(0);
    // Batches of 1 and 2 weigh each token the same (not each batch).
    expect(await documentLoss(model, docs, 1)).toBeCloseTo(loss, 5);
    expect(await documentLoss(model, docs, 2)).toBeCloseTo(loss, 5);
    // A document with no next token has nothing to count.
    expect(await documentLoss(model, [Int32Array.from([2])])).toBeNaN();
    expect(await documentLoss(model, [])).toBeNaN();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

/** A seeded two-topic corpus: `plant` documents (every third) and `house` documents. */
function twoTopicCorpus(count: number, seed: number): EraDocument[] {
  const random = lcgUniform(seed);
  const pick = (words: readonly string[]) => words[Math.floor(random() * words.length)]!;
  const plant = ['oak', 'fern', 'leaves', 'root', 'flower', 'moss'];
  const house = ['room', 'chair', 'table', 'door', 'lamp', 'roof'];
  const common = ['the', 'a', 'of', 'and'];
  return Array.from({ length: count }, (_, i) => {
    const topic = i % 3 === 0 ? plant : house;
    const words = Array.from({ length: 3 + Math.floor(random() * 6) }, (_, w) =>
      w % 2 === 0 ? pick(common) : pick(topic),
    );
    return { label: i % 3 === 0 ? 'plant' : 'house', text: words.join(' ') };
  });
}

/** Small enough for a whole experiment in about a second on the cpu backend. */
const tiny: EraConfig = {
  ...smoke,
  forget: ['plant'],
  methods: ['era', 'control', 'filter'],
  labelFractions: [0.5],
  model: { vocabSize: 24, contextLength: 8, modelDim: 8, numLayers: 2, numHeads: 2, mlpDim: 8 },
  expandUnits: 4,
  steps: 4,
  batchSize: 4,
  evalDocuments: 4,
  coherence: { documents: 4, steps: 2, learningRate: 3e-3 },
  attack: { documents: 4, steps: 3, seeds: 2, learningRate: 3e-3, batchSize: 2, evalEvery: 2 },
};

describe('runEraExperiment on a tiny corpus', () => {
  beforeAll(() => useBackend('cpu'));

  it('reports the split, the runs and their details consistently, and leaks nothing', async () => {
    const corpus = twoTopicCorpus(60, 7);
    const progress: EraProgress[] = [];
    const before = tf.memory().numTensors;
    const started = performance.now();
    const result = await runEraExperiment(corpus, tiny, { onProgress: (p) => progress.push(p) });
    const wallSeconds = (performance.now() - started) / 1000;
    expect(tf.memory().numTensors).toBe(before);

    // 20 plant documents: 4 evaluation + 4 attack held out, 12 train; 40 house documents:
    // 4 evaluation + 2 × 4 coherence held out, 28 train.
    expect(result.data).toMatchObject({
      documents: 60,
      forgetDocuments: 20,
      trainRetain: 28,
      trainForget: 12,
    });
    // The 16 words and 4 special tokens fit the vocabulary: nothing is unknown.
    expect(result.data.vocabSize).toBe(20);
    expect(result.data.unknownTokenShare).toBe(0);
    expect(result.config).toBe(tiny);

    // Progress: one tick per optimisation step, checkpoint and final evaluation, in run-plan
    // order, the loss only in training. 4 steps: checkpoints after steps 1, 2 and 3 (the 4th is
    // the trained model, measured in the evaluation).
    const total = eraTotalSteps(tiny);
    expect(progress.map((p) => p.done)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(new Set(progress.map((p) => p.total))).toEqual(new Set([total]));
    const phases: string[] = [];
    for (const p of progress) if (phases.at(-1) !== p.phase) phases.push(p.phase);
    const expanded = (run: string) => [
      ...[1, 2, 3].flatMap(() => [`train ${run}`, `checkpoint ${run}`]),
      `train ${run}`,
      `coherence ${run}`,
      `evaluate ${run}`,
      `attack ${run}`,
    ];
    expect(phases).toEqual([
      ...expanded('control'),
      ...expanded('era 0.5'),
      'train filter 0.5',
      'evaluate filter 0.5',
      'attack filter 0.5',
    ]);
    for (const p of progress) {
      expect('loss' in p).toBe(p.phase.startsWith('train'));
    }

    expect(result.runs.map((r) => [r.method, r.labelFraction])).toEqual([
      ['control', 0],
      ['era', 0.5],
      ['filter', 0.5],
    ]);
    expect(result.details.map((d) => [d.method, d.labelFraction])).toEqual(
      result.runs.map((r) => [r.method, r.labelFraction]),
    );
    // Half of the 12 forget training documents are labelled; filtering drops them.
    expect(result.details.map((d) => [d.trainDocuments, d.labelledForget])).toEqual([
      [40, 0],
      [40, 6],
      [34, 6],
    ]);
    result.runs.forEach((run, i) => {
      const details = result.details[i]!;
      const phase = `${run.method}${run.method === 'control' ? '' : ' 0.5'}`;
      expect(details.trainLosses).toEqual(
        progress.filter((p) => p.phase === `train ${phase}`).map((p) => p.loss),
      );
      expect(details.trainLosses).toHaveLength(tiny.steps);
      // Evaluated at step 0, every 2 steps, and at the last step.
      expect(details.attackSteps).toEqual([0, 2, 3]);
      expect(details.attackCurves).toHaveLength(tiny.attack.seeds);
      for (const curve of details.attackCurves) {
        expect(curve).toHaveLength(3);
        // Every attack starts from the final model.
        expect(curve[0]).toBe(run.forget.after);
      }
      // The attacked forget loss is the lowest over all seeds and steps.
      expect(run.forget.attacked).toBe(Math.min(...details.attackCurves.flat()));
      // The retain loss is read where that seed reached its minimum, or the final one when the
      // attack never went below its start.
      const minima = details.attackCurves.map((c) => Math.min(...c));
      const worst = minima.indexOf(Math.min(...minima));
      const improved = minima[worst]! < run.forget.after;
      expect(Number.isNaN(details.attackRetain[worst]!)).toBe(!improved);
      expect(run.retain.attacked).toBe(improved ? details.attackRetain[worst] : run.retain.after);
      details.attackRetain.forEach((retain, seed) => {
        expect(Number.isNaN(retain)).toBe(minima[seed]! >= run.forget.after);
      });
      for (const side of [run.retain, run.forget]) {
        for (const loss of [side.before, side.after, side.attacked]) {
          expect(loss).toBeGreaterThan(0);
          expect(loss).toBeLessThan(10);
        }
      }
      if (run.method === 'filter') {
        // Filtering has no contraction: its model after is its model before.
        expect(details.contracted).toBeNull();
        expect(details.coherenceStepsKept).toBe(0);
        expect(run.retain.after).toBe(run.retain.before);
        expect(run.forget.after).toBe(run.forget.before);
      } else {
        expect(details.contracted).not.toBeNull();
        expect(details.coherenceStepsKept).toBeGreaterThanOrEqual(0);
        expect(details.coherenceStepsKept).toBeLessThanOrEqual(tiny.coherence.steps);
        // Contraction removes the expanded units: the model changes.
        expect(details.contracted!.forget).not.toBe(run.forget.before);
        if (details.coherenceStepsKept === 0) {
          expect(run.retain.after).toBe(details.contracted!.retain);
          expect(run.forget.after).toBe(details.contracted!.forget);
        }
      }
    });
    // Wall time in seconds, measured inside the call.
    expect(result.seconds).toBeGreaterThan(0);
    expect(result.seconds).toBeLessThanOrEqual(wallSeconds);
  });
});

/**
 * Forget documents of one repeated plant word, which no retain document has: enough forget
 * tokens for the frequency rule to route them (the small corpus above has too few, and its
 * weights leave nearly every token unrouted).
 */
function separableCorpus(count: number): EraDocument[] {
  const house = ['room', 'chair', 'table', 'door', 'lamp', 'roof'];
  return Array.from({ length: count }, (_, i) =>
    i % 3 === 0
      ? {
          label: 'plant',
          text: Array(8)
            .fill(i % 2 === 1 ? 'oak' : 'fern')
            .join(' '),
        }
      : {
          label: 'house',
          text: Array.from({ length: 8 }, (_, w) => house[(i + w * 5) % 6]).join(' '),
        },
  );
}

describe('runEraExperiment routing', () => {
  beforeAll(() => useBackend('cpu'));

  it('is the control when no document is labelled, and departs from it when all are', async () => {
    const config: EraConfig = { ...tiny, methods: ['control', 'era'], labelFractions: [0, 1] };
    const result = await runEraExperiment(separableCorpus(90), config);
    const [control, eraNone, eraAll] = result.details;
    expect([control, eraNone, eraAll].map((d) => [d!.method, d!.labelFraction])).toEqual([
      ['control', 0],
      ['era', 0],
      ['era', 1],
    ]);
    // Without labels nothing is routed: the same model, batches and losses as the control.
    expect(eraNone!.trainLosses).toEqual(control!.trainLosses);
    expect(result.runs[1]).toEqual({ ...result.runs[0], method: 'era', labelFraction: 0 });
    // With every forget document labelled, the first step (same weights, same batch) agrees and
    // routing changes every later step.
    expect(eraAll!.labelledForget).toBe(result.data.trainForget);
    expect(eraAll!.trainLosses[0]).toBe(control!.trainLosses[0]);
    for (let step = 1; step < config.steps; step++) {
      expect(eraAll!.trainLosses[step]).not.toBe(control!.trainLosses[step]);
    }
  });
});

describe('runEraExperiment corpus checks', () => {
  beforeAll(() => useBackend('cpu'));

  /** `plant` documents first, then `house` ones, from the two-topic corpus. */
  const corpusOf = (plant: number, house: number): EraDocument[] => {
    const all = twoTopicCorpus(3 * Math.max(plant, house), 11);
    return [
      ...all.filter((d) => d.label === 'plant').slice(0, plant),
      ...all.filter((d) => d.label === 'house').slice(0, house),
    ];
  };
  // One cheap run: filter only (no coherence), one step, one attack step.
  const cheap: EraConfig = {
    ...tiny,
    methods: ['filter'],
    labelFractions: [1],
    steps: 1,
    attack: { ...tiny.attack, steps: 1, seeds: 1, evalEvery: 1 },
  };

  it('runs with exactly the documents it holds out plus one batch on each side', async () => {
    // Forget: 4 evaluation + 4 attack + a batch of 4; retain: 4 evaluation + 2 × 4 coherence + 4.
    const result = await runEraExperiment(corpusOf(12, 16), cheap);
    expect(result.data).toMatchObject({ documents: 28, trainForget: 4, trainRetain: 4 });
    // Filtering every labelled forget document leaves the 4 retain ones.
    expect(result.details[0]).toMatchObject({ trainDocuments: 4, labelledForget: 4 });
  });

  it('says how many forget and retain documents it needs, one short of each', async () => {
    await expect(runEraExperiment(corpusOf(11, 16), cheap)).rejects.toThrow(
      /the forget concept \(plant\) has 11 documents; ERA holds out 8 \(evaluation \+ attack\) and trains on the rest, so it needs at least 12\./,
    );
    await expect(runEraExperiment(corpusOf(12, 15), cheap)).rejects.toThrow(
      /only 15 retain documents; ERA needs at least 16\./,
    );
  });

  it('lists the eight most common labels, most common first, when no document is forget', async () => {
    const documents = Array.from({ length: 9 }, (_, label) =>
      Array.from({ length: label + 1 }, () => ({ label: `l${label}`, text: 'a b' })),
    ).flat();
    await expect(
      runEraExperiment(documents, { ...cheap, forget: ['plant', 'tree'] }),
    ).rejects.toThrow(
      /no document has a forget label \(plant, tree\); choose labels that occur in the corpus, e\.g\. l8 \(9\), l7 \(8\), l6 \(7\), l5 \(6\), l4 \(5\), l3 \(4\), l2 \(3\), l1 \(2\)\.$/,
    );
  });

  it('cycles through a training pool smaller than the steps need', async () => {
    // Filtering at 100 % leaves the 4 retain training documents: 3 steps of 4 take 12.
    const result = await runEraExperiment(corpusOf(12, 16), { ...cheap, steps: 3 });
    const [details] = result.details;
    expect(details).toMatchObject({ trainDocuments: 4 });
    expect(details!.trainLosses).toHaveLength(3);
    for (const loss of details!.trainLosses) expect(Number.isFinite(loss)).toBe(true);
  });

  it('counts words outside the vocabulary as unknown tokens', async () => {
    // 12 ids hold the 4 specials and 8 words; the training documents use more words, and the
    // rarer ones become <unk>.
    const result = await runEraExperiment(corpusOf(12, 16), {
      ...cheap,
      model: { ...cheap.model, vocabSize: 12 },
    });
    expect(result.data.vocabSize).toBe(12);
    expect(result.data.unknownTokenShare).toBeGreaterThan(0);
    expect(result.data.unknownTokenShare).toBeLessThan(1);
  });
});

describe('runEraExperiment phases', () => {
  beforeAll(() => useBackend('cpu'));

  it('adds the L1 term, proportional to its coefficient, to ERA and control training only', async () => {
    const corpus = separableCorpus(90);
    const config: EraConfig = {
      ...tiny,
      methods: ['control', 'filter'],
      labelFractions: [1],
      steps: 1,
      coherence: { ...tiny.coherence, steps: 0 },
      attack: { ...tiny.attack, steps: 1, seeds: 1, evalEvery: 1 },
    };
    const firstLosses = async (l1Coefficient: number) =>
      (await runEraExperiment(corpus, { ...config, l1Coefficient })).details.map(
        (d) => d.trainLosses[0]!,
      );
    const [control0, filter0] = await firstLosses(0);
    const [controlHalf, filterHalf] = await firstLosses(0.5);
    const [control1, filter1] = await firstLosses(1);
    // The first step's loss is read before any update: the same weights and batch, so the
    // difference is the penalty, a mean of absolute values, positive and linear in the coefficient.
    expect(controlHalf! - control0!).toBeGreaterThan(0);
    expect(control1! - control0!).toBeCloseTo(2 * (controlHalf! - control0!), 5);
    expect(filterHalf).toBe(filter0);
    expect(filter1).toBe(filter0);
    // 'sum' (the paper's) sums over the expanded layer's units where 'mean' averages: the same
    // penalty times the width, mlpDim 8 + 4 expanded units.
    const penalty = async (l1Reduction: 'sum' | 'mean') => {
      const at = async (l1Coefficient: number) =>
        (
          await runEraExperiment(corpus, {
            ...config,
            methods: ['control'],
            l1Reduction,
            l1Coefficient,
          })
        ).details[0]!.trainLosses[0]!;
      return (await at(1)) - (await at(0));
    };
    expect(await penalty('sum')).toBeCloseTo(12 * (await penalty('mean')), 4);
  });

  it('keeps the contracted model when the coherence fine-tune cannot improve it', async () => {
    const config: EraConfig = {
      ...tiny,
      methods: ['control'],
      coherence: { ...tiny.coherence, steps: 3, learningRate: 0 },
      attack: { ...tiny.attack, steps: 2, seeds: 1, evalEvery: 1 },
    };
    const result = await runEraExperiment(separableCorpus(90), config);
    const [run] = result.runs;
    const [details] = result.details;
    // A learning rate of 0 changes nothing, so no step is better than the contracted weights.
    expect(details!.coherenceStepsKept).toBe(0);
    expect(run!.retain.after).toBe(details!.contracted!.retain);
    expect(run!.forget.after).toBe(details!.contracted!.forget);
  });

  it('keeps the best coherence step, and its model, when fine-tuning improves', async () => {
    const config: EraConfig = {
      ...tiny,
      methods: ['control'],
      coherence: { ...tiny.coherence, steps: 3, learningRate: 1e-2 },
      attack: { ...tiny.attack, steps: 2, seeds: 1, evalEvery: 1 },
    };
    const result = await runEraExperiment(separableCorpus(90), config);
    const [run] = result.runs;
    const [details] = result.details;
    expect(details!.coherenceStepsKept).toBeGreaterThan(0);
    expect(details!.coherenceStepsKept).toBeLessThanOrEqual(3);
    // The kept weights are the fine-tuned ones, not the contracted ones (on these retain
    // documents, better too).
    expect(run!.retain.after).toBeLessThan(details!.contracted!.retain);
  });

  it('reports the final losses as attacked when the attack never improves on them', async () => {
    const config: EraConfig = {
      ...tiny,
      methods: ['filter'],
      labelFractions: [1],
      attack: { ...tiny.attack, steps: 4, seeds: 2, evalEvery: 2, learningRate: 0 },
    };
    const result = await runEraExperiment(separableCorpus(90), config);
    const [run] = result.runs;
    const [details] = result.details;
    // Evaluated at 0, 2 and 4 (no step twice), always the starting loss.
    expect(details!.attackSteps).toEqual([0, 2, 4]);
    expect(details!.attackCurves).toEqual([
      [run!.forget.after, run!.forget.after, run!.forget.after],
      [run!.forget.after, run!.forget.after, run!.forget.after],
    ]);
    expect(details!.attackRetain).toEqual([Number.NaN, Number.NaN]);
    expect(run!.forget.attacked).toBe(run!.forget.after);
    expect(run!.retain.attacked).toBe(run!.retain.after);
  });

  it('applies the weight decay in the coherence fine-tune and the attack as well', async () => {
    // Training at learning rate 0 leaves the model as initialised whatever the decay, so any
    // difference comes from the later phases.
    const config: EraConfig = {
      ...tiny,
      methods: ['control', 'filter'],
      learningRate: 0,
      minLearningRate: 0,
      coherence: { ...tiny.coherence, steps: 2, learningRate: 3e-2 },
      attack: { ...tiny.attack, steps: 2, seeds: 1, evalEvery: 1, learningRate: 3e-2 },
    };
    const corpus = separableCorpus(90);
    const low = await runEraExperiment(corpus, { ...config, weightDecay: 0.1 });
    const high = await runEraExperiment(corpus, { ...config, weightDecay: 0.9 });
    const [lowControl, lowFilter] = low.details;
    const [highControl, highFilter] = high.details;
    expect(high.runs[1]!.forget.before).toBe(low.runs[1]!.forget.before);
    expect(highControl!.contracted).toEqual(lowControl!.contracted);
    // Coherence: the same contracted model, fine-tuned with another decay.
    expect(lowControl!.coherenceStepsKept).toBeGreaterThan(0);
    expect(high.runs[0]!.retain.after).not.toBe(low.runs[0]!.retain.after);
    // Attack: the same filtered model, attacked with another decay.
    expect(highFilter!.attackCurves[0]![0]).toBe(lowFilter!.attackCurves[0]![0]);
    expect(highFilter!.attackCurves[0]!.slice(1)).not.toEqual(lowFilter!.attackCurves[0]!.slice(1));
  });

  it('attacks with batches of attack.batchSize documents', async () => {
    // The 4 held-out attack documents: batches of 2 and of 3 give different attacks.
    const config: EraConfig = {
      ...tiny,
      methods: ['filter'],
      labelFractions: [1],
      attack: { ...tiny.attack, steps: 2, seeds: 1, evalEvery: 1, learningRate: 3e-2 },
    };
    const corpus = separableCorpus(90);
    const [pairs] = (await runEraExperiment(corpus, config)).details;
    const [triples] = (
      await runEraExperiment(corpus, { ...config, attack: { ...config.attack, batchSize: 3 } })
    ).details;
    expect(triples!.attackCurves[0]![0]).toBe(pairs!.attackCurves[0]![0]);
    expect(triples!.attackCurves[0]!.slice(1)).not.toEqual(pairs!.attackCurves[0]!.slice(1));
  });

  it('attacks with a different batch order per seed', async () => {
    const config: EraConfig = {
      ...tiny,
      methods: ['filter'],
      labelFractions: [1],
      attack: { ...tiny.attack, steps: 2, seeds: 2, evalEvery: 1, learningRate: 1e-2 },
    };
    const [details] = (await runEraExperiment(separableCorpus(90), config)).details;
    const [first, second] = details!.attackCurves;
    expect(first![0]).toBe(second![0]);
    expect(first!.slice(1)).not.toEqual(second!.slice(1));
  });
});

describe('runEraExperiment ERA training step', () => {
  beforeAll(() => useBackend('cpu'));

  it("trains with the paper's routed step (labelled forget tokens masked, softened by frequency) and filters unrouted", async () => {
    // Every forget document is one text and every retain document another, so a batch of 4 is
    // k forget and 4 − k retain documents whatever the sampling: the test can recompute the
    // first step for each k from the public primitives and find the runner's losses among them.
    const forgetText = 'oak oak oak oak oak oak oak';
    // 'oak' in a retain document must not be routed: only labelled documents are.
    const retainText = 'room chair oak door lamp roof room';
    const corpus: EraDocument[] = [
      ...Array.from({ length: 20 }, () => ({ label: 'plant', text: forgetText })),
      ...Array.from({ length: 30 }, () => ({ label: 'house', text: retainText })),
    ];
    const config: EraConfig = {
      ...tiny,
      methods: ['era', 'filter'],
      labelFractions: [1],
      steps: 2,
      learningRate: 1e-2,
      minLearningRate: 1e-2,
      warmupSteps: 0,
      weightDecay: 0.3,
      l1Coefficient: 0.01,
      l1Reduction: 'sum',
      coherence: { ...tiny.coherence, steps: 0 },
      attack: { ...tiny.attack, steps: 1, seeds: 1, evalEvery: 1 },
    };
    const result = await runEraExperiment(corpus, config);
    // 20 − 8 held out = 12 forget and 30 − 12 = 18 retain training documents, all labelled.
    expect(result.data).toMatchObject({ trainForget: 12, trainRetain: 18, vocabSize: 10 });
    const [losses, filterLosses] = result.details.map((d) => d.trainLosses);

    const before = tf.memory().numTensors;
    const tokenizer = buildWordTokenizer(
      [...Array(12).fill(forgetText), ...Array(18).fill(retainText)],
      config.model.vocabSize,
    );
    const length = config.model.contextLength;
    const forgetIds = tokenizer.encodeDocument(forgetText, length + 1);
    const retainIds = tokenizer.encodeDocument(retainText, length + 1);
    // Every forget training document (labelled or not) against the retain ones.
    const frequency = tokenFrequencyWeights(
      Array(12).fill(forgetIds.subarray(1)),
      Array(18).fill(retainIds.subarray(1)),
      tokenizer.size,
    );
    const initial = createTransformer({ ...config.model, vocabSize: tokenizer.size, seed: 0 });
    // The new rows start like the originals: W_in 0.02, W_out 0.02/sqrt(2 · 2 layers).
    const model = expandTransformerMlps(initial, {
      layers: [0],
      units: 4,
      seed: 101,
      std: 0.02,
      outStd: 0.01,
    });
    initial.dispose();
    const region = model.mlpRegions(0).find((r) => r.name === EXPANDED_REGION)!;
    const rule = tokenRule(
      new MaskTable(expandRouteRows(model.mlpWidth(0), region, -0.75), { range: [-0.75, 1] }),
      { toward: 0 },
    );
    /** A batch of `k` forget (labelled) documents and `4 − k` retain ones, as tensors. */
    const batchOf = (k: number) => {
      const docs = Array.from({ length: 4 }, (_, b) => (b < k ? forgetIds : retainIds));
      const tensor = (
        values: (doc: Int32Array, b: number, t: number) => number,
        dtype: 'int32' | 'float32',
      ) =>
        tf.tensor2d(
          docs.flatMap((doc, b) => Array.from({ length }, (_, t) => values(doc, b, t))),
          [4, length],
          dtype,
        );
      return {
        inputs: tensor((doc, _, t) => doc[t]!, 'int32'),
        targets: tensor((doc, _, t) => doc[t + 1] ?? 0, 'int32'),
        weights: tensor((doc, _, t) => (t + 1 < doc.length ? 1 : 0), 'float32'),
        labels: tensor((_, b) => (b < k ? 1 : 0), 'int32'),
        soft: tensor((doc, b, t) => (b < k ? frequency[doc[t + 1] ?? 0]! : 1), 'float32'),
      };
    };
    const batches = [0, 1, 2, 3, 4].map(batchOf);
    /** The ERA objective (cross-entropy plus the L1 term) on batch `k`. */
    const objective = (k: number) => () => {
      const { inputs, targets, weights, labels, soft } = batches[k]!;
      const context = forwardContext(model, {
        plan: { 'blocks.0.mlp.hidden': rule },
        batch: { labels, weights: soft },
        capture: ['blocks.0.mlp.hidden'],
      });
      const ce = tokenCrossEntropy(model.forward(inputs, context), targets, weights);
      const hidden = context.captured.get('blocks.0.mlp.hidden')!;
      // The paper's L1: |activation| summed over units and tokens, over the 4 · length positions.
      return tf.add(ce, tf.mul(tf.div(tf.sum(tf.abs(hidden)), 4 * length), 0.01)) as tf.Scalar;
    };
    const lossOf = async (k: number) => {
      const value = tf.tidy(objective(k));
      const loss = (await value.data())[0]!;
      value.dispose();
      return loss;
    };
    const closest = (value: number, candidates: number[]) =>
      Math.min(...candidates.map((c) => Math.abs(c - value)));

    // Step 0 is read before any update: it is the objective of one batch composition.
    const firstCandidates = await Promise.all([0, 1, 2, 3, 4].map(lossOf));
    expect(closest(losses![0]!, firstCandidates)).toBeLessThan(1e-7);
    // Step 1 follows one routed AdamW step (learning rate 1e-2, weight decay 0.3) on some batch.
    const secondCandidates: number[] = [];
    const variables = model.trainableVariables();
    const start = variables.map((v) => v.clone());
    for (let k = 0; k <= 4; k++) {
      const optimizer = new AdamW({ weightDecay: 0.3 });
      const { value, grads } = tf.variableGrads(objective(k), variables);
      optimizer.step(variables, grads, 1e-2);
      tf.dispose([value, ...Object.values(grads)]);
      optimizer.dispose();
      for (let j = 0; j <= 4; j++) secondCandidates.push(await lossOf(j));
      for (const [i, v] of variables.entries()) v.assign(start[i]!);
    }
    expect(closest(losses![1]!, secondCandidates)).toBeLessThan(1e-7);
    // The candidates are far enough apart for the match to mean something.
    const sorted = [...secondCandidates].sort((a, b) => a - b);
    const gaps = sorted.slice(1).map((v, i) => v - sorted[i]!);
    expect(Math.min(...gaps.filter((g) => g > 1e-6))).toBeGreaterThan(1e-5);
    tf.dispose(start);

    // Filtering trains the base model, unrouted and without the L1 term, on the 18 retain
    // documents only: every batch is 4 of them.
    const base = createTransformer({ ...config.model, vocabSize: tokenizer.size, seed: 0 });
    const retainBatch = batches[0]!;
    const plainLoss = () =>
      tokenCrossEntropy(base.forward(retainBatch.inputs), retainBatch.targets, retainBatch.weights);
    const readLoss = async () => {
      const value = tf.tidy(plainLoss);
      const loss = (await value.data())[0]!;
      value.dispose();
      return loss;
    };
    expect(Math.abs(filterLosses![0]! - (await readLoss()))).toBeLessThan(1e-7);
    const optimizer = new AdamW({ weightDecay: 0.3 });
    const baseVariables = base.trainableVariables();
    const { value, grads } = tf.variableGrads(plainLoss, baseVariables);
    optimizer.step(baseVariables, grads, 1e-2);
    tf.dispose([value, ...Object.values(grads)]);
    optimizer.dispose();
    expect(Math.abs(filterLosses![1]! - (await readLoss()))).toBeLessThan(1e-7);
    base.dispose();
    for (const batch of batches) tf.dispose(Object.values(batch));
    rule.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('runEraExperiment data statistics', () => {
  beforeAll(() => useBackend('cpu'));

  it('gives the exact share of unknown tokens in the training documents', async () => {
    // 12 forget training documents of 7 × 'oak' and 18 retain ones of 7 words; 8 ids hold the
    // 4 specials and the 4 most frequent words (oak 102, room 36, then chair and door of the
    // 18-count ties, alphabetically), so 'lamp' and 'roof' are unknown: 2 of 8 tokens (7 words and
    // <eos>) in each retain document, 36 of 240.
    const corpus: EraDocument[] = [
      ...Array.from({ length: 20 }, () => ({
        label: 'plant',
        text: 'oak oak oak oak oak oak oak',
      })),
      ...Array.from({ length: 30 }, () => ({
        label: 'house',
        text: 'room chair oak door lamp roof room',
      })),
    ];
    const result = await runEraExperiment(corpus, {
      ...tiny,
      methods: ['filter'],
      labelFractions: [1],
      model: { ...tiny.model, vocabSize: 8 },
      steps: 1,
      coherence: { ...tiny.coherence, steps: 0 },
      attack: { ...tiny.attack, steps: 1, seeds: 1, evalEvery: 1 },
    });
    expect(result.data).toMatchObject({ trainForget: 12, trainRetain: 18, vocabSize: 8 });
    expect(result.data.unknownTokenShare).toBeCloseTo(36 / 240, 12);
  });
});
