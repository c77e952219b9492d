// The paper preset's first training steps on MNIST's whole training set, on any backend, with
// the training data in chunks below the device's binding limit (the default) or as one tensor
// (`--whole`, what 0.2.0 did). On a 128 MiB device (Mesa's llvmpipe) the whole 188 MB tensor
// cannot be bound: 0.2.0 trained on garbage; now the run stops with a 'gpu' GradientRoutingError.
//
//   npx tsx bench/webgpu-first-steps.ts --backend webgpu --steps 3 --batch 64
//   npx tsx bench/webgpu-first-steps.ts --backend cpu --steps 3 --batch 64
//   npx tsx bench/webgpu-first-steps.ts --backend webgpu --whole
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  Autoencoder,
  type BackendChoice,
  ChunkedRows,
  fit,
  GradientRoutingError,
  maxTensorBytes,
  setMaskValidation,
  splitObjective,
  toChunkedTensors,
  torchAdam,
} from 'gradient-routing';
import { partitionRegions, splitPresets } from 'gradient-routing/experiments';
import { loadMnist, releaseNodeWebGpu, selectNodeBackend } from 'gradient-routing/node';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'webgpu' },
    steps: { type: 'string', default: '3' },
    batch: { type: 'string', default: '64' },
    whole: { type: 'boolean', default: false },
  },
});
const steps = Number(values.steps);
const batchSize = Number(values.batch);

/** Ends the run after `steps` steps: the preset's 200 epochs are not the point here. */
class Enough extends Error {}

const backend = await selectNodeBackend({ backend: values.backend as BackendChoice });
setMaskValidation(backend !== 'webgpu');
const train = await loadMnist({ split: 'train', range: [-1, 1] });
const config = splitPresets.paper;
const regions = partitionRegions(config.partition, config.model.latentDim);
const objective = splitObjective(
  {
    routes: config.partition.map((labels, g) => ({ labels, region: regions[g]! })),
    numClasses: 10,
    routed: true,
    weights: config.objective.weights,
  },
  config.model.latentDim,
);
const model = new Autoencoder({
  ...config.model,
  inputDim: 784,
  certificates: regions.map((region) => [region]),
});
const optimizer = torchAdam(config.optimizer);
const { x, y } = values.whole
  ? { x: tf.tensor2d(train.images, [train.count, 784]), y: tf.tensor1d(train.labels, 'int32') }
  : toChunkedTensors(train);
const chunks = x instanceof ChunkedRows ? x.chunks.length : 1;
console.log(
  `backend ${backend}; training set ${train.images.byteLength} bytes in ${chunks} tensor(s); ` +
    `the backend binds at most ${maxTensorBytes()} bytes per tensor`,
);
const losses: number[] = [];
const started = performance.now();
try {
  await fit(
    (batch) => objective.loss(model, batch.x as tf.Tensor2D, batch.labels as tf.Tensor1D).total,
    model.trainableVariables,
    optimizer,
    { x, labels: y },
    {
      epochs: 1,
      batchSize,
      lossEvery: 1,
      onProgress: (progress) => {
        losses.push(progress.loss!);
        if (progress.totalSteps === steps) throw new Enough();
      },
    },
  );
} catch (error) {
  if (error instanceof GradientRoutingError)
    console.log(`stopped: ${error.code}: ${error.message}`);
  else if (!(error instanceof Enough)) throw error;
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `losses of the first ${losses.length} steps (batch ${batchSize}): ${losses.join(', ')}`,
);
console.log(`${seconds.toFixed(1)} s`);
x.dispose();
y.dispose();
model.dispose();
optimizer.dispose();
objective.dispose();
releaseNodeWebGpu();
