/**
 * The transformer's fused WebGPU kernels (layer norm, GELU, causal attention, embedding, token
 * cross-entropy) against the composites of stock ops they replace, computed on the cpu backend:
 * values and gradients on seeded data of odd shapes, the number of programs each runs, no
 * leaked tensors, and the whole ERA-style routed model's loss and gradients. Runs on whatever
 * WebGPU adapter the machine has (Mesa's llvmpipe in CI); skipped only where WebGPU cannot start,
 * and required where `CI` or `GRADIENT_ROUTING_REQUIRE_WEBGPU` is set.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  installWebGpuKernels,
  uninstallWebGpuKernels,
  webGpuKernelsInstalled,
} from '../src/core/backend/webgpu/install.js';
import {
  causalSelfAttention,
  embedTokensAndPositions,
  tokenCrossEntropy as fusedTokenCrossEntropy,
  gelu,
  layerNorm,
  tokenLosses,
} from '../src/core/models/transformer-ops.js';
import {
  createTransformer,
  expandRouteRows,
  expandTransformerMlps,
  forwardContext,
  GradientRoutingError,
  MaskTable,
  tokenCrossEntropy,
  tokenRule,
} from '../src/index.js';
import { releaseNodeWebGpu } from '../src/node/webgpu.js';
import { lcgUniform } from './helpers/random.js';
import { nodeWebGpuUnavailable } from './helpers/webgpu.js';

const unavailable = await nodeWebGpuUnavailable('WebGPU transformer kernel tests');

/** A host tensor description: values are made again on whichever backend is active. */
interface HostTensor {
  readonly values: Float32Array | Int32Array;
  readonly shape: number[];
  readonly dtype: 'float32' | 'int32';
}

function uniform(shape: number[], seed: number, low = -1, high = 1): HostTensor {
  const random = lcgUniform(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const values = Float32Array.from({ length: size }, () => low + (high - low) * random());
  return { values, shape, dtype: 'float32' };
}

function integers(shape: number[], seed: number, high: number): HostTensor {
  const random = lcgUniform(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const values = Int32Array.from({ length: size }, () => Math.floor(random() * high));
  return { values, shape, dtype: 'int32' };
}

const make = (host: HostTensor) => tf.tensor(host.values, host.shape, host.dtype);

interface Result {
  value: Float32Array;
  grads: Float32Array[];
}

/**
 * `op`'s value and the gradients of `Σ op(inputs) · cotangent` with respect to the float inputs
 * listed in `differentiate`, on the active backend.
 */
async function evaluate(
  op: (...inputs: tf.Tensor[]) => tf.Tensor,
  inputs: readonly HostTensor[],
  differentiate: readonly number[],
  cotangentSeed: number,
): Promise<Result> {
  const tensors = inputs.map(make);
  let value: tf.Tensor | undefined;
  const gradFn = tf.grads((...xs: tf.Tensor[]) => {
    const all = tensors.map((t, i) => {
      const at = differentiate.indexOf(i);
      return at < 0 ? t : xs[at]!;
    });
    // Kept past the gradient's scope, so the forward runs once.
    value = tf.keep(op(...all));
    const cotangent = make(uniform(value.shape, cotangentSeed));
    return tf.sum(tf.mul(value, cotangent));
  });
  const grads = gradFn(differentiate.map((i) => tensors[i]!));
  const result: Result = {
    value: (await value!.data()) as Float32Array,
    grads: await Promise.all(grads.map(async (g) => (await g.data()) as Float32Array)),
  };
  tf.dispose([...tensors, value!, ...grads]);
  return result;
}

/** Asserts |a − b| <= tolerance · (1 + |b|) elementwise. */
function expectClose(
  actual: Float32Array,
  expected: Float32Array,
  tolerance: number,
  what: string,
) {
  expect(actual.length, what).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!));
    if (!(error <= worst)) {
      worst = error;
      at = i;
    }
  }
  expect(
    worst,
    `${what}: worst relative error at ${at}: ${actual[at]} vs ${expected[at]}`,
  ).toBeLessThanOrEqual(tolerance);
}

interface ProgramCounter {
  programs: string[];
  restore(): void;
}

