/**
 * The checks every backend must pass, compared with the cpu backend in the same process: the
 * routing op's exactness and a short routed training run; and, on the backend alone, the same
 * numbers from the same seed. Everything is read with `await
 * tensor.data()`, since WebGPU in Node cannot read synchronously.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { expect, it } from 'vitest';
import { Autoencoder } from '../../src/core/models/autoencoder.js';
import { splitObjective } from '../../src/core/models/split-objective.js';
import { routeGradients, stopGradient } from '../../src/core/routing/route.js';
import { runSplitExperiment, splitPresets } from '../../src/experiments/split.js';
import { expectNoLeak } from './backends.js';

const ROUTES = [
  { labels: [0, 1, 2, 3, 4], region: [0, 4] as const },
  { labels: [5, 6, 7, 8, 9], region: [4, 8] as const },
];

/** Deterministic values in [-1, 1): a 32-bit LCG, so that every run and backend sees the same data. */
function seededValues(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

/** The indices where `actual` and `expected` differ bit for bit (NaN equals NaN, +0 differs from -0). */
function bitMismatches(actual: ArrayLike<number>, expected: ArrayLike<number>): number[] {
  expect(actual.length).toBe(expected.length);
  const bad: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) bad.push(i);
  }
  return bad;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Upstream gradients with NaN and ±Infinity, and a mask with zeros, soft weights and ones. */
const DY = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  2.5,
  -1.25,
  3,
  Number.NaN,
  Number.NEGATIVE_INFINITY,
  0.5,
  Number.POSITIVE_INFINITY,
  7,
  -3,
];
const MASK = [1, 0, 0.5, 0, 0, 0, 1, 1, 0.25, 1, 0, 0];
const SHAPE: [number, number] = [3, 4];

/**
 * What the routed gradient must be, computed on the host: `mask·dy` (every product here is
 * exact in float32), and `+0` wherever the mask is 0 whatever `dy` is.
 */
function expectedRoutedGradient(mask: readonly number[]): number[] {
  return DY.map((dy, i) => (mask[i] === 0 ? 0 : Math.fround(dy * mask[i]!)));
}

async function routedGradient(mask: tf.Tensor): Promise<Float32Array> {
  const x = tf.tensor2d(seededValues(12, 1), SHAPE);
  const dy = tf.tensor2d(DY, SHAPE);
  const grad = tf.grad((v: tf.Tensor) => routeGradients(v, mask))(x, dy);
  const values = (await grad.data()) as Float32Array;
  tf.dispose([x, dy, grad]);
  return values;
}

interface TrainingRun {
  losses: number[];
  /** Every trainable variable after the plain gradient-descent phase. */
  weights: Float32Array[];
  /** The latent layer's kernel columns that digits 0–4 must never update, before and after. */
  blockedBefore: Float32Array;
  blockedAfter: Float32Array;
}

/** The latent layer's kernel `[6, 8]` columns 4..8, which digits 0–4 may not update. */
async function blockedColumns(model: Autoencoder): Promise<Float32Array> {
  const kernel = model.trainableVariables.find((v) => v.shape[0] === 6 && v.shape[1] === 8)!;
  const block = tf.slice(kernel, [0, 4], [-1, 4]);
  const values = (await block.data()) as Float32Array;
  block.dispose();
  return values;
}

/**
 * A short routed training run of a small autoencoder with certificates and the paper's
 * penalties: four gradient-descent steps on a mixed batch (linear in the gradients, so the
 * weights can be compared tightly with cpu), then four Adam steps on digits 0–4 only (Adam
 * leaves a weight whose gradient is exactly zero exactly where it was).
 */
async function trainingRun(): Promise<TrainingRun> {
  const model = new Autoencoder({
    inputDim: 12,
    hidden: [10, 6],
    latentDim: 8,
    certificates: ROUTES.map((route) => route.region),
    seed: 3,
  });
  const objective = splitObjective({ routes: ROUTES }, 8);
  const unpenalised = splitObjective({ routes: ROUTES, weights: { l1: 0, correlation: 0 } }, 8);
  const step = (optimizer: tf.Optimizer, of: typeof objective, labels: tf.Tensor1D) => {
    const loss = optimizer.minimize(
      () => of.loss(model, x, labels).total,
      true,
      model.trainableVariables,
    );
    return loss!;
  };
  const descent = tf.train.sgd(0.05);
  const adam = tf.train.adam(1e-2);
  const x = tf.tensor2d(seededValues(8 * 12, 2), [8, 12]);
  const labels = tf.tensor1d([0, 5, 1, 6, 2, 7, 3, 9], 'int32');
  const groupA = tf.tensor1d([0, 1, 2, 3, 4, 0, 1, 2], 'int32');
  const losses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const loss = step(descent, objective, labels);
    losses.push((await loss.data())[0]!);
    loss.dispose();
  }
  const weights = await Promise.all(
    model.trainableVariables.map(async (v) => (await v.data()) as Float32Array),
  );
  const blockedBefore = await blockedColumns(model);
  for (let i = 0; i < 4; i++) {
    const loss = step(adam, unpenalised, groupA);
    losses.push((await loss.data())[0]!);
    loss.dispose();
  }
  const blockedAfter = await blockedColumns(model);
  descent.dispose();
  adam.dispose();
  objective.dispose();
  unpenalised.dispose();
  model.dispose();
  tf.dispose([x, labels, groupA]);
  return { losses, weights, blockedBefore, blockedAfter };
}

