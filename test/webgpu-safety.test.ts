/**
 * Safe buffers and loud failures on WebGPU in Node (on CI machines: Mesa's llvmpipe through
 * Dawn's OpenGL ES backend, whose `maxStorageBufferBindingSize` is 128 MiB). The paper preset's
 * training set (188 MB) used to be one tensor there: every batch failed validation and training
 * went on over garbage. Skipped only where WebGPU cannot start; required in CI, as in
 * backends-webgpu.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeWebGpuDevice,
  checkGpuErrors,
  maxTensorBytes,
} from '../src/core/backend/webgpu/device.js';
import { toChunkedTensors } from '../src/core/data/dataset.js';
import { Autoencoder } from '../src/core/models/autoencoder.js';
import { splitObjective } from '../src/core/models/split-objective.js';
import { torchAdam } from '../src/core/optim/adam.js';
import { setMaskValidation } from '../src/core/routing/route.js';
import { fit as fitModel } from '../src/core/training/fit.js';
import { partitionRegions, splitPresets } from '../src/experiments/split.js';
import { GradientRoutingError, type ImageDataset } from '../src/index.js';
import { loadMnist } from '../src/node/mnist.js';
import { releaseNodeWebGpu } from '../src/node/webgpu.js';
import { expectNoLeak } from './helpers/backends.js';
import { nodeWebGpuUnavailable } from './helpers/webgpu.js';

const unavailable = await nodeWebGpuUnavailable('WebGPU safety tests');

/** Ends a fit after a few steps: the paper preset's epochs are far too long for a test. */
class EnoughSteps extends Error {}

const STEPS = 3;
/** The paper's batch is 2048; the test uses 64, as steps on a software adapter are slow. */
const BATCH = 64;

/** The paper preset's model, objective and optimizer on MNIST's whole training set, a few steps. */
async function paperFirstSteps(train: ImageDataset): Promise<{ losses: number[]; chunks: number }> {
  const config = splitPresets.paper;
  const regions = partitionRegions(config.partition, config.model.latentDim);
  const routes = config.partition.map((labels, g) => ({ labels, region: regions[g]! }));
  const objective = splitObjective(
    { routes, numClasses: 10, routed: true, weights: config.objective.weights },
    config.model.latentDim,
  );
  const model = new Autoencoder({
    ...config.model,
    inputDim: 784,
    certificates: regions.map((region) => [region]),
  });
  const optimizer = torchAdam(config.optimizer);
  const { x, y } = toChunkedTensors(train);
  const losses: number[] = [];
  try {
    await fitModel(
      (batch) => objective.loss(model, batch.x as tf.Tensor2D, batch.labels as tf.Tensor1D).total,
      model.trainableVariables,
      optimizer,
      { x, labels: y },
      {
        epochs: 1,
        batchSize: BATCH,
        lossEvery: 1,
        onProgress: (progress) => {
          losses.push(progress.loss!);
          if (progress.totalSteps === STEPS) throw new EnoughSteps();
        },
      },
    );
  } catch (error) {
    if (!(error instanceof EnoughSteps)) throw error;
  } finally {
    tf.dispose(y);
    model.dispose();
    x.dispose();
    optimizer.dispose();
    objective.dispose();
  }
  return { losses, chunks: x.chunks.length };
}

/**
 * A small model's fit over `data`, with `sabotage` run inside the loss at step `at`; the steps
 * that completed go to `completed`.
 */