/** Records the shader key of every WebGPU program the backend runs. */
function countPrograms(): ProgramCounter {
  const backend = tf.backend() as unknown as {
    runWebGPUProgram: (program: { shaderKey: string }, ...rest: unknown[]) => unknown;
  };
  const original = backend.runWebGPUProgram;
  const programs: string[] = [];
  backend.runWebGPUProgram = function (this: unknown, program, ...rest) {
    programs.push(program.shaderKey);
    return original.call(this, program, ...rest);
  };
  return {
    programs,
    restore: () => {
      backend.runWebGPUProgram = original;
    },
  };
}

/**
 * Runs `op` fused on WebGPU and as the composite on cpu; compares values and gradients, checks
 * that the WebGPU side leaks nothing and returns its programs (forward and backward together).
 */
async function compareWithCpu(
  op: (...inputs: tf.Tensor[]) => tf.Tensor,
  inputs: readonly HostTensor[],
  differentiate: readonly number[],
  tolerance = 2e-5,
): Promise<string[]> {
  await tf.setBackend('cpu');
  const expected = await evaluate(op, inputs, differentiate, 99);
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const counter = countPrograms();
  let actual: Result;
  try {
    actual = await evaluate(op, inputs, differentiate, 99);
  } finally {
    counter.restore();
  }
  expect(tf.memory().numTensors).toBe(before);
  expectClose(actual.value, expected.value, tolerance, 'value');
  actual.grads.forEach((g, i) => {
    expectClose(g, expected.grads[i]!, tolerance, `gradient of input ${differentiate[i]}`);
  });
  return counter.programs;
}

/** The programs of this library's kernels (tfjs's own kernels have other shader keys). */
// The transformer kernels' shader keys ('grLayerNorm', …); the dense matMul's
// ('gradientRoutingTiledMatMul_…', which the composite attention uses) are not among them.
const fused = (programs: string[]) => programs.filter((key) => /^gr[A-Z]/.test(key));

