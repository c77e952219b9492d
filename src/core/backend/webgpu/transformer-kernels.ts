import * as tf from '@tensorflow/tfjs-core';
import type { WebGpuKernelSet } from './install.js';

/*
 * Fused WebGPU kernels for the pieces of a transformer that tfjs runs as many small programs:
 * layer norm, GELU, causal multi-head attention, token + position embedding and per-token
 * cross-entropy. Each forward and each backward is one to four WGSL programs where tfjs's stock
 * ops take tens (a layer norm's forward and backward are about 30 programs; one attention block
 * about 30). The ops that use them (`src/core/models/transformer-ops.ts`) look these kernels up by
 * name and run their composite of stock ops wherever they are missing, so every other backend
 * computes exactly what it did before.
 *
 * The programs are plain objects of the shape tfjs-backend-webgpu compiles (it adds the buffer
 * bindings and a uniform block holding every input's shape and our own fields), so nothing here
 * imports that optional package. Constants of a step (epsilon, the attention scale) are uniforms,
 * never uploaded scalar tensors. Reductions run one 64-thread workgroup per row or column.
 */

/** Layer norm over the last axis: inputs `x [R, D]`, `gain [D]`, `shift [D]`; attr `epsilon`. */
export const LAYER_NORM_KERNEL = 'GradientRoutingLayerNorm';
/** Its gradient: inputs `x`, `gain`, `dy`; attr `epsilon`; outputs `[dx, dGain, dShift]`. */
export const LAYER_NORM_GRAD_KERNEL = 'GradientRoutingLayerNormGrad';
/** GPT-2's tanh GELU, elementwise: input `x`. */
export const GELU_KERNEL = 'GradientRoutingGelu';
/** Its gradient: inputs `x`, `dy`. */
export const GELU_GRAD_KERNEL = 'GradientRoutingGeluGrad';
/**
 * Causal multi-head self-attention from a packed projection: input `qkv [B, T, 3D]` (queries,
 * keys, values side by side, each split into `numHeads` heads of `D / numHeads`); attr
 * `numHeads`; output the heads merged back, `[B, T, D]`. Position t attends to 0..t.
 */
export const CAUSAL_ATTENTION_KERNEL = 'GradientRoutingCausalAttention';
/** Its gradient: inputs `qkv`, `dy [B, T, D]`; attr `numHeads`; output `dQkv [B, T, 3D]`. */
export const CAUSAL_ATTENTION_GRAD_KERNEL = 'GradientRoutingCausalAttentionGrad';
/**
 * Token + position embedding: inputs `table [V, D]`, `positions [C, D]`, `ids int32 [B, T]`
 * (T <= C); output `table[ids[b, t]] + positions[t]`, `[B, T, D]`. An id outside `[0, V)`
 * embeds as zeros, as WebGPU's gather does.
 */
export const EMBED_KERNEL = 'GradientRoutingEmbed';
/**
 * Its gradient: inputs `ids`, `dy [B, T, D]`; attrs `vocabSize`, `contextLength`; outputs
 * `[dTable [V, D], dPositions [C, D]]`.
 */
export const EMBED_GRAD_KERNEL = 'GradientRoutingEmbedGrad';
/**
 * Per-row cross-entropy `logSumExp(logits[r]) − logits[r, labels[r]]`: inputs `logits [R, V]`,
 * `labels int32 [R]`; output `[R]`. A label outside `[0, V)` picks nothing (the loss is the
 * log-sum-exp), as a one-hot row of zeros does.
 */
export const TOKEN_LOSSES_KERNEL = 'GradientRoutingTokenLosses';
/** Its gradient: inputs `logits`, `labels`, `dy [R]`; output `dLogits [R, V]`. */
export const TOKEN_LOSSES_GRAD_KERNEL = 'GradientRoutingTokenLossesGrad';
/**
 * The weighted mean of those losses, `Σ_r w_r · loss_r / max(Σ_r w_r, 1)`: inputs `logits`,
 * `labels`, `weights [R]`; output `[1]`.
 */
export const TOKEN_CROSS_ENTROPY_KERNEL = 'GradientRoutingTokenCrossEntropy';
/** Its gradient with respect to the logits: inputs `logits`, `labels`, `weights`, `dy [1]`. */
export const TOKEN_CROSS_ENTROPY_GRAD_KERNEL = 'GradientRoutingTokenCrossEntropyGrad';

/** A uniform value of a program, in the order of its `uniforms` declaration. */
interface ProgramUniform {
  readonly type: 'int32' | 'float32';
  readonly data: number[];
}

