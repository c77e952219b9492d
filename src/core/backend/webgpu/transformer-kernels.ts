import * as tf from '@tensorflow/tfjs-core';
import { LibraryKernel } from '../library-kernels.js';
import {
  FLAT_WORKGROUP_SIZE,
  flatLaunch,
  type KernelArgs,
  type ScalarUniform,
  scalarUniforms,
  WEBGPU,
  type WebGpuKernelSet,
  webGpuBackendOf,
} from './tfjs-webgpu.js';

/*
 * Fused WebGPU kernels for the pieces of a transformer that tfjs runs as many small programs:
 * layer norm, GELU, causal multi-head attention, token + position embedding and per-token
 * cross-entropy. Each forward and each backward is one to four WGSL programs where tfjs's stock
 * ops take tens, and on a GPU a training step is bound by the CPU work of each program. The ops
 * that use them (`src/core/models/transformer-ops.ts`) look these kernels up by their names in
 * `LibraryKernel` (src/core/backend/library-kernels.ts, which also gives their inputs) and run
 * their composite of stock ops wherever they are missing, so every other backend computes
 * exactly what it did before.
 *
 * The programs are plain objects of the shape tfjs-backend-webgpu compiles (it adds the buffer
 * bindings and a uniform block holding every input's shape and our own fields), so nothing here
 * imports that optional package. Constants of a step (epsilon, the attention scale) are uniforms,
 * never uploaded scalar tensors. Reductions run one 64-thread workgroup per row or column.
 */

/** Threads of every workgroup; the reductions below assume exactly this many. */
const WORKGROUP = FLAT_WORKGROUP_SIZE;

/** One program: WGSL, its inputs by binding name, output and launch size. */
interface ProgramSpec {
  /** Names the shader in tfjs's pipeline cache: everything that changes the WGSL must be in it. */
  readonly key: string;
  /**
   * Bound in this order. Every input a program declares must be read: WebGPU's automatic layout
   * drops the others and the bind group tfjs builds would then not match it.
   */
  readonly inputs: tf.NamedTensorInfoMap;
  readonly outputShape: number[];
  /** Default float32. */
  readonly outputDtype?: 'float32' | 'int32';
  readonly workgroups: number;
  /** Integer uniforms, then `floats`, readable in WGSL as `uniforms.name`. */
  readonly ints: Readonly<Record<string, number>>;
  readonly floats?: Readonly<Record<string, number>>;
  /** WGSL with a `fn main(index : i32)`; `index` is the global invocation index. */
  readonly code: string;
}

function run(backend: KernelArgs['backend'], spec: ProgramSpec): tf.TensorInfo {
  const scalars = (values: Readonly<Record<string, number>>, type: ScalarUniform['type']) =>
    Object.entries(values).map(([name, value]): ScalarUniform => ({ name, type, value }));
  const uniforms = scalarUniforms([
    ...scalars(spec.ints, 'i32'),
    ...scalars(spec.floats ?? {}, 'f32'),
  ]);
  // tfjs writes the final shader key and dispatch into the program: a fresh object every time.
  const program = {
    variableNames: Object.keys(spec.inputs),
    outputShape: spec.outputShape,
    shaderKey: spec.key,
    ...flatLaunch(spec.outputShape, spec.workgroups),
    uniforms: uniforms.declaration,
    getUserCode: () => spec.code,
  };
  return webGpuBackendOf(backend).runWebGPUProgram(
    program,
    Object.values(spec.inputs) as tf.TensorInfo[],
    spec.outputDtype ?? 'float32',
    uniforms.values,
  );
}

