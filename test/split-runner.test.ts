import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  partitionRegions,
  runSplitExperiment,
  type SplitExperimentConfig,
  splitPresets,
} from '../src/experiments/index.js';
import {
  type FitProgress,
  GradientRoutingError,
  type ImageDataset,
  probeLatentSlices,
  splitRatio,
} from '../src/index.js';
import { useBackend } from './helpers/backends.js';
import { lcgUniform } from './helpers/random.js';

/** 4x4 images of two classes: class c lights up the rows of half c, with seeded noise. */
function twoClassImages(count: number, seed: number): ImageDataset {
  const random = lcgUniform(seed);
  const images = new Float32Array(count * 16);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = (i * 7) % 3 === 0 ? 1 : 0;
    labels[i] = label;
    for (let p = 0; p < 16; p++) {
      const lit = Math.floor(p / 8) === label;
      images[i * 16 + p] = (lit ? 0.7 : -0.7) + (random() - 0.5) * 0.3;
    }
  }
  return { images, labels, count, rows: 4, cols: 4 };
}

/** Copies the first `count` examples, as a caller would without the limits. */
function firstExamples(dataset: ImageDataset, count: number): ImageDataset {
  return {
    ...dataset,
    count,
    images: dataset.images.slice(0, count * 16),
    labels: dataset.labels.slice(0, count),
  };
}

/** The smoke preset's objective (routed, the paper's weights) on a tiny model, without limits. */
const tiny: SplitExperimentConfig = {
  model: { hidden: [12], latentDim: 4, seed: 1 },
  objective: splitPresets.smoke.objective,
  optimizer: { learningRate: 3e-3, weightDecay: 0 },
  fit: { epochs: 2, batchSize: 8, seed: 2 },
  probe: { epochs: 1, batchSize: 8, learningRate: 3e-3 },
  partition: [[0], [1]],
};