/** What tfjs-backend-webgpu 4.22 compiles and dispatches (its `WebGPUProgram`). */
interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms?: string;
  getUserCode(): string;
}

/** The parts of tfjs-backend-webgpu's `WebGPUBackend` these kernels use. */
interface WebGpuBackend {
  runWebGPUProgram(
    program: WebGpuProgram,
    inputs: tf.TensorInfo[],
    outputDtype: tf.DataType,
    uniforms?: ProgramUniform[],
  ): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Threads of every workgroup; the reductions below assume exactly this many. */
const WORKGROUP = 64;

/** One program: WGSL body, its inputs by name, output and launch size. */
interface ProgramSpec {
  /** Names the shader in tfjs's pipeline cache: everything that changes the WGSL must be in it. */
  readonly key: string;
  readonly inputs: ReadonlyArray<readonly [name: string, info: tf.TensorInfo]>;
  readonly outputShape: number[];
  readonly workgroups: number;
  readonly uniforms: ReadonlyArray<readonly [name: string, type: 'i32' | 'f32', value: number]>;
  /** WGSL with a `fn main(index : i32)`; `index` is the global invocation index. */
  readonly code: string;
}

function run(backend: WebGpuBackend, spec: ProgramSpec): tf.TensorInfo {
  // tfjs writes the final shader key and dispatch into the program: a fresh object every time.
  const program: WebGpuProgram = {
    variableNames: spec.inputs.map(([name]) => name),
    outputShape: spec.outputShape,
    shaderKey: spec.key,
    dispatchLayout: { x: spec.outputShape.map((_, axis) => axis) },
    dispatch: [Math.max(1, spec.workgroups), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: spec.uniforms.map(([name, type]) => `${name} : ${type},`).join(' '),
    getUserCode: () => spec.code,
  };
  const uniforms = spec.uniforms.map(
    ([, type, value]): ProgramUniform => ({
      type: type === 'i32' ? 'int32' : 'float32',
      data: [value],
    }),
  );
  return backend.runWebGPUProgram(
    program,
    spec.inputs.map(([, info]) => info),
    'float32',
    uniforms,
  );
}

/**
 * A workgroup-wide reduction over the 64 threads, `fn name(value, tid) -> f32` (every thread
 * gets the result), with a workgroup buffer of its own. Each reduction of a program needs its
 * own: Mesa's llvmpipe (through Dawn's OpenGL ES backend) may perform a thread's read of the
 * result after the next barrier, when a following reduction sharing the buffer has already
 * overwritten it (measured: a layer norm's variance off by 0.3 %).
 */
function workgroupReduction(name: string, combine: 'sum' | 'max'): string {
  const combined = combine === 'sum' ? 'a + b' : 'max(a, b)';
  return `
var<workgroup> ${name}Buffer : array<f32, ${WORKGROUP}>;
fn ${name}(value : f32, tid : i32) -> f32 {
  ${name}Buffer[tid] = value;
  workgroupBarrier();
  for (var stride = ${WORKGROUP / 2}; stride > 0; stride = stride / 2) {
    if (tid < stride) {
      let a = ${name}Buffer[tid];
      let b = ${name}Buffer[tid + stride];
      ${name}Buffer[tid] = ${combined};
    }
    workgroupBarrier();
  }
  return ${name}Buffer[0];
}
`;
}

/** `tanh` that cannot overflow (WGSL's may return NaN for large inputs on some drivers). */
const TANH_WGSL = `
fn stableTanh(a : f32) -> f32 {
  let e = exp(-2.0 * abs(a));
  return sign(a) * (1.0 - e) / (1.0 + e);
}
`;

/** Row statistics of a layer norm, `[R, 2]`: mean and `1 / sqrt(variance + epsilon)`. */
const ROW_MOMENTS_WGSL = `${workgroupReduction('sumOfValues', 'sum')}${workgroupReduction(
  'sumOfSquares',
  'sum',
)}
fn rowMoments(row : i32, tid : i32, valid : bool) -> vec2<f32> {
  let cols = uniforms.cols;
  let base = row * cols;
  var sum = 0.0;
  if (valid) { for (var c = tid; c < cols; c += ${WORKGROUP}) { sum += x[base + c]; } }
  let mean = sumOfValues(sum, tid) / f32(cols);
  var squares = 0.0;
  if (valid) {
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      let centred = x[base + c] - mean;
      squares += centred * centred;
    }
  }
  let variance = sumOfSquares(squares, tid) / f32(cols);
  return vec2<f32>(mean, 1.0 / sqrt(variance + uniforms.epsilon));
}
`;

function layerNormForward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, gain, shift } = inputs as Record<'x' | 'gain' | 'shift', tf.TensorInfo>;
  const [rows, cols] = x.shape as [number, number];
  return run(backend as unknown as WebGpuBackend, {
    key: 'grLayerNorm',
    inputs: [
      ['x', x],
      ['gain', gain],
      ['shift', shift],
    ],
    outputShape: [rows, cols],
    workgroups: rows,
    uniforms: [
      ['rows', 'i32', rows],
      ['cols', 'i32', cols],
      ['epsilon', 'f32', (attrs as { epsilon: number }).epsilon],
    ],
    code: `${ROW_MOMENTS_WGSL}
fn main(index : i32) {
  let row = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  let valid = row < uniforms.rows;
  let moments = rowMoments(row, tid, valid);
  if (valid) {
    let cols = uniforms.cols;
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      let i = row * cols + c;
      result[i] = (x[i] - moments.x) * moments.y * gain[c] + shift[c];
    }
  }
}`,
  });
}