async function smallFit(
  data: { x: tf.Tensor; labels: tf.Tensor },
  sabotage: { at: number; run: () => void } | null,
  completed: number[] = [],
): Promise<void> {
  const features = data.x.shape[1]!;
  const model = new Autoencoder({ inputDim: features, hidden: [8], latentDim: 4, seed: 1 });
  const optimizer = torchAdam();
  let step = 0;
  try {
    await fitModel(
      (batch) => {
        step += 1;
        if (sabotage !== null && step === sabotage.at) sabotage.run();
        const z = model.encode(batch.x as tf.Tensor2D);
        return tf.mean(tf.abs(tf.sub(model.decode(z), batch.x))) as tf.Scalar;
      },
      model.trainableVariables,
      optimizer,
      data,
      {
        epochs: 1,
        batchSize: 16,
        lossEvery: 5,
        onProgress: (progress) => void completed.push(progress.totalSteps),
      },
    );
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}

describe.skipIf(unavailable !== null)('WebGPU safety in Node', () => {
  let train: ImageDataset;
  beforeAll(async () => {
    await tf.setBackend('webgpu');
    // Mask validation reads synchronously, which WebGPU in Node cannot (as in the CLI).
    setMaskValidation(false);
    train = await loadMnist({ split: 'train', range: [-1, 1] });
  });
  afterAll(() => {
    setMaskValidation(true);
    releaseNodeWebGpu();
  });

  it("runs the paper preset's first steps on MNIST's whole training set in chunks, with cpu's losses", async () => {
    await tf.setBackend('webgpu');
    const limit = maxTensorBytes();
    let onGpu: { losses: number[]; chunks: number } | undefined;
    await expectNoLeak(async () => {
      onGpu = await paperFirstSteps(train);
    });
    // On llvmpipe (128 MiB) the 188 MB training set takes two chunks; a GPU may bind it whole.
    const rowsPerChunk = Math.min(train.count, Math.floor(limit / (784 * 4)));
    expect(onGpu!.chunks).toBe(Math.ceil(train.count / rowsPerChunk));
    if (limit === 128 * 1024 * 1024) expect(onGpu!.chunks).toBe(2);
    // No validation error was recorded (fit would have thrown one at the step it happened in).
    expect(() => checkGpuErrors()).not.toThrow();
    await tf.setBackend('cpu');
    const onCpu = await paperFirstSteps(train);
    await tf.setBackend('webgpu');
    expect(onGpu!.losses).toHaveLength(STEPS);
    // Garbage batches gave losses near 0.07 instead of cpu's 3.8, 3.6, 3.0 (batch 64).
    onGpu!.losses.forEach((loss, i) => {
      expect(Math.abs(loss - onCpu.losses[i]!)).toBeLessThan(1e-4 * Math.abs(onCpu.losses[i]!));
    });
  }, 600_000);

  it('stops fit with a gpu error naming the limit when a tensor exceeds the binding size', async () => {
    await tf.setBackend('webgpu');
    const limit = activeWebGpuDevice()!.limits.maxStorageBufferBindingSize;
    // Where the device binds much more than llvmpipe, the oversized tensor would not fit the host.
    if (limit > 256 * 1024 * 1024) return;
    const features = 64;
    const rows = Math.floor(limit / (features * 4)) + 1;
    const x = tf.tensor2d(new Float32Array(rows * features), [rows, features]);
    const labels = tf.zeros([rows], 'int32');
    const failure = await smallFit({ x, labels }, null).catch((error: unknown) => error);
    tf.dispose([x, labels]);
    expect(failure).toBeInstanceOf(GradientRoutingError);
    const error = failure as GradientRoutingError;
    expect(error.code).toBe('gpu');
    expect(error.value).toBe('validation');
    expect(error.message).toContain(`maxStorageBufferBindingSize ${limit}`);
    expect(error.message).toMatch(/larger than the maximum storage buffer binding size/);
    expect(error.message).toMatch(/toChunkedTensors/);
  });

  it('stops fit at the step of a forced validation error, once, and leaks nothing', async () => {
    await tf.setBackend('webgpu');
    const device = activeWebGpuDevice() as unknown as {
      limits: { maxBufferSize: number };
      createBuffer(descriptor: { size: number; usage: number }): unknown;
    };
    const features = 12;
    const values = Float32Array.from({ length: 64 * features }, (_, i) => (i % 7) / 7);
    const x = tf.tensor2d(values, [64, features]);
    const labels = tf.zeros([64], 'int32');
    const storageUsage = 0x80; // GPUBufferUsage.STORAGE
    let failure: unknown;
    const completed: number[] = [];
    await expectNoLeak(async () => {
      failure = await smallFit(
        { x, labels },
        {
          at: 2,
          // Larger than the device can allocate: Dawn rejects it with a validation error.
          run: () =>
            device.createBuffer({ size: device.limits.maxBufferSize + 4, usage: storageUsage }),
        },
        completed,
      ).catch((error: unknown) => error);
    });
    // Step 2 failed: it is not reported as done, and no step after it ran.
    expect(completed).toEqual([1]);
    expect(failure).toBeInstanceOf(GradientRoutingError);
    expect((failure as GradientRoutingError).code).toBe('gpu');
    expect((failure as GradientRoutingError).message).toMatch(/exceeds the max buffer size limit/);
    // Reported once: the same device trains again afterwards.
    await expect(smallFit({ x, labels }, null)).resolves.toBeUndefined();
    tf.dispose([x, labels]);
  });
});
