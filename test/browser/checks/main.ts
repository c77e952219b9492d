// The browser half of the routing op checks: runs routeGradients on one backend and hands the raw
// bits back to Node, where routing.browser.ts compares them with what they must be.
import '@tensorflow/tfjs-backend-webgpu';
import '@tensorflow/tfjs-backend-webgl';
import * as tf from '@tensorflow/tfjs-core';
import {
  type BackendName,
  countWebGpuWork,
  routeGradients,
  selectBackend,
  torchAdam,
} from 'gradient-routing';
import { AdamW } from 'gradient-routing/experiments';
import type {
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
  optimiserChecks?: typeof optimiserChecks;
};
page.routingChecks = routingChecks;
page.optimiserChecks = optimiserChecks;
document.body.dataset.state = 'ready';