function layerNormBackward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, gain, dy } = inputs as Record<'x' | 'gain' | 'dy', tf.TensorInfo>;
  const gpu = backend as unknown as WebGpuBackend;
  const [rows, cols] = x.shape as [number, number];
  const epsilon = (attrs as { epsilon: number }).epsilon;
  const sizes = [
    ['rows', 'i32', rows],
    ['cols', 'i32', cols],
    ['epsilon', 'f32', epsilon],
  ] as const;
  const moments = run(gpu, {
    key: 'grLayerNormMoments',
    inputs: [['x', x]],
    outputShape: [rows, 2],
    workgroups: rows,
    uniforms: sizes,
    code: `${ROW_MOMENTS_WGSL}
fn main(index : i32) {
  let row = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  let valid = row < uniforms.rows;
  let moments = rowMoments(row, tid, valid);
  if (valid && tid == 0) {
    result[row * 2] = moments.x;
    result[row * 2 + 1] = moments.y;
  }
}`,
  });
  // dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · gain and x̂ the normalised input.
  const dx = run(gpu, {
    key: 'grLayerNormDx',
    inputs: [
      ['x', x],
      ['gain', gain],
      ['dy', dy],
      ['moments', moments],
    ],
    outputShape: [rows, cols],
    workgroups: rows,
    uniforms: sizes,
    code: `${workgroupReduction('sumOfG', 'sum')}${workgroupReduction('sumOfGX', 'sum')}
fn main(index : i32) {
  let row = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  let valid = row < uniforms.rows;
  let cols = uniforms.cols;
  var mean = 0.0;
  var rstd = 0.0;
  if (valid) {
    mean = moments[row * 2];
    rstd = moments[row * 2 + 1];
  }
  var sumG = 0.0;
  var sumGX = 0.0;
  if (valid) {
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      let i = row * cols + c;
      let g = dy[i] * gain[c];
      sumG += g;
      sumGX += g * (x[i] - mean) * rstd;
    }
  }
  let meanG = sumOfG(sumG, tid) / f32(cols);
  let meanGX = sumOfGX(sumGX, tid) / f32(cols);
  if (valid) {
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      let i = row * cols + c;
      let normalised = (x[i] - mean) * rstd;
      result[i] = rstd * (dy[i] * gain[c] - meanG - normalised * meanGX);
    }
  }
}`,
  });
  // dGain = Σ_rows dy · x̂ and dShift = Σ_rows dy: one workgroup per column.
  // Every input a program declares must be read: WebGPU's automatic layout drops the others and
  // the bind group tfjs builds would then not match it.
  const columnSum = (key: string, inputs: ProgramSpec['inputs'], term: string) =>
    run(gpu, {
      key,
      inputs,
      outputShape: [cols],
      workgroups: cols,
      uniforms: sizes,
      code: `${workgroupReduction('columnSum', 'sum')}
fn main(index : i32) {
  let col = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  let cols = uniforms.cols;
  var sum = 0.0;
  if (col < cols) {
    for (var r = tid; r < uniforms.rows; r += ${WORKGROUP}) {
      let i = r * cols + col;
      sum += ${term};
    }
  }
  let total = columnSum(sum, tid);
  if (col < cols && tid == 0) { result[col] = total; }
}`,
    });
  const dGain = columnSum(
    'grLayerNormDGain',
    [
      ['x', x],
      ['dy', dy],
      ['moments', moments],
    ],
    'dy[i] * (x[i] - moments[r * 2]) * moments[r * 2 + 1]',
  );
  const dShift = columnSum('grLayerNormDShift', [['dy', dy]], 'dy[i]');
  gpu.disposeData(moments.dataId);
  return [dx, dGain, dShift];
}