function dispose(backend: KernelArgs['backend'], info: tf.TensorInfo): void {
  webGpuBackendOf(backend).disposeData(info.dataId);
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

/**
 * `main` of a program with one workgroup per row (`uniforms.rows` of them): `row`, the thread's
 * `tid` and `valid` (false in workgroups past the last row, which a large dispatch may add; no
 * early return, since barriers must be reached by the whole workgroup).
 */
function perRow(body: string): string {
  return `
fn main(index : i32) {
  let row = index / ${WORKGROUP};
  let tid = index % ${WORKGROUP};
  let valid = row < uniforms.rows;
  ${body}
}`;
}

/** `main` of a program with one thread per item, `uniforms.count` of them. */
function perItem(body: string): string {
  return `
fn main(index : i32) {
  if (index >= uniforms.count) { return; }
  ${body}
}`;
}

/** Layer-norm statistics of `x`'s row: mean and `1 / sqrt(variance + epsilon)`. */
const ROW_MOMENTS_WGSL = `${workgroupReduction('sumOfValues', 'sum')}${workgroupReduction(
  'sumOfSquares',
  'sum',
)}
fn rowMoments(row : i32, tid : i32, valid : bool) -> vec2<f32> {
  let cols = uniforms.cols;
  var sum = 0.0;
  if (valid) { for (var c = tid; c < cols; c += ${WORKGROUP}) { sum += x[row * cols + c]; } }
  let mean = sumOfValues(sum, tid) / f32(cols);
  var squares = 0.0;
  if (valid) {
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      let centred = x[row * cols + c] - mean;
      squares += centred * centred;
    }
  }
  let variance = sumOfSquares(squares, tid) / f32(cols);
  return vec2<f32>(mean, 1.0 / sqrt(variance + uniforms.epsilon));
}
`;

interface LayerNormShape {
  rows: number;
  cols: number;
  sizes: { rows: number; cols: number };
  epsilon: { epsilon: number };
}

function layerNormShape(x: tf.TensorInfo, attrs: KernelArgs['attrs']): LayerNormShape {
  const [rows, cols] = x.shape as [number, number];
  return {
    rows,
    cols,
    sizes: { rows, cols },
    epsilon: { epsilon: (attrs as { epsilon: number }).epsilon },
  };
}

function layerNormForward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, gain, shift } = inputs as Record<'x' | 'gain' | 'shift', tf.TensorInfo>;
  const shape = layerNormShape(x, attrs);
  return run(backend, {
    key: 'grLayerNorm',
    inputs: { x, gain, shift },
    outputShape: [shape.rows, shape.cols],
    workgroups: shape.rows,
    ints: shape.sizes,
    floats: shape.epsilon,
    code: `${ROW_MOMENTS_WGSL}${perRow(`
  let moments = rowMoments(row, tid, valid);
  if (valid) {
    for (var c = tid; c < uniforms.cols; c += ${WORKGROUP}) {
      let i = row * uniforms.cols + c;
      result[i] = (x[i] - moments.x) * moments.y * gain[c] + shift[c];
    }
  }`)}`,
  });
}

function layerNormBackward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, gain, dy } = inputs as Record<'x' | 'gain' | 'dy', tf.TensorInfo>;
  const shape = layerNormShape(x, attrs);
  const moments = run(backend, {
    key: 'grLayerNormMoments',
    inputs: { x },
    outputShape: [shape.rows, 2],
    workgroups: shape.rows,
    ints: shape.sizes,
    floats: shape.epsilon,
    code: `${ROW_MOMENTS_WGSL}${perRow(`
  let moments = rowMoments(row, tid, valid);
  if (valid && tid == 0) {
    result[row * 2] = moments.x;
    result[row * 2 + 1] = moments.y;
  }`)}`,
  });
  // dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · gain and x̂ the normalised input.
  const dx = run(backend, {
    key: 'grLayerNormDx',
    inputs: { x, gain, dy, moments },
    outputShape: [shape.rows, shape.cols],
    workgroups: shape.rows,
    ints: shape.sizes,
    code: `${workgroupReduction('sumOfG', 'sum')}${workgroupReduction('sumOfGX', 'sum')}${perRow(`
  let cols = uniforms.cols;
  var mean = 0.0;
  var rstd = 0.0;
  var sumG = 0.0;
  var sumGX = 0.0;
  if (valid) {
    mean = moments[row * 2];
    rstd = moments[row * 2 + 1];
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      let g = dy[row * cols + c] * gain[c];
      sumG += g;
      sumGX += g * (x[row * cols + c] - mean) * rstd;
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
  }`)}`,
  });
  // dGain = Σ_rows dy · x̂ and dShift = Σ_rows dy: one workgroup per column.
  const columnSum = (key: string, columnInputs: ProgramSpec['inputs'], term: string) =>
    run(backend, {
      key,
      inputs: columnInputs,
      outputShape: [shape.cols],
      workgroups: shape.cols,
      ints: shape.sizes,
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
    { x, dy, moments },
    'dy[i] * (x[i] - moments[r * 2]) * moments[r * 2 + 1]',
  );
  const dShift = columnSum('grLayerNormDShift', { dy }, 'dy[i]');
  dispose(backend, moments);
  return [dx, dGain, dShift];
}

