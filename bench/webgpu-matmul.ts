/**
 * `npx tsx bench/webgpu-matmul.ts`: the library's WebGPU matMul kernels against tfjs's stock ones,
 * on whatever WebGPU adapter the machine has (forced on a software one). Prints, for both:
 * the GFLOP/s of the three products of a 784 → 2048 dense layer at batch 256 (x·W, dy·Wᵀ, xᵀ·dy;
 * the best of the timed ones, read back included), and the paper model's routed training step
 * (the library's Autoencoder, split objective and torchAdam, as the experiments train it) in ms
 * and in WebGPU programs, forward + backward and the whole step. Figures, not verdicts.
 *
 * Options: --batch N (default 256), --steps N timed steps (default 3; 0: products only),
 * --products N timed products (default 5), --order stock,library (which kernels go first; on a
 * busy machine, run both orders).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  Autoencoder,
  installWebGpuKernels,
  splitObjective,
  torchAdam,
  uninstallWebGpuKernels,
} from 'gradient-routing';
import { releaseNodeWebGpu, selectNodeBackend } from 'gradient-routing/node';

const { values: options } = parseArgs({
  options: {
    batch: { type: 'string', default: '256' },
    steps: { type: 'string', default: '3' },
    products: { type: 'string', default: '5' },
    order: { type: 'string', default: 'stock,library' },
  },
});
const batch = Number(options.batch);
const steps = Number(options.steps);
const products = Number(options.products);

await selectNodeBackend({ backend: 'webgpu', onNotice: (message) => console.error(message) });

/** Counts programs by wrapping the backend's `runWebGPUProgram` (tfjs has no counter of its own). */
let programs = 0;
const backend = tf.backend() as unknown as { runWebGPUProgram: (...args: unknown[]) => unknown };
const runProgram = backend.runWebGPUProgram.bind(backend);
backend.runWebGPUProgram = (...args: unknown[]) => {
  programs += 1;
  return runProgram(...args);
};

/** The three products of a 784 → 2048 dense layer at batch 256, as `[a, b, transposeA, transposeB]`. */
const LAYER_PRODUCTS = {
  x·W: [[256, 784], [784, 2048], false, false],
  dy·Wᵀ: [[256, 2048], [784, 2048], false, true],
  xᵀ·dy: [[256, 784], [256, 2048], true, false],
} as const;
const LAYER_FLOPS = 2 * 256 * 784 * 2048;

async function matMulGflops([
  aShape,
  bShape,
  transposeA,
  transposeB,
]: (typeof LAYER_PRODUCTS)[keyof typeof LAYER_PRODUCTS]): Promise<number> {
  const a = tf.randomUniform([...aShape], -1, 1, 'float32', 1);
  const b = tf.randomUniform([...bShape], -1, 1, 'float32', 2);
  const once = async () => {
    const c = tf.matMul(a, b, transposeA, transposeB);
    await c.data();
    c.dispose();
  };
  await once();
  // The best of the timed products: on a shared machine the others measure the load.
  let seconds = Number.POSITIVE_INFINITY;
  for (let i = 0; i < products; i++) {
    const started = performance.now();
    await once();
    seconds = Math.min(seconds, (performance.now() - started) / 1000);
  }
  tf.dispose([a, b]);
  return LAYER_FLOPS / seconds / 1e9;
}

interface StepFigures {
  msPerStep: number;
  programsForwardBackward: number;
  programsPerStep: number;
}

async function routedStep(): Promise<StepFigures> {
  const routes = [
    { labels: [0, 1, 2, 3, 4], region: [0, 16] as const },
    { labels: [5, 6, 7, 8, 9], region: [16, 32] as const },
  ];
  const model = new Autoencoder({
    inputDim: 784,
    hidden: [2048, 512],
    latentDim: 32,
    certificates: routes.map((route) => [route.region]),
    seed: 0,
  });
  const objective = splitObjective({ routes, numClasses: 10 }, 32);
  const optimizer = torchAdam({ learningRate: 1e-3, weightDecay: 5e-5 });
  const x = tf.randomUniform([batch, 784], 0, 1, 'float32', 3) as tf.Tensor2D;
  const labels = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 10),
    'int32',
  );
  const variables = model.trainableVariables;
  const loss = () => objective.loss(model, x, labels).total;
  const step = async () => {
    const value = optimizer.minimize(loss, true, variables)!;
    await value.data();
    value.dispose();
  };
  await step();
  programs = 0;
  const { value, grads } = tf.variableGrads(loss, variables);
  const programsForwardBackward = programs;
  await value.data();
  tf.dispose([value, ...Object.values(grads)]);
  programs = 0;
  let msPerStep = Number.POSITIVE_INFINITY;
  for (let i = 0; i < steps; i++) {
    const started = performance.now();
    await step();
    msPerStep = Math.min(msPerStep, performance.now() - started);
  }
  const programsPerStep = programs / steps;
  optimizer.dispose();
  objective.dispose();
  model.dispose();
  tf.dispose([x, labels]);
  return { msPerStep, programsForwardBackward, programsPerStep };
}

const order = options.order.split(',');
if (order.some((kernels) => kernels !== 'stock' && kernels !== 'library')) {
  throw new Error(`--order takes stock and library, comma-separated; got ${options.order}.`);
}
for (const kernels of order) {
  if (kernels === 'stock') uninstallWebGpuKernels();
  else installWebGpuKernels();
  const rates: string[] = [];
  for (const [name, product] of Object.entries(LAYER_PRODUCTS)) {
    rates.push(`${name} ${(await matMulGflops(product)).toFixed(2)}`);
  }
  console.log(
    `${kernels.padEnd(8)} GFLOP/s of 256×784×2048 products (best of ${products}): ${rates.join(', ')}`,
  );
  if (steps === 0) continue;
  const step = await routedStep();
  console.log(
    `${kernels.padEnd(8)} routed step, batch ${batch}: ${step.msPerStep.toFixed(0)} ms (best of ${steps}), ` +
      `${step.programsForwardBackward} programs forward+backward, ${step.programsPerStep} programs per step with torchAdam`,
  );
}
releaseNodeWebGpu();