/** GPT-2's constants, as the composite writes them. */
const GELU_WGSL = `${TANH_WGSL}
const GELU_SCALE : f32 = ${Math.sqrt(2 / Math.PI)};
const GELU_CUBIC : f32 = 0.044715;
`;

function elementwise(
  backend: WebGpuBackend,
  key: string,
  inputs: ProgramSpec['inputs'],
  shape: number[],
  body: string,
): tf.TensorInfo {
  const size = tf.util.sizeFromShape(shape);
  return run(backend, {
    key,
    inputs,
    outputShape: shape,
    workgroups: Math.ceil(size / WORKGROUP),
    uniforms: [['count', 'i32', size]],
    code: `${GELU_WGSL}
fn main(index : i32) {
  if (index < uniforms.count) {
    let v = x[index];
    ${body}
  }
}`,
  });
}

function geluForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x } = inputs as { x: tf.TensorInfo };
  return elementwise(
    backend as unknown as WebGpuBackend,
    'grGelu',
    [['x', x]],
    x.shape,
    'result[index] = v * 0.5 * (stableTanh((v + v * v * v * GELU_CUBIC) * GELU_SCALE) + 1.0);',
  );
}

function geluBackward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x, dy } = inputs as Record<'x' | 'dy', tf.TensorInfo>;
  return elementwise(
    backend as unknown as WebGpuBackend,
    'grGeluGrad',
    [
      ['x', x],
      ['dy', dy],
    ],
    x.shape,
    `let t = stableTanh((v + v * v * v * GELU_CUBIC) * GELU_SCALE);
    let slope = 0.5 * (t + 1.0) +
      0.5 * v * (1.0 - t * t) * GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * v * v);
    result[index] = dy[index] * slope;`,
  );
}

/** Uniforms and index arithmetic shared by the attention programs: one thread per (b, h, t). */
function attentionLayout(qkv: tf.TensorInfo, numHeads: number) {
  const [batch, length, packed] = qkv.shape as [number, number, number];
  const modelDim = packed / 3;
  const headDim = modelDim / numHeads;
  const threads = batch * numHeads * length;
  return {
    batch,
    length,
    modelDim,
    headDim,
    threads,
    uniforms: [
      ['threads', 'i32', threads],
      ['length', 'i32', length],
      ['heads', 'i32', numHeads],
      ['modelDim', 'i32', modelDim],
      ['scale', 'f32', 1 / Math.sqrt(headDim)],
    ] as const,
    // The row of queries, keys or values of token t of sequence b, head h, in qkv.
    wgsl: `
const HEAD_DIM = ${headDim};
fn qkvRow(b : i32, t : i32, h : i32, part : i32) -> i32 {
  return (b * uniforms.length + t) * 3 * uniforms.modelDim + part * uniforms.modelDim + h * HEAD_DIM;
}
fn headRow(b : i32, t : i32, h : i32) -> i32 {
  return (b * uniforms.length + t) * uniforms.modelDim + h * HEAD_DIM;
}
`,
  };
}

function attentionForward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { qkv } = inputs as { qkv: tf.TensorInfo };
  const layout = attentionLayout(qkv, (attrs as { numHeads: number }).numHeads);
  // Softmax with a running maximum (one pass over the keys), as FlashAttention does.
  return run(backend as unknown as WebGpuBackend, {
    key: `grCausalAttention_${layout.headDim}`,
    inputs: [['qkv', qkv]],
    outputShape: [layout.batch, layout.length, layout.modelDim],
    workgroups: Math.ceil(layout.threads / WORKGROUP),
    uniforms: layout.uniforms,
    code: `${layout.wgsl}
fn main(index : i32) {
  if (index >= uniforms.threads) { return; }
  let q = index % uniforms.length;
  let h = (index / uniforms.length) % uniforms.heads;
  let b = index / (uniforms.length * uniforms.heads);
  var query : array<f32, HEAD_DIM>;
  let qRow = qkvRow(b, q, h, 0);
  for (var e = 0; e < HEAD_DIM; e++) { query[e] = qkv[qRow + e]; }
  var acc : array<f32, HEAD_DIM>;
  var runningMax = -3.4028234e38;
  var total = 0.0;
  for (var k = 0; k <= q; k++) {
    let kRow = qkvRow(b, k, h, 1);
    var score = 0.0;
    for (var e = 0; e < HEAD_DIM; e++) { score += query[e] * qkv[kRow + e]; }
    score = score * uniforms.scale;
    let newMax = max(runningMax, score);
    let rescale = exp(runningMax - newMax);
    let weight = exp(score - newMax);
    total = total * rescale + weight;
    let vRow = qkvRow(b, k, h, 2);
    for (var e = 0; e < HEAD_DIM; e++) { acc[e] = acc[e] * rescale + weight * qkv[vRow + e]; }
    runningMax = newMax;
  }
  let outRow = headRow(b, q, h);
  for (var e = 0; e < HEAD_DIM; e++) { result[outRow + e] = acc[e] / total; }
}`,
  });
}