/**
 * GPT-2's tanh GELU pieces: `t = tanh(sqrt(2/π) · (v + 0.044715 v³))`, the tanh written so that
 * it cannot overflow (WGSL's may return NaN for large inputs on some drivers).
 */
function geluProgram(
  backend: KernelArgs['backend'],
  key: string,
  inputs: ProgramSpec['inputs'],
  assign: string,
) {
  const { x } = inputs as { x: tf.TensorInfo };
  const count = tf.util.sizeFromShape(x.shape);
  return run(backend, {
    key,
    inputs,
    outputShape: x.shape,
    workgroups: Math.ceil(count / WORKGROUP),
    ints: { count },
    code: `
const GELU_SCALE : f32 = ${Math.sqrt(2 / Math.PI)};
const GELU_CUBIC : f32 = 0.044715;
${perItem(`
  let v = x[index];
  let inner = (v + v * v * v * GELU_CUBIC) * GELU_SCALE;
  let e = exp(-2.0 * abs(inner));
  let t = sign(inner) * (1.0 - e) / (1.0 + e);
  ${assign}`)}`,
  });
}

function geluForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  return geluProgram(backend, 'grGelu', inputs, 'result[index] = v * 0.5 * (t + 1.0);');
}

function geluBackward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  return geluProgram(
    backend,
    'grGeluGrad',
    inputs,
    `let slope = 0.5 * (t + 1.0) +
    0.5 * v * (1.0 - t * t) * GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * v * v);
  result[index] = dy[index] * slope;`,
  );
}

/**
 * One attention program: a thread per (sequence b, head h, position t), `uniforms.count` of
 * them, with WGSL helpers for the rows of `qkv` and of the merged `[B, T, D]` tensors, the
 * scaled score of a query and a key, and the log-sum-exp of a query's scores over positions
 * 0..t (the causal mask: later keys are never read).
 */
function attentionProgram(
  backend: KernelArgs['backend'],
  attrs: KernelArgs['attrs'],
  key: string,
  inputs: ProgramSpec['inputs'],
  outputShape: (batch: number, length: number, modelDim: number, headDim: number) => number[],
  body: string,
): tf.TensorInfo {
  const { qkv } = inputs as { qkv: tf.TensorInfo };
  const numHeads = (attrs as { numHeads: number }).numHeads;
  const [batch, length, packed] = qkv.shape as [number, number, number];
  const modelDim = packed / 3;
  const headDim = modelDim / numHeads;
  const count = batch * numHeads * length;
  return run(backend, {
    key: `${key}_${headDim}`,
    inputs,
    outputShape: outputShape(batch, length, modelDim, headDim),
    workgroups: Math.ceil(count / WORKGROUP),
    ints: { count, length, heads: numHeads, modelDim },
    floats: { scale: 1 / Math.sqrt(headDim) },
    code: `
const HEAD_DIM = ${headDim};
fn qkvRow(b : i32, t : i32, h : i32, part : i32) -> i32 {
  return ((b * uniforms.length + t) * 3 + part) * uniforms.modelDim + h * HEAD_DIM;
}
fn headRow(b : i32, t : i32, h : i32) -> i32 {
  return (b * uniforms.length + t) * uniforms.modelDim + h * HEAD_DIM;
}
fn score(qRow : i32, kRow : i32) -> f32 {
  var dot = 0.0;
  for (var e = 0; e < HEAD_DIM; e++) { dot += qkv[qRow + e] * qkv[kRow + e]; }
  return dot * uniforms.scale;
}
fn scoreLogSumExp(b : i32, q : i32, h : i32) -> f32 {
  let qRow = qkvRow(b, q, h, 0);
  var largest = -3.4028234e38;
  for (var k = 0; k <= q; k++) { largest = max(largest, score(qRow, qkvRow(b, k, h, 1))); }
  var total = 0.0;
  for (var k = 0; k <= q; k++) { total += exp(score(qRow, qkvRow(b, k, h, 1)) - largest); }
  return largest + log(total);
}
${
  // The gradient of one attention weight, dy[oRow] · values[vRow], where there is a dy.
  'dy' in inputs
    ? `fn weightGradient(oRow : i32, vRow : i32) -> f32 {
  var dot = 0.0;
  for (var e = 0; e < HEAD_DIM; e++) { dot += dy[oRow + e] * qkv[vRow + e]; }
  return dot;
}`
    : ''
}${perItem(`
  let t = index % uniforms.length;
  let h = (index / uniforms.length) % uniforms.heads;
  let b = index / (uniforms.length * uniforms.heads);
  ${body}`)}`,
  });
}

