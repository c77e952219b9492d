/**
 * The WebGPU work of one training step of the library's own paper model, as `npm run mnist-split
 * -- --preset paper` trains it: `Autoencoder` (784-2048-512-32, two certificate decoders),
 * `splitObjective` (grouped reconstruction, certificates, L1 and correlation terms, routed latent)
 * and `torchAdam`. Prints programs, uploads and submits per step, counted from the backend.
 *
 *   npx tsx bench/split-step.ts [--batch 64] [--steps 3]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { Autoencoder, countWebGpuWork, splitObjective, torchAdam } from 'gradient-routing';
import { releaseNodeWebGpu, selectNodeBackend } from 'gradient-routing/node';

const { values: args } = parseArgs({
  options: { batch: { type: 'string', default: '64' }, steps: { type: 'string', default: '3' } },
});
const batch = Number(args.batch);
const steps = Number(args.steps);
if (!(Number.isInteger(batch) && batch > 0 && Number.isInteger(steps) && steps > 0)) {
  throw new Error('gradient-routing split-step: --batch and --steps take positive integers.');
}

await selectNodeBackend({ backend: 'webgpu', onNotice: () => {} });
const objective = splitObjective(
  {
    routes: [
      { labels: [0, 1, 2, 3, 4], region: [0, 16] },
      { labels: [5, 6, 7, 8, 9], region: [16, 32] },
    ],
    numClasses: 10,
  },
  32,
);
const model = new Autoencoder({
  inputDim: 784,
  hidden: [2048, 512],
  latentDim: 32,
  seed: 0,
  certificates: [
    [0, 16],
    [16, 32],
  ],
});
const optimizer = torchAdam({ learningRate: 1e-3, weightDecay: 5e-5 });
const x = tf.randomUniform([batch, 784]) as tf.Tensor2D;
const labels = tf.tensor1d(
  Array.from({ length: batch }, (_, i) => i % 10),
  'int32',
);
const step = async () => {
  const loss = optimizer.minimize(
    () => objective.loss(model, x, labels).total,
    true,
    model.trainableVariables,
  );
  await loss!.data();
  loss!.dispose();
};
await step(); // creates the moments and compiles the shaders
for (let i = 0; i < steps; i++) {
  const start = performance.now();
  const { counts } = await countWebGpuWork(step);
  const top = Object.entries(counts.programsByName)
    .sort((p, q) => q[1] - p[1])
    .slice(0, 8)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
  process.stdout.write(
    `split step, batch ${batch}: ${(performance.now() - start).toFixed(0)} ms, ${counts.programs} programs, ${counts.uploads} uploads (${(counts.uploadedBytes / 1024).toFixed(1)} kB), ${counts.submits} submits; ${top}\n`,
  );
}
optimizer.dispose();
model.dispose();
objective.dispose();
tf.dispose([x, labels]);
releaseNodeWebGpu();
