import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointSteps,
  type EraConfig,
  type EraDocument,
  type EraResult,
  eraPresets,
  runEraExperiment,
} from '../src/experiments/index.js';
import { useBackend } from './helpers/backends.js';
import { lcgUniform } from './helpers/random.js';

/**
 * Forget documents written in their own words (plants), retain documents in others (house):
 * nothing but routing decides where the plant words are learnt, so a working routing must put
 * them in the expansion.
 */
function ownWordsCorpus(count: number): EraDocument[] {
  const random = lcgUniform(2024);
  const plant = ['oak', 'fern', 'moss', 'pine', 'ivy', 'elm'];
  const house = ['room', 'chair', 'table', 'door', 'lamp', 'roof', 'wall', 'sofa'];
  const sentence = (words: string[]) =>
    Array.from({ length: 8 }, () => words[Math.floor(random() * words.length)]!).join(' ');
  return Array.from({ length: count }, (_, i) =>
    i % 3 === 0
      ? { label: 'plant', text: sentence(plant) }
      : { label: 'house', text: sentence(house) },
  );
}

const config: EraConfig = {
  ...eraPresets.smoke,
  forget: ['plant'],
  methods: ['control', 'era'],
  labelFractions: [0, 1],
  forgetTokens: 'all',
  model: { vocabSize: 24, contextLength: 8, modelDim: 16, numLayers: 2, numHeads: 2, mlpDim: 16 },
  expandUnits: 4,
  expandLayers: [0, 1],
  steps: 200,
  batchSize: 8,
  learningRate: 1e-2,
  minLearningRate: 1e-3,
  warmupSteps: 5,
  evalDocuments: 16,
  checkpointDocuments: 16,
  coherence: { documents: 8, steps: 0, learningRate: 1e-3 },
  attack: { documents: 8, steps: 1, seeds: 1, learningRate: 1e-3, batchSize: 4, evalEvery: 1 },
};

describe('ERA localisation figures', () => {
  let result: EraResult;
  let leaked = 0;
  beforeAll(async () => {
    useBackend('cpu');
    const before = tf.memory().numTensors;
    result = await runEraExperiment(ownWordsCorpus(240), config);
    leaked = tf.memory().numTensors - before;
  }, 600_000);

  const run = (method: string, fraction: number) =>
    result.runs.find((r) => r.method === method && r.labelFraction === fraction)!;

  it('leaks no tensor', () => {
    expect(leaked).toBe(0);
  });

  it('find the concept in the expansion with routing, and nowhere in particular without', () => {
    const control = run('control', 0).localisation!;
    const unrouted = run('era', 0).localisation!;
    const era = run('era', 1).localisation!;
    const [controlRatio, unroutedRatio, eraRatio] = [control, unrouted, era].map(
      (l) => l.activations[0]!.ratio,
    ) as [number, number, number];
    // Without routing the expansion is a few more random units: forget and retain tokens use it
    // alike relative to the original units.
    expect(controlRatio).toBeGreaterThan(0.8);
    expect(controlRatio).toBeLessThan(1.25);
    expect(unroutedRatio).toBe(controlRatio);
    // Routed, the forget words live in the expansion.
    expect(eraRatio).toBeGreaterThan(2 * controlRatio);
    expect(era.activations[0]!.forget.expanded).toBeGreaterThan(
      era.activations[0]!.retain.expanded,
    );
  });

  it('show the reversed gradient on the original units and the kept one on the expansion', () => {
    const era = run('era', 1).localisation!.gradients[1]!;
    const control = run('control', 0).localisation!.gradients[1]!;
    // Block 1 is the last routed block and every probe token is routed fully: the routed
    // gradient of its W_in is exactly −0.75 times the unrouted one on the original units and
    // equal on the expansion (block 0's also carries block 1's routing, so it is not exact).
    expect(era.originalAlongPlain).toBeCloseTo(-0.75, 4);
    expect(era.expandedAlongPlain).toBeCloseTo(1, 4);
    expect(control.originalAlongPlain).toBeCloseTo(1, 6);
    expect(control.expandedAlongPlain).toBeCloseTo(1, 6);
    expect(era.original).toBeGreaterThan(0);
    expect(era.expanded).toBeGreaterThan(0);
  });

  it('count the routed tokens: all of them with every label, none without', () => {
    expect(run('control', 0).localisation!.routing).toEqual({
      routedShare: 0,
      routedTokensSeen: 0,
    });
    expect(run('era', 0).localisation!.routing).toEqual({ routedShare: 0, routedTokensSeen: 0 });
    const era = run('era', 1).localisation!.routing;
    expect(era.routedShare).toBe(1);
    // 200 steps of 8 documents, a third of them forget, 8 target tokens each: about 4,270.
    expect(era.routedTokensSeen).toBeGreaterThan(3000);
    expect(era.routedTokensSeen).toBeLessThan(5500);
    expect(era.routedTokensSeen % 8).toBe(0);
  });

  it('track the ablation effect through training, ending at the trained and contracted model', () => {
    for (const [method, fraction] of [
      ['control', 0],
      ['era', 1],
    ] as const) {
      const r = run(method, fraction);
      const details = result.details.find(
        (d) => d.method === method && d.labelFraction === fraction,
      )!;
      const checkpoints = r.localisation!.checkpoints;
      expect(checkpoints.map((c) => c.step)).toEqual(checkpointSteps(config.steps));
      expect(checkpoints.map((c) => c.step)).toEqual([
        20, 40, 60, 80, 100, 120, 140, 160, 180, 200,
      ]);
      const last = checkpoints.at(-1)!;
      expect(last.forget).toBe(r.forget.before);
      expect(last.retain).toBe(r.retain.before);
      expect(last.forgetAblated).toBe(details.contracted!.forget);
      expect(last.retainAblated).toBe(details.contracted!.retain);
    }
    // The mechanism check at test size: deleting the expansion costs ERA's forget loss more than
    // the control's (+0.072 against −0.005 nats), and its retain loss less than its forget loss.
    const gap = (method: string, fraction: number, side: 'forget' | 'retain') => {
      const last = run(method, fraction).localisation!.checkpoints.at(-1)!;
      return side === 'forget'
        ? last.forgetAblated - last.forget
        : last.retainAblated - last.retain;
    };
    expect(gap('era', 1, 'forget')).toBeGreaterThan(gap('control', 0, 'forget') + 0.05);
    expect(gap('era', 1, 'retain')).toBeLessThan(gap('era', 1, 'forget') / 2);
  });

  it('are absent for filtering, which has no expansion', async () => {
    const filtered = await runEraExperiment(ownWordsCorpus(240), {
      ...config,
      methods: ['filter'],
      labelFractions: [1],
      steps: 2,
    });
    expect(filtered.runs[0]!.localisation).toBeNull();
  });
});