describe.skipIf(unavailable !== null)('fused transformer kernels on WebGPU', () => {
  beforeAll(async () => {
    await tf.setBackend('webgpu');
    expect(webGpuKernelsInstalled()).toBe(true);
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
    releaseNodeWebGpu();
  });

  it.each([[[1, 1]], [[1, 7]], [[3, 33]], [[5, 1000]], [[2, 3, 65]]])(
    'layerNorm of %j matches the composite, in one forward and four backward programs',
    async (shape) => {
      const dim = shape[shape.length - 1]!;
      const programs = await compareWithCpu(
        (x, gain, shift) => layerNorm(x!, gain!, shift!),
        [uniform(shape, 1, -3, 5), uniform([dim], 2, 0.5, 1.5), uniform([dim], 3)],
        [0, 1, 2],
      );
      expect(fused(programs)).toEqual([
        'grLayerNorm',
        'grLayerNormMoments',
        'grLayerNormDx',
        'grLayerNormDGain',
        'grLayerNormDShift',
      ]);
    },
  );

  it('past 65,535 workgroups (a dispatch tfjs folds into two dimensions) every row and item is computed', async () => {
    // 65,600 rows: one workgroup each for the layer norm, 1,025 for GELU's 65,600 items.
    await compareWithCpu(
      (x, gain, shift) => gelu(layerNorm(x!, gain!, shift!)),
      [uniform([65_600, 2], 17, -3, 3), uniform([2], 18, 0.5, 1.5), uniform([2], 19)],
      [0, 1, 2],
      // Rows of two close values have a large 1/σ, which scales float32 rounding up.
      1e-4,
    );
  });

  it('layerNorm names a gain or shift of the wrong shape', () => {
    const x = tf.zeros([2, 4]);
    const gain = tf.ones([3]);
    expect(() => layerNorm(x, gain, gain)).toThrow(GradientRoutingError);
    expect(() => layerNorm(x, gain, gain)).toThrow(/gain and shift of shape \[4\]/);
    tf.dispose([x, gain]);
  });

  it.each([[[7]], [[33, 5]], [[1000]]])(
    'gelu of %j matches the composite, one program each way',
    async (shape) => {
      const programs = await compareWithCpu((x) => gelu(x!), [uniform(shape, 4, -6, 6)], [0]);
      expect(fused(programs)).toEqual(['grGelu', 'grGeluGrad']);
    },
  );

  it('gelu stays finite and exact at large inputs (no tanh overflow)', async () => {
    const host: HostTensor = {
      values: Float32Array.from([-80, -20, -9, 0, 9, 20, 80]),
      shape: [7],
      dtype: 'float32',
    };
    await compareWithCpu((x) => gelu(x!), [host], [0], 1e-6);
  });

  it.each([
    // batch, length, heads, head width
    [1, 1, 1, 1],
    [2, 7, 3, 5],
    [3, 33, 2, 8],
    [1, 24, 4, 16],
  ])(
    'causal attention (B %i, T %i, %i heads of %i) matches the composite in 1 + 2 programs',
    async (batch, length, heads, headDim) => {
      const dim = heads * headDim;
      const bias = new Float32Array(length * length);
      for (let q = 0; q < length; q++)
        for (let k = q + 1; k < length; k++) bias[q * length + k] = -1e9;
      const programs = await compareWithCpu(
        (qkv, causalBias) =>
          causalSelfAttention(qkv as tf.Tensor3D, heads, causalBias as tf.Tensor2D),
        [
          uniform([batch, length, 3 * dim], 5, -2, 2),
          { values: bias, shape: [length, length], dtype: 'float32' },
        ],
        [0],
      );
      expect(fused(programs)).toEqual([
        `grCausalAttention_${headDim}`,
        `grCausalAttentionDq_${headDim}`,
        `grCausalAttentionDkv_${headDim}`,
      ]);
    },
  );

  it('attention heads wider than 128 take the composite (each thread would hold too many values)', async () => {
    const length = 3;
    const bias = new Float32Array(length * length);
    for (let q = 0; q < length; q++)
      for (let k = q + 1; k < length; k++) bias[q * length + k] = -1e9;
    const programs = await compareWithCpu(
      (qkv, causalBias) => causalSelfAttention(qkv as tf.Tensor3D, 1, causalBias as tf.Tensor2D),
      [
        uniform([2, length, 3 * 129], 20, -1, 1),
        { values: bias, shape: [length, length], dtype: 'float32' },
      ],
      [0],
    );
    expect(fused(programs)).toEqual([]);
    expect(programs.length).toBeGreaterThan(10);
  });

  it.each([
    // vocabulary, context, width, batch, length
    [7, 9, 5, 2, 7],
    [1000, 33, 33, 3, 33],
    // tfjs's oneHot, in the composite, needs two classes at least.
    [2, 1, 1, 1, 1],
  ])(
    'token + position embedding (V %i, C %i, D %i, tokens %i×%i) matches the composite',
    async (vocab, context, dim, batch, length) => {
      const programs = await compareWithCpu(
        (table, positions, ids) => embedTokensAndPositions(table!, positions!, ids as tf.Tensor2D),
        [uniform([vocab, dim], 6), uniform([context, dim], 7), integers([batch, length], 8, vocab)],
        [0, 1],
      );
      expect(fused(programs)).toEqual([
        'grEmbed',
        'grEmbedChains',
        'grEmbedDTable',
        'grEmbedDPositions',
      ]);
    },
  );

  it.each([
    [2, 7, 5],
    [1, 1, 1000],
    [3, 5, 33],
  ])(
    'token cross-entropy (%i×%i over %i classes) matches the composite',
    async (batch, length, vocab) => {
      const labels = integers([batch, length], 9, vocab);
      // One label out of range: it picks nothing, as a one-hot row of zeros does.
      labels.values[0] = vocab;
      const programs = await compareWithCpu(
        (logits, targets) => tokenLosses(logits as tf.Tensor3D, targets as tf.Tensor2D),
        [uniform([batch, length, vocab], 10, -8, 8), labels],
        [0],
      );
      expect(fused(programs)).toEqual(['grTokenLosses', 'grTokenLossesGrad']);
    },
  );

  it.each([
    // batch, length, classes, weight scale (below 1 in all: the mean divides by 1, not Σw)
    [2, 7, 5, 1],
    [3, 33, 1000, 1],
    [1, 3, 7, 0.1],
  ])(
    'weighted token cross-entropy (%i×%i over %i classes, weights ×%s) matches the composite',
    async (batch, length, vocab, scale) => {
      const weights = uniform([batch, length], 14, 0, scale);
      // Padding: some weights exactly 0.
      for (let i = 0; i < weights.values.length; i += 3) weights.values[i] = 0;
      const programs = await compareWithCpu(
        (logits, targets, w) =>
          fusedTokenCrossEntropy(logits as tf.Tensor3D, targets as tf.Tensor2D, w as tf.Tensor2D),
        [uniform([batch, length, vocab], 15, -8, 8), integers([batch, length], 16, vocab), weights],
        [0, 2],
      );
      // The weights' gradient is the composite's (weights are data in every use); the logits' is fused.
      expect(fused(programs)).toEqual([
        'grTokenLosses',
        'grWeightedMean',
        'grTokenCrossEntropyGrad',
        'grTokenLosses',
      ]);
    },
  );

  it('the routed ERA model gives the cpu loss and gradients, with far fewer programs than stock tfjs', async () => {
    const config = {
      vocabSize: 41,
      contextLength: 9,
      modelDim: 24,
      numLayers: 2,
      numHeads: 3,
      mlpDim: 20,
      seed: 3,
    };
    const [batch, length] = [3, 9];
    const inputs = integers([batch, length], 11, config.vocabSize);
    const targets = integers([batch, length], 12, config.vocabSize);
    const weights: HostTensor = {
      values: Float32Array.from({ length: batch * length }, (_, i) => (i % 7 === 6 ? 0 : 1)),
      shape: [batch, length],
      dtype: 'float32',
    };
    const labels: HostTensor = {
      values: Int32Array.from({ length: batch * length }, (_, i) => (i < length ? 1 : 0)),
      shape: [batch, length],
      dtype: 'int32',
    };
    const soft = uniform([batch, length], 13, 0, 1);
    /** The loss and every parameter's gradient of one routed ERA objective, in parameter order. */
    const lossAndGrads = async () => {
      const base = createTransformer(config);
      const model = expandTransformerMlps(base, { layers: [0], units: 4, seed: 101 });
      base.dispose();
      const region = model.mlpRegions(0).find((r) => r.name === 'expanded')!;
      const rule = tokenRule(
        new MaskTable(expandRouteRows(model.mlpWidth(0), region, -0.75), { range: [-0.75, 1] }),
        { toward: 0 },
      );
      const batchTensors = [inputs, targets, weights, labels, soft].map(make);
      const [ids, next, weight, label, softWeight] = batchTensors as tf.Tensor2D[];
      const variables = model.trainableVariables();
      const { value, grads } = tf.variableGrads(() => {
        const context = forwardContext(model, {
          plan: { 'blocks.0.mlp.hidden': rule },
          batch: { labels: label!, weights: softWeight! },
          capture: ['blocks.0.mlp.hidden'],
        });
        const ce = tokenCrossEntropy(model.forward(ids!, context), next!, weight!);
        const hidden = context.captured.get('blocks.0.mlp.hidden')!;
        return tf.add(ce, tf.mul(tf.mean(tf.abs(hidden)), 0.01)) as tf.Scalar;
      }, variables);
      const loss = (await value.data())[0]!;
      const gradValues = await Promise.all(
        variables.map(async (v) => (await grads[v.name]!.data()) as Float32Array),
      );
      tf.dispose([value, ...Object.values(grads), ...batchTensors]);
      rule.dispose();
      model.dispose();
      return { loss, gradValues };
    };

    await tf.setBackend('cpu');
    const expected = await lossAndGrads();
    await tf.setBackend('webgpu');
    const stockCounter = countPrograms();
    uninstallWebGpuKernels();
    try {
      await lossAndGrads();
    } finally {
      installWebGpuKernels();
      stockCounter.restore();
    }
    const before = tf.memory().numTensors;
    const counter = countPrograms();
    let actual: Awaited<ReturnType<typeof lossAndGrads>>;
    try {
      actual = await lossAndGrads();
    } finally {
      counter.restore();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(Math.abs(actual.loss - expected.loss)).toBeLessThan(1e-5);
    actual.gradValues.forEach((g, i) => {
      expectClose(g, expected.gradValues[i]!, 1e-5, `gradient of parameter ${i}`);
    });
    expect(fused(stockCounter.programs)).toEqual([]);
    // Forward + backward: stock tfjs runs a few hundred programs here; the fused ops cut it to
    // well under half.
    expect(counter.programs.length).toBeLessThan(stockCounter.programs.length / 2);
  });
});