function attentionBackward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { qkv, dy } = inputs as Record<'qkv' | 'dy', tf.TensorInfo>;
  const gpu = backend as unknown as WebGpuBackend;
  const layout = attentionLayout(qkv, (attrs as { numHeads: number }).numHeads);
  const { headDim } = layout;
  // Per query row: dQ, the row's log-sum-exp and Δ = Σ_k p·dp, packed as [threads, headDim + 2].
  const queryGrads = run(gpu, {
    key: `grCausalAttentionDq_${headDim}`,
    inputs: [
      ['qkv', qkv],
      ['dy', dy],
    ],
    outputShape: [layout.threads, headDim + 2],
    workgroups: Math.ceil(layout.threads / WORKGROUP),
    uniforms: layout.uniforms,
    code: `${layout.wgsl}
fn main(index : i32) {
  if (index >= uniforms.threads) { return; }
  let q = index % uniforms.length;
  let h = (index / uniforms.length) % uniforms.heads;
  let b = index / (uniforms.length * uniforms.heads);
  var query : array<f32, HEAD_DIM>;
  var dOut : array<f32, HEAD_DIM>;
  let qRow = qkvRow(b, q, h, 0);
  let oRow = headRow(b, q, h);
  for (var e = 0; e < HEAD_DIM; e++) {
    query[e] = qkv[qRow + e];
    dOut[e] = dy[oRow + e];
  }
  var rowMax = -3.4028234e38;
  for (var k = 0; k <= q; k++) {
    let kRow = qkvRow(b, k, h, 1);
    var score = 0.0;
    for (var e = 0; e < HEAD_DIM; e++) { score += query[e] * qkv[kRow + e]; }
    rowMax = max(rowMax, score * uniforms.scale);
  }
  var total = 0.0;
  for (var k = 0; k <= q; k++) {
    let kRow = qkvRow(b, k, h, 1);
    var score = 0.0;
    for (var e = 0; e < HEAD_DIM; e++) { score += query[e] * qkv[kRow + e]; }
    total += exp(score * uniforms.scale - rowMax);
  }
  let logSumExp = rowMax + log(total);
  var delta = 0.0;
  for (var k = 0; k <= q; k++) {
    let kRow = qkvRow(b, k, h, 1);
    let vRow = qkvRow(b, k, h, 2);
    var score = 0.0;
    var dWeight = 0.0;
    for (var e = 0; e < HEAD_DIM; e++) {
      score += query[e] * qkv[kRow + e];
      dWeight += dOut[e] * qkv[vRow + e];
    }
    delta += exp(score * uniforms.scale - logSumExp) * dWeight;
  }
  var dQuery : array<f32, HEAD_DIM>;
  for (var k = 0; k <= q; k++) {
    let kRow = qkvRow(b, k, h, 1);
    let vRow = qkvRow(b, k, h, 2);
    var score = 0.0;
    var dWeight = 0.0;
    for (var e = 0; e < HEAD_DIM; e++) {
      score += query[e] * qkv[kRow + e];
      dWeight += dOut[e] * qkv[vRow + e];
    }
    let dScore = exp(score * uniforms.scale - logSumExp) * (dWeight - delta);
    for (var e = 0; e < HEAD_DIM; e++) { dQuery[e] += dScore * qkv[kRow + e]; }
  }
  let outRow = index * (HEAD_DIM + 2);
  for (var e = 0; e < HEAD_DIM; e++) { result[outRow + e] = dQuery[e] * uniforms.scale; }
  result[outRow + HEAD_DIM] = logSumExp;
  result[outRow + HEAD_DIM + 1] = delta;
}`,
  });
  // Per key row: dK and dV over the queries that see it; also copies dQ into the packed result.
  const dQkv = run(gpu, {
    key: `grCausalAttentionDkv_${headDim}`,
    inputs: [
      ['qkv', qkv],
      ['dy', dy],
      ['queryGrads', queryGrads],
    ],
    outputShape: [layout.batch, layout.length, 3 * layout.modelDim],
    workgroups: Math.ceil(layout.threads / WORKGROUP),
    uniforms: layout.uniforms,
    code: `${layout.wgsl}
fn main(index : i32) {
  if (index >= uniforms.threads) { return; }
  let k = index % uniforms.length;
  let h = (index / uniforms.length) % uniforms.heads;
  let b = index / (uniforms.length * uniforms.heads);
  let sequence = index - k;
  var key : array<f32, HEAD_DIM>;
  var value : array<f32, HEAD_DIM>;
  let kRow = qkvRow(b, k, h, 1);
  let vRow = qkvRow(b, k, h, 2);
  for (var e = 0; e < HEAD_DIM; e++) {
    key[e] = qkv[kRow + e];
    value[e] = qkv[vRow + e];
  }
  var dKey : array<f32, HEAD_DIM>;
  var dValue : array<f32, HEAD_DIM>;
  for (var q = k; q < uniforms.length; q++) {
    let qRow = qkvRow(b, q, h, 0);
    let oRow = headRow(b, q, h);
    let stats = (sequence + q) * (HEAD_DIM + 2);
    var score = 0.0;
    var dWeight = 0.0;
    for (var e = 0; e < HEAD_DIM; e++) {
      score += qkv[qRow + e] * key[e];
      dWeight += dy[oRow + e] * value[e];
    }
    let weight = exp(score * uniforms.scale - queryGrads[stats + HEAD_DIM]);
    let dScore = weight * (dWeight - queryGrads[stats + HEAD_DIM + 1]);
    for (var e = 0; e < HEAD_DIM; e++) {
      dValue[e] += weight * dy[oRow + e];
      dKey[e] += dScore * qkv[qRow + e];
    }
  }
  let own = index * (HEAD_DIM + 2);
  let qOut = qkvRow(b, k, h, 0);
  for (var e = 0; e < HEAD_DIM; e++) {
    result[qOut + e] = queryGrads[own + e];
    result[kRow + e] = dKey[e] * uniforms.scale;
    result[vRow + e] = dValue[e];
  }
}`,
  });
  gpu.disposeData(queryGrads.dataId);
  return dQkv;
}

function embedForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { table, positions, ids } = inputs as Record<'table' | 'positions' | 'ids', tf.TensorInfo>;
  const [vocab, dim] = table.shape as [number, number];
  const [batch, length] = ids.shape as [number, number];
  const count = batch * length * dim;
  return run(backend as unknown as WebGpuBackend, {
    key: 'grEmbed',
    inputs: [
      ['table', table],
      ['positions', positions],
      ['ids', ids],
    ],
    outputShape: [batch, length, dim],
    workgroups: Math.ceil(count / WORKGROUP),
    uniforms: [
      ['count', 'i32', count],
      ['dim', 'i32', dim],
      ['length', 'i32', length],
      ['vocab', 'i32', vocab],
    ],
    code: `
fn main(index : i32) {
  if (index >= uniforms.count) { return; }
  let token = index / uniforms.dim;
  let j = index - token * uniforms.dim;
  let t = token % uniforms.length;
  let id = ids[token];
  var embedded = 0.0;
  if (id >= 0 && id < uniforms.vocab) { embedded = table[id * uniforms.dim + j]; }
  result[index] = embedded + positions[t * uniforms.dim + j];
}`,
  });
}

function embedBackward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { ids, dy } = inputs as Record<'ids' | 'dy', tf.TensorInfo>;
  const gpu = backend as unknown as WebGpuBackend;
  const { vocabSize, contextLength } = attrs as { vocabSize: number; contextLength: number };
  const [batch, length] = ids.shape as [number, number];
  const dim = dy.shape[2]!;
  const uniforms = [
    ['tokens', 'i32', batch * length],
    ['batch', 'i32', batch],
    ['length', 'i32', length],
    ['dim', 'i32', dim],
    ['vocab', 'i32', vocabSize],
    ['context', 'i32', contextLength],
  ] as const;
  // One workgroup per vocabulary row: the ids are read in tiles of 64 through workgroup memory
  // and each thread sums the gradient rows of the matching tokens for its columns (a scatter-add
  // without atomics, which WGSL lacks for floats).
  const dTable = run(gpu, {
    key: 'grEmbedDTable',
    inputs: [
      ['ids', ids],
      ['dy', dy],
    ],
    outputShape: [vocabSize, dim],
    workgroups: vocabSize,
    uniforms,
    code: `
var<workgroup> tile : array<i32, ${WORKGROUP}>;
fn main(index : i32) {
  let v = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  for (var j0 = 0; j0 < uniforms.dim; j0 += ${WORKGROUP}) {
    let j = j0 + tid;
    var sum = 0.0;
    for (var start = 0; start < uniforms.tokens; start += ${WORKGROUP}) {
      var id = -1;
      if (start + tid < uniforms.tokens) { id = ids[start + tid]; }
      tile[tid] = id;
      workgroupBarrier();
      if (j < uniforms.dim) {
        let end = min(${WORKGROUP}, uniforms.tokens - start);
        for (var i = 0; i < end; i++) {
          if (tile[i] == v) { sum += dy[(start + i) * uniforms.dim + j]; }
        }
      }
      workgroupBarrier();
    }
    if (v < uniforms.vocab && j < uniforms.dim) { result[v * uniforms.dim + j] = sum; }
  }
}`,
  });
  // Positions past the sequence length got no gradient: zeros, in the variable's full shape.
  const positionCount = contextLength * dim;
  const dPositions = run(gpu, {
    key: 'grEmbedDPositions',
    inputs: [['dy', dy]],
    outputShape: [contextLength, dim],
    workgroups: Math.ceil(positionCount / WORKGROUP),
    uniforms,
    code: `
fn main(index : i32) {
  if (index >= uniforms.context * uniforms.dim) { return; }
  let t = index / uniforms.dim;
  let j = index - t * uniforms.dim;
  var sum = 0.0;
  if (t < uniforms.length) {
    for (var b = 0; b < uniforms.batch; b++) {
      sum += dy[(b * uniforms.length + t) * uniforms.dim + j];
    }
  }
  result[index] = sum;
}`,
  });
  return [dTable, dPositions];
}