describe('runSplitExperiment, phases and results', () => {
  beforeAll(() => useBackend('cpu'));

  it('reports the phases in order, every step, and consistent measurements', async () => {
    const data = { train: twoClassImages(40, 1), test: twoClassImages(12, 2) };
    const phases: string[] = [];
    const steps: FitProgress[] = [];
    const before = tf.memory().numTensors;
    const started = performance.now();
    const result = await runSplitExperiment(data, tiny, {
      onPhase: (phase) => phases.push(phase),
      onTrainProgress: (progress) => steps.push(progress),
    });
    const wallSeconds = (performance.now() - started) / 1000;
    expect(phases).toEqual(['train', 'evaluate', 'probe']);
    // 2 epochs of ceil(40 / 8) = 5 batches.
    expect(result.steps).toBe(10);
    expect(steps).toHaveLength(10);
    expect(steps.map((p) => p.totalSteps)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The loss is read at each epoch's end, and the progress carries the same values.
    expect(result.losses.map((l) => l.step)).toEqual([5, 10]);
    expect(result.losses.map((l) => l.loss)).toEqual(
      steps.filter((p) => p.loss !== undefined).map((p) => p.loss),
    );
    expect(result.config).toBe(tiny);
    // Training is part of the run: measured in seconds, within the call's wall time.
    expect(result.trainSeconds).toBeGreaterThan(0);
    expect(result.trainSeconds).toBeLessThanOrEqual(wallSeconds);
    // The decoder's MAE is the mean over labels.
    expect(result.decoderPerLabel).toHaveLength(2);
    expect(result.decoderMae).toBeCloseTo(
      (result.decoderPerLabel[0]! + result.decoderPerLabel[1]!) / 2,
      12,
    );
    // One certificate and one probe per group, on its own block, with its split ratio.
    expect(result.model.certificateDecoders).toHaveLength(2);
    for (const slices of [result.certificates, result.probes]) {
      expect(slices.map((s) => [s.region, s.ownGroup])).toEqual([
        [[0, 2], 0],
        [[2, 4], 1],
      ]);
      slices.forEach((slice, g) => {
        expect(slice).toMatchObject(splitRatio(slice.perLabelMae, tiny.partition, g));
        for (const mae of slice.perLabelMae) expect(mae).toBeGreaterThan(0);
      });
    }
    result.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reports progress through evaluation and every probe batch, after their phase starts', async () => {
    const data = { train: twoClassImages(40, 1), test: twoClassImages(12, 2) };
    const log: string[] = [];
    const losses: (number | undefined)[] = [];
    const before = tf.memory().numTensors;
    const result = await runSplitExperiment(
      data,
      { ...tiny, probe: { ...tiny.probe, epochs: 2 } },
      {
        onPhase: (phase) => log.push(phase),
        onPhaseProgress: ({ phase, done, total, slice }) => {
          log.push(`${phase} ${done}/${total}${slice === undefined ? '' : ` slice ${slice}`}`);
        },
      },
    );
    result.model.dispose();
    // The 12 test images fit one evaluation batch; each of 2 blocks gets 2 probe epochs of
    // ceil(40 / 8) = 5 batches.
    expect(log).toEqual([
      'train',
      'evaluate',
      'evaluate 12/12',
      'probe',
      ...Array.from({ length: 20 }, (_, i) => `probe ${i + 1}/20 slice ${i < 10 ? 0 : 1}`),
    ]);
    expect(tf.memory().numTensors).toBe(before);
    // A probe step carries its slice's last finished epoch's loss: none in a slice's first epoch.
    const probed = await runSplitExperiment(
      data,
      { ...tiny, probe: { ...tiny.probe, epochs: 2 } },
      { onPhaseProgress: (p) => p.phase === 'probe' && losses.push(p.loss) },
    );
    probed.model.dispose();
    const epochLoss = (slice: number) => losses[slice * 10 + 5]!;
    expect(losses).toEqual([
      ...Array.from({ length: 5 }, () => undefined),
      ...Array.from({ length: 5 }, () => epochLoss(0)),
      ...Array.from({ length: 5 }, () => undefined),
      ...Array.from({ length: 5 }, () => epochLoss(1)),
    ]);
    expect(epochLoss(0)).toBeGreaterThan(0);
    expect(epochLoss(1)).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('skips the probes when probe.epochs is 0 and the certificates when their weight is 0', async () => {
    const data = { train: twoClassImages(24, 3), test: twoClassImages(8, 4) };
    const phases: string[] = [];
    const noProbes = await runSplitExperiment(
      data,
      { ...tiny, probe: { ...tiny.probe, epochs: 0 } },
      { onPhase: (phase) => phases.push(phase) },
    );
    expect(phases).toEqual(['train', 'evaluate']);
    expect(noProbes.probes).toEqual([]);
    expect(noProbes.certificates).toHaveLength(2);
    noProbes.model.dispose();

    const weights = { ...tiny.objective.weights, certificates: 0 };
    const noCertificates = await runSplitExperiment(data, {
      ...tiny,
      objective: { ...tiny.objective, weights },
    });
    expect(noCertificates.model.certificateDecoders).toHaveLength(0);
    expect(noCertificates.certificates).toEqual([]);
    expect(noCertificates.probes).toHaveLength(2);
    noCertificates.model.dispose();
  });

  it('refuses a run that nothing would measure, before allocating anything', async () => {
    const data = { train: twoClassImages(24, 3), test: twoClassImages(8, 4) };
    const before = tf.memory().numTensors;
    await expect(
      runSplitExperiment(data, {
        ...tiny,
        objective: { ...tiny.objective, weights: { ...tiny.objective.weights, certificates: 0 } },
        probe: { ...tiny.probe, epochs: 0 },
      }),
    ).rejects.toThrow(
      /with no certificate decoders \(objective\.weights\.certificates 0\) and no probes \(probe\.epochs 0\) nothing would measure the split/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('uses the first trainLimit / testLimit examples, the same as passing them alone', async () => {
    const data = { train: twoClassImages(40, 5), test: twoClassImages(16, 6) };
    const config = { ...tiny, probe: { ...tiny.probe, epochs: 0 } };
    const limited = await runSplitExperiment(data, { ...config, trainLimit: 16, testLimit: 9 });
    const cut = await runSplitExperiment(
      { train: firstExamples(data.train, 16), test: firstExamples(data.test, 9) },
      config,
    );
    expect(limited.steps).toBe(2 * 2);
    expect(limited.losses).toEqual(cut.losses);
    expect(limited.decoderPerLabel).toEqual(cut.decoderPerLabel);
    // A limit at or above the size keeps everything.
    const whole = await runSplitExperiment(data, config);
    const over = await runSplitExperiment(data, { ...config, trainLimit: 40, testLimit: 99 });
    expect(over.losses).toEqual(whole.losses);
    expect(over.decoderPerLabel).toEqual(whole.decoderPerLabel);
    expect(whole.steps).toBe(2 * 5);
    for (const result of [limited, cut, whole, over]) result.model.dispose();
  });

  it("keeps the label check's own error as the cause, with its code and value", async () => {
    const train = twoClassImages(24, 9);
    const test = twoClassImages(8, 10);
    const badTrain = {
      ...train,
      labels: Int32Array.from(train.labels, (l, i) => (i === 3 ? 5 : l)),
    };
    const before = tf.memory().numTensors;
    const error = await runSplitExperiment({ train: badTrain, test }, tiny).catch((e) => e);
    expect(error).toBeInstanceOf(GradientRoutingError);
    expect(error).toMatchObject({ code: 'invalid-label', value: 5 });
    expect(error.message).toMatch(/^gradient-routing: in the training set, example 3 has label 5/);
    expect(error.cause).toBeInstanceOf(GradientRoutingError);
    expect(error.cause).toMatchObject({ code: 'invalid-label', value: 5 });
    expect(error.cause.message).toMatch(/^gradient-routing: example 3 has label 5/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('frees the model and every tensor when training diverges', async () => {
    const data = { train: twoClassImages(24, 7), test: twoClassImages(8, 8) };
    const before = tf.memory().numTensors;
    await expect(
      runSplitExperiment(data, { ...tiny, optimizer: { learningRate: 1e9, weightDecay: 0 } }),
    ).rejects.toMatchObject({ code: 'diverged' });
    expect(tf.memory().numTensors).toBe(before);
  });

  it("probes each block with a decoder of the autoencoder's decoder widths and the fit seed", async () => {
    const data = { train: twoClassImages(24, 11), test: twoClassImages(10, 12) };
    // Two hidden widths, so that their order matters.
    const config = { ...tiny, model: { ...tiny.model, hidden: [12, 6] } };
    const result = await runSplitExperiment(data, config);
    const trainX = tf.tensor2d(data.train.images, [24, 16]);
    const testX = tf.tensor2d(data.test.images, [10, 16]);
    const before = tf.memory().numTensors;
    const probe = await probeLatentSlices({
      ...config.probe,
      encode: (x) => result.model.encode(x),
      trainX,
      testX,
      testLabels: data.test.labels,
      slices: [
        [0, 2],
        [2, 4],
      ],
      partition: config.partition,
      // The decoder runs latent → 6 → 12 → image.
      hidden: [6, 12],
      seed: config.fit.seed,
    });
    expect(result.probes).toEqual(probe.slices);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([trainX, testX]);
    result.model.dispose();
  });

  it('names a partition label that the test split lacks, and frees everything', async () => {
    const train = twoClassImages(24, 13);
    const test = twoClassImages(10, 14);
    const onlyZeros = { ...test, labels: new Int32Array(10) };
    const before = tf.memory().numTensors;
    await expect(
      runSplitExperiment(
        { train, test: onlyZeros },
        { ...tiny, probe: { ...tiny.probe, epochs: 0 } },
      ),
    ).rejects.toThrow(
      /the per-label error of label 1 is NaN; .*Make sure the evaluation data holds examples of every label/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('partitionRegions', () => {
  it('gives one group the whole latent and equal blocks to several', () => {
    expect(partitionRegions([[0, 1, 2]], 6)).toEqual([[0, 6]]);
    expect(partitionRegions([[0], [1], [2]], 6)).toEqual([
      [0, 2],
      [2, 4],
      [4, 6],
    ]);
    expect(() => partitionRegions([], 6)).toThrow(/cannot be split into 0 equal blocks/);
  });
});
