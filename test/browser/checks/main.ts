// The browser half of the routing op checks: runs routeGradients on one backend and hands the raw
// bits back to Node, where routing.browser.ts compares them with what they must be.
import '@tensorflow/tfjs-backend-webgpu';
import '@tensorflow/tfjs-backend-webgl';
import * as tf from '@tensorflow/tfjs-core';
import {
  Autoencoder,
  type BackendName,
  countWebGpuWork,
  fit as fitModel,
  GradientRoutingError,
  routeGradients,
  selectBackend,
  torchAdam,
  watchGpuErrors,
  webGpuKernelsInstalled,
} from 'gradient-routing';
import { AdamW } from 'gradient-routing/experiments';
import type {
  GpuErrorCheckResult,
  MatMulCheckInput,
  MatMulCheckResult,
  OptimiserCheckInput,
  OptimiserCheckResult,
  RoutingCheckInput,
  RoutingCheckResult,
} from './protocol.js';

function bits(values: Float32Array): number[] {
  return Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
}

async function read(tensor: tf.Tensor): Promise<number[]> {
  // Asynchronous, as WebGPU requires.
  return bits((await tensor.data()) as Float32Array);
}

/** Why a backend cannot run here, or undefined when it can. */
async function unavailable(backend: BackendName): Promise<string | undefined> {
  if (backend !== 'webgpu') return undefined;
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (gpu === undefined) return 'this Chromium offers no WebGPU (navigator.gpu is undefined)';
  return (await gpu.requestAdapter()) === null ? 'WebGPU offers no adapter (no GPU)' : undefined;
}

async function routingChecks(input: RoutingCheckInput): Promise<RoutingCheckResult> {
  const reason = await unavailable(input.backend);
  if (reason !== undefined) return { available: false, reason };
  const backend = await selectBackend({
    backend: input.backend,
    wasmPaths: new URL('../tfjs-wasm/', document.baseURI).href,
  });
  const before = tf.memory().numTensors;
  const { shape } = input;
  const x = tf.tensor(Float32Array.from(input.x), shape, 'float32');
  const mask = tf.tensor(Float32Array.from(input.mask), shape, 'float32');
  const dy = tf.tensor(Float32Array.from(input.dy), shape, 'float32');
  // The same values, but produced by a kernel of the backend, so they live on the device.
  const onDevice = tf.tidy(() => tf.mul(x, tf.scalar(1)));
  const routed = routeGradients(x, mask);
  const routedOnDevice = routeGradients(onDevice, mask);
  const gradient = tf.grad((t: tf.Tensor) => routeGradients(t, mask))(x, dy);
  const result: RoutingCheckResult = {
    available: true,
    backend,
    activeBackend: tf.getBackend(),
    forward: await read(routed),
    onDevice: await read(onDevice),
    forwardOnDevice: await read(routedOnDevice),
    gradient: await read(gradient),
    tensorsBefore: before,
    tensorsAfter: 0,
  };
  tf.dispose([x, mask, dy, onDevice, routed, routedOnDevice, gradient]);
  result.tensorsAfter = tf.memory().numTensors;
  return result;
}

/**
 * Trains a tiny linear model with `fit` on WebGPU and, inside the loss at step 2, asks the device
 * for a buffer larger than it can allocate: WebGPU reports that validation error asynchronously,
 * and `fit` must stop with a 'gpu' GradientRoutingError instead of training on.
 */
async function gpuErrorCheck(): Promise<GpuErrorCheckResult> {
  const reason = await unavailable('webgpu');
  if (reason !== undefined) return { available: false, reason };
  await selectBackend({ backend: 'webgpu' });
  const watched = watchGpuErrors();
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const before = tf.memory().numTensors;
  const x = tf.tensor2d(
    Float32Array.from({ length: 32 * 3 }, (_, i) => (i % 5) / 5),
    [32, 3],
  );
  const labels = tf.zeros([32], 'int32');
  // In a tidy: the variable keeps its own reference to the data; the initial tensor must go.
  const w = tf.tidy(() => tf.variable(tf.zeros([3, 1])));
  const optimizer = tf.train.sgd(0.1);
  let completedSteps = 0;
  let step = 0;
  let failure: unknown = null;
  try {
    await fitModel(
      (batch) => {
        step += 1;
        if (step === 2) {
          device.createBuffer({
            size: device.limits.maxBufferSize + 4,
            usage: GPUBufferUsage.STORAGE,
          });
        }
        return tf.mean(tf.square(tf.matMul(batch.x as tf.Tensor2D, w))) as tf.Scalar;
      },
      [w],
      optimizer,
      { x, labels },
      {
        epochs: 4,
        batchSize: 8,
        lossEvery: 1,
        onProgress: (progress) => {
          completedSteps = progress.totalSteps;
        },
      },
    );
  } catch (error) {
    failure = error;
  }
  tf.dispose([x, labels, w]);
  optimizer.dispose();
  const error = failure instanceof GradientRoutingError ? failure : null;
  return {
    available: true,
    watched,
    code: error?.code ?? (failure === null ? null : String(failure)),
    value: error === null ? null : String(error.value),
    message: error?.message ?? null,
    completedSteps,
    tensorsBefore: before,
    tensorsAfter: tf.memory().numTensors,
  };
}