/** Runs `work` on the cpu backend, then switches back to `backend`. */
async function onCpu<T>(backend: string, work: () => Promise<T>): Promise<T> {
  await tf.setBackend('cpu');
  try {
    return await work();
  } finally {
    await tf.setBackend(backend);
  }
}

/**
 * Registers the conformance tests for `backend`, which must be active when they run.
 * `tolerance` bounds the float32 rounding differences from cpu in the training run (products
 * summed in another order); exact results (zeros, identities, exact products) must match bit
 * for bit whatever it is.
 */
export function routingConformanceTests(backend: string, tolerance = 1e-5): void {
  it(`runs on ${backend}`, () => {
    expect(tf.getBackend()).toBe(backend);
  });

  it('gives exact +0 where the mask is 0 under NaN and ±Infinity upstream, and mask·dy elsewhere', async () => {
    await expectNoLeak(async () => {
      const mask = tf.tensor2d(MASK, SHAPE);
      expect(bitMismatches(await routedGradient(mask), expectedRoutedGradient(MASK))).toEqual([]);
      mask.dispose();
      // A per-example [B, 1] mask, broadcast over the features.
      const rows = tf.tensor2d([0, 1, 0.5], [3, 1]);
      const full = MASK.map((_, i) => [0, 1, 0.5][Math.floor(i / 4)]!);
      expect(bitMismatches(await routedGradient(rows), expectedRoutedGradient(full))).toEqual([]);
      rows.dispose();
    });
  });

  it('is the identity in the forward pass, bit for bit, NaN, ±Infinity and -0 included', async () => {
    await expectNoLeak(async () => {
      const values = [Number.NaN, -0, Number.POSITIVE_INFINITY, -1.5, 0.375, 0, 7, -2];
      const x = tf.tensor2d(values, [2, 4]);
      const routed = routeGradients(x, [1, 0, 0.5, 0]);
      const stopped = stopGradient(x);
      expect(bitMismatches(await routed.data(), values)).toEqual([]);
      expect(bitMismatches(await stopped.data(), values)).toEqual([]);
      tf.dispose([x, routed, stopped]);
    });
  });

  it('trains a routed autoencoder like cpu, and never moves weights the routing blocks', async () => {
    const reference = await onCpu(backend, trainingRun);
    let run: TrainingRun | undefined;
    await expectNoLeak(async () => {
      run = await trainingRun();
    });
    const here = run!;
    expect(here.losses).toHaveLength(reference.losses.length);
    here.losses.forEach((loss, i) => {
      expect(Math.abs(loss - reference.losses[i]!)).toBeLessThanOrEqual(
        tolerance * Math.max(1, Math.abs(reference.losses[i]!)),
      );
    });
    // Training lowered the loss, on this backend as on cpu.
    expect(here.losses[3]).toBeLessThan(here.losses[0]!);
    expect(here.losses[7]).toBeLessThan(here.losses[4]!);
    expect(here.weights).toHaveLength(reference.weights.length);
    here.weights.forEach((weights, i) => {
      expect(maxAbsDifference(weights, reference.weights[i]!)).toBeLessThanOrEqual(tolerance);
    });
    // Digits 0–4 send no gradient into latent dims 4–8: those kernel columns stay bit for bit.
    expect(bitMismatches(here.blockedAfter, here.blockedBefore)).toEqual([]);
    expect(bitMismatches(reference.blockedAfter, reference.blockedBefore)).toEqual([]);
  });

  it('gives the same numbers for the same seed, probes on', async () => {
    // Two label groups of 3x4 images; the values only need to be the same for both runs.
    const dataset = (count: number, seed: number) => ({
      images: seededValues(count * 12, seed),
      labels: Int32Array.from({ length: count }, (_, i) => (i * 7) % 4),
      count,
      rows: 3,
      cols: 4,
    });
    const data = { train: dataset(40, 5), test: dataset(12, 6) };
    const config = {
      ...splitPresets.smoke,
      model: { hidden: [10], latentDim: 4, seed: 1 },
      fit: { epochs: 2, batchSize: 8, seed: 2 },
      probe: { epochs: 1, batchSize: 8, learningRate: 1e-2 },
      partition: [
        [0, 1],
        [2, 3],
      ],
    };
    await expectNoLeak(async () => {
      const runs = [await runSplitExperiment(data, config), await runSplitExperiment(data, config)];
      const numbers = runs.map((run) => {
        run.model.dispose();
        return {
          losses: run.losses,
          decoder: run.decoderPerLabel,
          certificates: run.certificates.map((c) => c.perLabelMae),
          probes: run.probes.map((p) => p.perLabelMae),
        };
      });
      expect(numbers[0]!.probes).toHaveLength(2);
      expect(numbers[0]!.losses.length).toBeGreaterThan(0);
      expect(numbers[1]).toEqual(numbers[0]);
      const reseeded = await runSplitExperiment(data, {
        ...config,
        fit: { ...config.fit, seed: 3 },
      });
      reseeded.model.dispose();
      expect(reseeded.losses).not.toEqual(numbers[0]!.losses);
    });
  });
}