/** Log-sum-exp of row `row` of `logits` (every thread of the workgroup gets it). */
const ROW_LOG_SUM_EXP_WGSL = `${workgroupReduction('rowMaximum', 'max')}${workgroupReduction(
  'rowSum',
  'sum',
)}
fn rowLogSumExp(row : i32, tid : i32, valid : bool) -> f32 {
  let cols = uniforms.cols;
  var largest = -3.4028234e38;
  if (valid) {
    for (var c = tid; c < cols; c += ${WORKGROUP}) { largest = max(largest, logits[row * cols + c]); }
  }
  let rowMax = rowMaximum(largest, tid);
  var sum = 0.0;
  if (valid) {
    for (var c = tid; c < cols; c += ${WORKGROUP}) { sum += exp(logits[row * cols + c] - rowMax); }
  }
  return rowMax + log(rowSum(sum, tid));
}
`;

function rowLosses(gpu: WebGpuBackend, logits: tf.TensorInfo, labels: tf.TensorInfo) {
  const [rows, cols] = logits.shape as [number, number];
  return run(gpu, {
    key: 'grTokenLosses',
    inputs: [
      ['logits', logits],
      ['labels', labels],
    ],
    outputShape: [rows],
    workgroups: rows,
    uniforms: [
      ['rows', 'i32', rows],
      ['cols', 'i32', cols],
    ],
    code: `${ROW_LOG_SUM_EXP_WGSL}
fn main(index : i32) {
  let row = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  let valid = row < uniforms.rows;
  let logSumExp = rowLogSumExp(row, tid, valid);
  if (valid && tid == 0) {
    let label = labels[row];
    var picked = 0.0;
    if (label >= 0 && label < uniforms.cols) { picked = logits[row * uniforms.cols + label]; }
    result[row] = logSumExp - picked;
  }
}`,
  });
}

/**
 * `dLogits = coefficient_r · (softmax(logits_r) − oneHot(label_r))`, one workgroup per row;
 * `coefficientWgsl` defines `let coefficient` from `row`, `tid` and `valid` (in uniform control
 * flow, so it may reduce over the workgroup).
 */
function crossEntropyGradient(
  gpu: WebGpuBackend,
  key: string,
  inputs: ProgramSpec['inputs'],
  coefficientWgsl: string,
): tf.TensorInfo {
  const [rows, cols] = inputs[0]![1].shape as [number, number];
  return run(gpu, {
    key,
    inputs,
    outputShape: [rows, cols],
    workgroups: rows,
    uniforms: [
      ['rows', 'i32', rows],
      ['cols', 'i32', cols],
    ],
    code: `${ROW_LOG_SUM_EXP_WGSL}${workgroupReduction('weightTotal', 'sum')}
fn main(index : i32) {
  let row = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  let valid = row < uniforms.rows;
  let logSumExp = rowLogSumExp(row, tid, valid);
  ${coefficientWgsl}
  if (valid) {
    let label = labels[row];
    let cols = uniforms.cols;
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      var picked = 0.0;
      if (c == label) { picked = 1.0; }
      result[row * cols + c] = coefficient * (exp(logits[row * cols + c] - logSumExp) - picked);
    }
  }
}`,
  });
}

function tokenLossesForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { logits, labels } = inputs as Record<'logits' | 'labels', tf.TensorInfo>;
  return rowLosses(backend as unknown as WebGpuBackend, logits, labels);
}

function tokenLossesBackward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { logits, labels, dy } = inputs as Record<'logits' | 'labels' | 'dy', tf.TensorInfo>;
  return crossEntropyGradient(
    backend as unknown as WebGpuBackend,
    'grTokenLossesGrad',
    [
      ['logits', logits],
      ['labels', labels],
      ['dy', dy],
    ],
    'var coefficient = 0.0;\n  if (valid) { coefficient = dy[row]; }',
  );
}

function tokenCrossEntropyForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { logits, labels, weights } = inputs as Record<
    'logits' | 'labels' | 'weights',
    tf.TensorInfo
  >;
  const gpu = backend as unknown as WebGpuBackend;
  const losses = rowLosses(gpu, logits, labels);
  const rows = logits.shape[0]!;
  // One workgroup: the weighted sum and the weight total of every row.
  const mean = run(gpu, {
    key: 'grWeightedMean',
    inputs: [
      ['losses', losses],
      ['weights', weights],
    ],
    outputShape: [1],
    workgroups: 1,
    uniforms: [['rows', 'i32', rows]],
    code: `${workgroupReduction('weightedSum', 'sum')}${workgroupReduction('weightTotal', 'sum')}
fn main(index : i32) {
  let tid = index % ${WORKGROUP};
  var weighted = 0.0;
  var total = 0.0;
  for (var r = tid; r < uniforms.rows; r += ${WORKGROUP}) {
    weighted += losses[r] * weights[r];
    total += weights[r];
  }
  let sum = weightedSum(weighted, tid);
  let count = max(weightTotal(total, tid), 1.0);
  if (index == 0) { result[0] = sum / count; }
}`,
  });
  gpu.disposeData(losses.dataId);
  return mean;
}

function tokenCrossEntropyBackward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { logits, labels, weights, dy } = inputs as Record<
    'logits' | 'labels' | 'weights' | 'dy',
    tf.TensorInfo
  >;
  // Every workgroup sums the weights itself: R reads each, cheaper than another dispatch.
  return crossEntropyGradient(
    backend as unknown as WebGpuBackend,
    'grTokenCrossEntropyGrad',
    [
      ['logits', logits],
      ['labels', labels],
      ['weights', weights],
      ['dy', dy],
    ],
    `var ownWeights = 0.0;
  for (var r = tid; r < uniforms.rows; r += ${WORKGROUP}) { ownWeights += weights[r]; }
  let count = max(weightTotal(ownWeights, tid), 1.0);
  var coefficient = 0.0;
  if (valid) { coefficient = dy[0] * weights[row] / count; }`,
  );
}

function config(kernelName: string, kernelFunc: (args: KernelArgs) => unknown): tf.KernelConfig {
  return { kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as tf.KernelFunc };
}

/** The transformer's fused kernels (see the kernel names above). */
export const transformerKernels: WebGpuKernelSet = {
  name: 'transformer',
  kernels: () => [
    config(LAYER_NORM_KERNEL, layerNormForward),
    config(LAYER_NORM_GRAD_KERNEL, layerNormBackward),
    config(GELU_KERNEL, geluForward),
    config(GELU_GRAD_KERNEL, geluBackward),
    config(CAUSAL_ATTENTION_KERNEL, attentionForward),
    config(CAUSAL_ATTENTION_GRAD_KERNEL, attentionBackward),
    config(EMBED_KERNEL, embedForward),
    config(EMBED_GRAD_KERNEL, embedBackward),
    config(TOKEN_LOSSES_KERNEL, tokenLossesForward),
    config(TOKEN_LOSSES_GRAD_KERNEL, tokenLossesBackward),
    config(TOKEN_CROSS_ENTROPY_KERNEL, tokenCrossEntropyForward),
    config(TOKEN_CROSS_ENTROPY_GRAD_KERNEL, tokenCrossEntropyBackward),
  ],
};