/**
 * The dense-layer products on WebGPU, with the library's kernels that selectBackend installs, and
 * the gradients of a small autoencoder (whose dense layers take the library's fused path there).
 */
async function matMulChecks(input: MatMulCheckInput): Promise<MatMulCheckResult> {
  const reason = await unavailable('webgpu');
  if (reason !== undefined) return { available: false, reason };
  await selectBackend({ backend: 'webgpu' });
  const before = tf.memory().numTensors;
  const products: number[][] = [];
  for (const p of input.products) {
    const out = tf.tidy(() => {
      const a = tf.tensor(p.a, p.aShape);
      const b = tf.tensor(p.b, p.bShape);
      const bias = p.bias === undefined ? undefined : tf.tensor1d(p.bias);
      const { transposeA, transposeB } = p;
      return tf.fused.matMul({
        a,
        b,
        transposeA,
        transposeB,
        bias,
        activation: p.activation ?? 'linear',
      });
    });
    products.push(Array.from(await out.data()));
    out.dispose();
  }
  const model = new Autoencoder({ inputDim: 12, hidden: [33], latentDim: 7, seed: 1 });
  const x = tf.tensor2d(input.autoencoderInput, [input.autoencoderInput.length / 12, 12]);
  const { value, grads } = tf.variableGrads(
    () => tf.mean(tf.abs(tf.sub(model.reconstruct(x), x))) as tf.Scalar,
    model.trainableVariables,
  );
  const gradients = await Promise.all(
    model.trainableVariables.map(async (v) => Array.from(await grads[v.name]!.data())),
  );
  const loss = (await value.data())[0]!;
  tf.dispose([x, value, ...Object.values(grads)]);
  model.dispose();
  return {
    available: true,
    kernelsInstalled: webGpuKernelsInstalled(),
    products,
    loss,
    gradients,
    tensorsBefore: before,
    tensorsAfter: tf.memory().numTensors,
  };
}

/** Runs torchAdam and AdamW over the given steps on one backend; returns the final weights. */
async function optimiserChecks(input: OptimiserCheckInput): Promise<OptimiserCheckResult> {
  const reason = await unavailable(input.backend);
  if (reason !== undefined) return { available: false, reason };
  await selectBackend({
    backend: input.backend,
    wasmPaths: new URL('../tfjs-wasm/', document.baseURI).href,
  });
  const before = tf.memory().numTensors;
  const train = async (update: (variables: tf.Variable[], grads: tf.NamedTensorMap) => void) => {
    const variables = input.weights.map((w, i) =>
      tf.tidy(() => tf.variable(tf.tensor(w, input.shapes[i]))),
    );
    for (const stepGradients of input.gradients) {
      const grads: tf.NamedTensorMap = {};
      stepGradients.forEach((g, i) => {
        grads[variables[i]!.name] = tf.tensor(g, input.shapes[i]);
      });
      update(variables, grads);
      tf.dispose(Object.values(grads));
    }
    const weights = await Promise.all(variables.map(async (v) => Array.from(await v.data())));
    tf.dispose(variables);
    return weights;
  };
  const adam = torchAdam({ learningRate: 0.01, weightDecay: 0.05 });
  const torchAdamWeights = await train((_, grads) => adam.applyGradients(grads));
  adam.dispose();
  const adamW = new AdamW({ weightDecay: 0.3 });
  const adamWWeights = await train((variables, grads) => adamW.step(variables, grads, 0.01));
  adamW.dispose();
  let steadyStep: { programs: number; uploads: number; fusedPrograms: number } | null = null;
  if (input.backend === 'webgpu') {
    const variables = input.shapes.map((shape) =>
      tf.tidy(() => tf.variable(tf.randomNormal(shape))),
    );
    const grads: tf.NamedTensorMap = {};
    for (const v of variables) grads[v.name] = tf.tidy(() => tf.mul(tf.randomNormal(v.shape), 1));
    const optimizer = torchAdam();
    optimizer.applyGradients(grads);
    await variables[0]!.data();
    const { counts } = await countWebGpuWork(() => optimizer.applyGradients(grads));
    steadyStep = {
      programs: counts.programs,
      uploads: counts.uploads,
      fusedPrograms: counts.programsByName.GradientRoutingAdamProgram ?? 0,
    };
    optimizer.dispose();
    tf.dispose([...variables, ...Object.values(grads)]);
  }
  return {
    available: true,
    activeBackend: tf.getBackend(),
    torchAdam: torchAdamWeights,
    adamW: adamWWeights,
    steadyStep,
    tensorsBefore: before,
    tensorsAfter: tf.memory().numTensors,
  };
}

const page = window as Window & {
  routingChecks?: typeof routingChecks;
  gpuErrorCheck?: typeof gpuErrorCheck;
  matMulChecks?: typeof matMulChecks;
  optimiserChecks?: typeof optimiserChecks;
};
page.routingChecks = routingChecks;
page.gpuErrorCheck = gpuErrorCheck;
page.matMulChecks = matMulChecks;
page.optimiserChecks = optimiserChecks;
document.body.dataset.state = 'ready';