function attentionForward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  return attentionProgram(
    backend,
    attrs,
    'grCausalAttention',
    inputs,
    (batch, length, modelDim) => [batch, length, modelDim],
    `let logSumExp = scoreLogSumExp(b, t, h);
  let qRow = qkvRow(b, t, h, 0);
  var attended : array<f32, HEAD_DIM>;
  for (var k = 0; k <= t; k++) {
    let weight = exp(score(qRow, qkvRow(b, k, h, 1)) - logSumExp);
    let vRow = qkvRow(b, k, h, 2);
    for (var e = 0; e < HEAD_DIM; e++) { attended[e] += weight * qkv[vRow + e]; }
  }
  let outRow = headRow(b, t, h);
  for (var e = 0; e < HEAD_DIM; e++) { result[outRow + e] = attended[e]; }`,
  );
}

function attentionBackward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { qkv, dy } = inputs as Record<'qkv' | 'dy', tf.TensorInfo>;
  // Per query: dQ, the scores' log-sum-exp and Δ = Σ_k p·dp, packed as [rows, HEAD_DIM + 2].
  const queryGrads = attentionProgram(
    backend,
    attrs,
    'grCausalAttentionDq',
    { qkv, dy },
    (batch, length, _, headDim) => [
      batch * length * (attrs as { numHeads: number }).numHeads,
      headDim + 2,
    ],
    `  let logSumExp = scoreLogSumExp(b, t, h);
  let qRow = qkvRow(b, t, h, 0);
  let oRow = headRow(b, t, h);
  var delta = 0.0;
  for (var k = 0; k <= t; k++) {
    let weight = exp(score(qRow, qkvRow(b, k, h, 1)) - logSumExp);
    delta += weight * weightGradient(oRow, qkvRow(b, k, h, 2));
  }
  var dQuery : array<f32, HEAD_DIM>;
  for (var k = 0; k <= t; k++) {
    let kRow = qkvRow(b, k, h, 1);
    let weight = exp(score(qRow, kRow) - logSumExp);
    let dScore = weight * (weightGradient(oRow, qkvRow(b, k, h, 2)) - delta);
    for (var e = 0; e < HEAD_DIM; e++) { dQuery[e] += dScore * qkv[kRow + e]; }
  }
  let outRow = index * (HEAD_DIM + 2);
  for (var e = 0; e < HEAD_DIM; e++) { result[outRow + e] = dQuery[e] * uniforms.scale; }
  result[outRow + HEAD_DIM] = logSumExp;
  result[outRow + HEAD_DIM + 1] = delta;`,
  );
  // Per key: dK and dV over the queries that see it; also moves dQ into the packed result.
  const dQkv = attentionProgram(
    backend,
    attrs,
    'grCausalAttentionDkv',
    { qkv, dy, queryGrads },
    (batch, length, modelDim) => [batch, length, 3 * modelDim],
    `  let kRow = qkvRow(b, t, h, 1);
  let vRow = qkvRow(b, t, h, 2);
  var dKey : array<f32, HEAD_DIM>;
  var dValue : array<f32, HEAD_DIM>;
  for (var q = t; q < uniforms.length; q++) {
    let qRow = qkvRow(b, q, h, 0);
    let oRow = headRow(b, q, h);
    let stats = (index + q - t) * (HEAD_DIM + 2);
    let weight = exp(score(qRow, kRow) - queryGrads[stats + HEAD_DIM]);
    let dScore = weight * (weightGradient(oRow, vRow) - queryGrads[stats + HEAD_DIM + 1]);
    for (var e = 0; e < HEAD_DIM; e++) {
      dValue[e] += weight * dy[oRow + e];
      dKey[e] += dScore * qkv[qRow + e];
    }
  }
  let qOut = qkvRow(b, t, h, 0);
  for (var e = 0; e < HEAD_DIM; e++) {
    result[qOut + e] = queryGrads[index * (HEAD_DIM + 2) + e];
    result[kRow + e] = dKey[e] * uniforms.scale;
    result[vRow + e] = dValue[e];
  }`,
  );
  dispose(backend, queryGrads);
  return dQkv;
}

function embedForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { table, positions, ids } = inputs as Record<'table' | 'positions' | 'ids', tf.TensorInfo>;
  const [vocab, dim] = table.shape as [number, number];
  const [batch, length] = ids.shape as [number, number];
  const count = batch * length * dim;
  return run(backend, {
    key: 'grEmbed',
    inputs: { table, positions, ids },
    outputShape: [batch, length, dim],
    workgroups: Math.ceil(count / WORKGROUP),
    ints: { count, dim, length, vocab },
    code: perItem(`
  let token = index / uniforms.dim;
  let j = index - token * uniforms.dim;
  let id = ids[token];
  var embedded = 0.0;
  if (id >= 0 && id < uniforms.vocab) { embedded = table[id * uniforms.dim + j]; }
  result[index] = embedded + positions[(token % uniforms.length) * uniforms.dim + j];`),
  });
}

function embedBackward({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { ids, dy } = inputs as Record<'ids' | 'dy', tf.TensorInfo>;
  const { vocabSize, contextLength } = attrs as { vocabSize: number; contextLength: number };
  const [batch, length] = ids.shape as [number, number];
  const dim = dy.shape[2]!;
  const tokens = batch * length;
  // A scatter-add without float atomics (WGSL has none), deterministic: first each id's chain of
  // tokens, as `[V + N]` ints: the first token with id v at v, the next token with the same id
  // as token n at V + n (-1 ends a chain). Finding them costs V·N + N²/2 id comparisons, where
  // scanning every token for every table entry would cost V·N·D.
  const chains = run(backend, {
    key: 'grEmbedChains',
    inputs: { ids },
    outputShape: [vocabSize + tokens],
    outputDtype: 'int32',
    workgroups: Math.ceil((vocabSize + tokens) / WORKGROUP),
    ints: { count: vocabSize + tokens, tokens, vocab: vocabSize },
    code: perItem(`
  var first = 0;
  var id = index;
  if (index >= uniforms.vocab) {
    first = index - uniforms.vocab + 1;
    id = ids[index - uniforms.vocab];
  }
  var next = -1;
  for (var token = first; token < uniforms.tokens; token++) {
    if (ids[token] == id) {
      next = token;
      break;
    }
  }
  result[index] = next;`),
  });
  // Then a thread per table entry walks its id's chain in token order.
  const tableCount = vocabSize * dim;
  const dTable = run(backend, {
    key: 'grEmbedDTable',
    inputs: { chains, dy },
    outputShape: [vocabSize, dim],
    workgroups: Math.ceil(tableCount / WORKGROUP),
    ints: { count: tableCount, vocab: vocabSize, dim },
    code: perItem(`
  let v = index / uniforms.dim;
  let j = index - v * uniforms.dim;
  var sum = 0.0;
  var token = chains[v];
  while (token >= 0) {
    sum += dy[token * uniforms.dim + j];
    token = chains[uniforms.vocab + token];
  }
  result[index] = sum;`),
  });
  dispose(backend, chains);
  // Positions past the sequence length got no gradient: zeros, in the variable's full shape.
  const count = contextLength * dim;
  const dPositions = run(backend, {
    key: 'grEmbedDPositions',
    inputs: { dy },
    outputShape: [contextLength, dim],
    workgroups: Math.ceil(count / WORKGROUP),
    ints: { count, batch, length, dim },
    code: perItem(`
  let t = index / uniforms.dim;
  let j = index - t * uniforms.dim;
  var sum = 0.0;
  if (t < uniforms.length) {
    for (var b = 0; b < uniforms.batch; b++) {
      sum += dy[(b * uniforms.length + t) * uniforms.dim + j];
    }
  }
  result[index] = sum;`),
  });
  return [dTable, dPositions];
}

/**
 * A program over the rows of `logits [R, V]`, one workgroup each, with `logSumExp` of the row
 * computed first (every thread has it); `body` then writes the result.
 */
function logitRows(
  backend: KernelArgs['backend'],
  key: string,
  inputs: ProgramSpec['inputs'],
  outputShape: (rows: number, cols: number) => number[],
  body: string,
): tf.TensorInfo {
  const [rows, cols] = (inputs as { logits: tf.TensorInfo }).logits.shape as [number, number];
  return run(backend, {
    key,
    inputs,
    outputShape: outputShape(rows, cols),
    workgroups: rows,
    ints: { rows, cols },
    code: `${workgroupReduction('rowMaximum', 'max')}${workgroupReduction('rowSum', 'sum')}
${workgroupReduction('weightTotal', 'sum')}${perRow(`
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
  let logSumExp = rowMax + log(rowSum(sum, tid));
  ${body}`)}`,
  });
}

function rowLosses(backend: KernelArgs['backend'], inputs: ProgramSpec['inputs']) {
  return logitRows(
    backend,
    'grTokenLosses',
    inputs,
    (rows) => [rows],
    `if (valid && tid == 0) {
    let label = labels[row];
    var picked = 0.0;
    if (label >= 0 && label < cols) { picked = logits[row * cols + label]; }
    result[row] = logSumExp - picked;
  }`,
  );
}

/**
 * `dLogits = coefficient_r · (softmax(logits_r) − oneHot(label_r))`; `coefficientWgsl` defines
 * `coefficient` (in uniform control flow, so it may reduce over the workgroup).
 */
function crossEntropyGradient(
  backend: KernelArgs['backend'],
  key: string,
  inputs: ProgramSpec['inputs'],
  coefficientWgsl: string,
): tf.TensorInfo {
  return logitRows(
    backend,
    key,
    inputs,
    (rows, cols) => [rows, cols],
    `${coefficientWgsl}
  if (valid) {
    for (var c = tid; c < cols; c += ${WORKGROUP}) {
      var picked = 0.0;
      if (c == labels[row]) { picked = 1.0; }
      result[row * cols + c] = coefficient * (exp(logits[row * cols + c] - logSumExp) - picked);
    }
  }`,
  );
}

function tokenLossesForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  return rowLosses(backend, inputs);
}

function tokenLossesBackward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  return crossEntropyGradient(
    backend,
    'grTokenLossesGrad',
    inputs,
    'var coefficient = 0.0;\n  if (valid) { coefficient = dy[row]; }',
  );
}

function tokenCrossEntropyForward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { logits, labels, weights } = inputs as Record<
    'logits' | 'labels' | 'weights',
    tf.TensorInfo
  >;
  const losses = rowLosses(backend, { logits, labels });
  // One workgroup: the weighted sum and the weight total of every row.
  const mean = run(backend, {
    key: 'grWeightedMean',
    inputs: { losses, weights },
    outputShape: [1],
    workgroups: 1,
    ints: { rows: logits.shape[0]! },
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
  dispose(backend, losses);
  return mean;
}

function tokenCrossEntropyBackward({ inputs, backend }: KernelArgs): tf.TensorInfo {
  // Every workgroup sums the weights itself: R reads each, cheaper than another dispatch.
  return crossEntropyGradient(
    backend,
    'grTokenCrossEntropyGrad',
    inputs,
    `var ownWeights = 0.0;
  for (var r = tid; r < uniforms.rows; r += ${WORKGROUP}) { ownWeights += weights[r]; }
  let count = max(weightTotal(ownWeights, tid), 1.0);
  var coefficient = 0.0;
  if (valid) { coefficient = dy[0] * weights[row] / count; }`,
  );
}

/** Each fused op's forward and backward kernel functions. */
const FUSED_OPS = [
  ['layerNorm', layerNormForward, layerNormBackward],
  ['gelu', geluForward, geluBackward],
  ['causalAttention', attentionForward, attentionBackward],
  ['embed', embedForward, embedBackward],
  ['tokenLosses', tokenLossesForward, tokenLossesBackward],
  ['tokenCrossEntropy', tokenCrossEntropyForward, tokenCrossEntropyBackward],
] as const;

/** The transformer's fused kernels (see {@link LibraryKernel}). */
export const transformerKernels: WebGpuKernelSet = {
  name: 'transformer',
  kernels: () =>
    FUSED_OPS.flatMap(([op, forward, backward]) =>
      [
        [LibraryKernel[op], forward],
        [LibraryKernel[`${op}Grad`], backward],
      ].map(
        ([kernelName, kernelFunc]): tf.KernelConfig => ({
          kernelName: kernelName as string,
          backendName: WEBGPU,
          kernelFunc: kernelFunc as tf.KernelFunc,
        }),
      ),
    ),
};
