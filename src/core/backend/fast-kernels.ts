import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';

/*
 * Why this file exists: tfjs-backend-wasm 4.22 sends a matrix product to XNNPACK only when neither
 * operand is transposed and both have batch size 1. Every other product falls back to a naive
 * blocked loop that is 10-50x slower, and the backward pass of a dense layer is made of exactly
 * those products (dx = dy·Wᵀ, dW = xᵀ·dy). The same fallback, when it fuses a bias or an
 * activation, is also wrong: it adds the bias and clamps once per 48-wide block of the inner
 * dimension instead of once at the end, and it reads a size-1 bias as if it had N entries.
 *
 * The wrappers below keep the stock kernels and only change what they are fed: transposed
 * operands are materialised with a cache-blocked transpose written straight into the wasm heap,
 * batches are split into single products (or folded into rows when the right operand is shared),
 * and a bias or activation the XNNPACK path cannot apply exactly is applied afterwards by the
 * backend's own Add/activation kernels. Every product therefore runs on XNNPACK.
 */

/** The parts of tfjs-backend-wasm's `BackendWasm` the wrappers use. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

type KernelParams = Parameters<tf.KernelFunc>[0];
type KernelResult = tf.TensorInfo;

/** Marks our wrappers, across copies of this library in one process, so they never nest. */
const WRAPPED = Symbol.for('gradient-routing.fast-kernels.original');
type WrappedKernelFunc = tf.KernelFunc & { [WRAPPED]?: tf.KernelConfig };

const BACKEND = 'wasm';

/** Activations the stock fused kernel knows, mapped to the standalone kernel that applies them. */
const ACTIVATION_KERNELS: Readonly<Record<string, string | null>> = {
  linear: null,
  relu: 'Relu',
  relu6: 'Relu6',
  elu: 'Elu',
  leakyrelu: 'LeakyRelu',
  sigmoid: 'Sigmoid',
  prelu: null, // applied by preluByParts
};

function heapF32(backend: WasmBackend, info: tf.TensorInfo): Float32Array {
  // Taken fresh every time: any allocation may grow the wasm memory and detach older views.
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/**
 * Writes the transpose of the `rows`×`cols` matrix at `src[srcOffset…]` into `dst`. Blocked so
 * that both the reads and the scattered writes stay in cache; about twice as fast as the wasm
 * Transpose kernel on the layer sizes of an MLP.
 */
function transposeInto(
  src: Float32Array,
  srcOffset: number,
  dst: Float32Array,
  rows: number,
  cols: number,
): void {
  // 8×8 tiles: with 16 or more rows per tile, a power-of-two stride (2048 floats) maps every
  // row of the tile to the same L1 set and the transpose gets 2-3x slower.
  const tile = 8;
  for (let i0 = 0; i0 < rows; i0 += tile) {
    const i1 = Math.min(i0 + tile, rows);
    for (let j0 = 0; j0 < cols; j0 += tile) {
      const j1 = Math.min(j0 + tile, cols);
      for (let i = i0; i < i1; i++) {
        const from = srcOffset + i * cols;
        for (let j = j0; j < j1; j++) dst[j * rows + i] = src[from + j]!;
      }
    }
  }
}

/** One operand of a single product, as the untransposed `[1, rows, cols]` XNNPACK wants. */
interface Operand {
  info: tf.TensorInfo;
  /** True when we allocated `info` and must free it. */
  owned: boolean;
}

/**
 * Matrix number `batch` of `x` (shape `[..., r, c]`), untransposed to `[1, rows, cols]`: a
 * zero-copy view when it already is, else a copy or a transpose in a fresh buffer.
 */
function operand(
  backend: WasmBackend,
  x: tf.TensorInfo,
  batch: number,
  rows: number,
  cols: number,
  transposed: boolean,
): Operand {
  const size = rows * cols;
  const batches = tf.util.sizeFromShape(x.shape.slice(0, -2));
  if (!transposed && batches === 1) {
    return { info: { dataId: x.dataId, shape: [1, rows, cols], dtype: x.dtype }, owned: false };
  }
  const info = backend.makeOutput([1, rows, cols], 'float32');
  const src = heapF32(backend, x);
  const dst = heapF32(backend, info);
  if (transposed) transposeInto(src, batch * size, dst, cols, rows);
  else dst.set(src.subarray(batch * size, (batch + 1) * size));
  return { info, owned: true };
}

/** Whether the stock fused kernel's XNNPACK path applies this bias and activation exactly. */
function epilogueIsExact(params: KernelParams, n: number): boolean {
  const { bias, preluActivationWeights: prelu } = params.inputs;
  if (bias != null && !(bias.shape.length === 1 && bias.shape[0] === n)) return false;
  if (params.attrs?.activation === 'prelu') {
    // The wasm PReLU indexes its weights modulo their size, which is right only for [N] or [1].
    const dims = prelu?.shape.filter((d) => d !== 1) ?? [];
    if (!(dims.length === 0 || (dims.length === 1 && dims[0] === n))) return false;
  }
  return true;
}

/** Runs a registered wasm kernel directly, outside the engine, so nothing is taped or tracked. */
function runWasmKernel(
  backend: WasmBackend,
  name: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const kernel = tf.getKernel(name, BACKEND);
  if (kernel === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: the wasm backend has no '${name}' kernel; use a @tensorflow/tfjs-backend-wasm matching @tensorflow/tfjs-core 4.x.`,
    );
  }
  return kernel.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
}

/**
 * PReLU as `relu(x) + alpha * (x - relu(x))`, exact in float32. The wasm Prelu kernel is not
 * used because XNNPACK rejects (and intermittently corrupts) weights that are not per-channel,
 * such as `[M, N]`, which are exactly the weights that reach this fallback.
 */
function preluByParts(backend: WasmBackend, x: tf.TensorInfo, alpha: tf.TensorInfo): tf.TensorInfo {
  const positive = runWasmKernel(backend, 'Relu', { x });
  const negative = runWasmKernel(backend, 'Sub', { a: x, b: positive });
  backend.disposeData(x.dataId);
  const scaled = runWasmKernel(backend, 'Multiply', { a: negative, b: alpha });
  backend.disposeData(negative.dataId);
  const out = runWasmKernel(backend, 'Add', { a: positive, b: scaled });
  backend.disposeData(positive.dataId);
  backend.disposeData(scaled.dataId);
  return out;
}

/** Adds the bias and applies the activation with the backend's standalone kernels. */
function applyEpilogue(
  backend: WasmBackend,
  params: KernelParams,
  product: tf.TensorInfo,
): tf.TensorInfo {
  const { bias, preluActivationWeights: prelu } = params.inputs;
  let out = product;
  if (bias != null) {
    const sum = runWasmKernel(backend, 'Add', { a: out, b: bias });
    backend.disposeData(out.dataId);
    out = sum;
  }
  const activation = String(params.attrs?.activation ?? 'linear');
  const kernel = ACTIVATION_KERNELS[activation];
  if (activation === 'prelu') {
    out = preluByParts(backend, out, prelu!);
  } else if (kernel != null) {
    const alpha = params.attrs?.leakyreluAlpha ?? 0.2;
    const activated = runWasmKernel(backend, kernel, { x: out }, { alpha });
    backend.disposeData(out.dataId);
    out = activated;
  }
  return out;
}

/** Index of the operand's matrix used by output batch `i` under broadcasting of the batch dims. */
function broadcastIndex(outerShape: number[], xOuter: number[], i: number): number {
  let index = 0;
  let stride = 1;
  let rest = i;
  for (let d = outerShape.length - 1; d >= 0; d--) {
    const coord = rest % outerShape[d]!;
    rest = Math.floor(rest / outerShape[d]!);
    const xd = d - (outerShape.length - xOuter.length);
    if (xd < 0) continue;
    const size = xOuter[xd]!;
    if (size !== 1) index += coord * stride;
    stride *= size;
  }
  return index;
}

/**
 * XNNPACK re-packs the right operand of every product it has not seen (new weights each training
 * step, every transposed intermediate); measured per element, that costs about three transposes.
 */
const PACK_COST = 3;

/**
 * Whether to compute `C = op(A)·op(B)` as `(op(B)ᵀ·op(A)ᵀ)ᵀ` instead: same products, but the
 * operands that need transposing and packing change. For `dx = dy·Wᵀ` at batch 256 it avoids
 * transposing and re-packing the large W and is about 25% faster; at batch 2048 it is not.
 */
function swapIsCheaper(m: number, k: number, n: number, tA: boolean, tB: boolean): boolean {
  if (!tA && !tB) return false;
  const direct = (tA ? m * k : 0) + (tB ? n * k : 0) + PACK_COST * k * n;
  const swapped = (tA ? 0 : m * k) + (tB ? 0 : n * k) + PACK_COST * k * m + m * n;
  return swapped < direct;
}

/**
 * The wrapped kernel: every product becomes one or more untransposed batch-1 products, which the
 * stock kernel runs on XNNPACK.
 */
function fastProduct(params: KernelParams, original: tf.KernelFunc, fused: boolean): KernelResult {
  const backend = params.backend as WasmBackend;
  const { a, b, bias } = params.inputs;
  const attrs = params.attrs ?? {};
  const tA = attrs.transposeA === true;
  const tB = attrs.transposeB === true;
  const activation = String(attrs.activation ?? 'linear');
  // Leave anything unusual to the stock kernel so that it raises its own, familiar error.
  if (
    a === undefined ||
    b === undefined ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32' ||
    a.shape.length < 2 ||
    b.shape.length < 2 ||
    (fused && !Object.hasOwn(ACTIVATION_KERNELS, activation))
  ) {
    return original(params) as KernelResult;
  }
  const ar = a.shape.length;
  const br = b.shape.length;
  const m = tA ? a.shape[ar - 1]! : a.shape[ar - 2]!;
  const k = tA ? a.shape[ar - 2]! : a.shape[ar - 1]!;
  const kb = tB ? b.shape[br - 1]! : b.shape[br - 2]!;
  const n = tB ? b.shape[br - 2]! : b.shape[br - 1]!;
  if (k !== kb || m * n * k === 0) return original(params) as KernelResult;

  const aOuter = a.shape.slice(0, -2);
  const bOuter = b.shape.slice(0, -2);
  const aBatches = tf.util.sizeFromShape(aOuter);
  const bBatches = tf.util.sizeFromShape(bOuter);
  const outOuter = tf.broadcast_util.assertAndGetBroadcastShape(aOuter, bOuter);
  const outShape = [...outOuter, m, n];
  const exactEpilogue = !fused || epilogueIsExact(params, n);
  if (!tA && !tB && aBatches === 1 && bBatches === 1 && exactEpilogue) {
    return original(params) as KernelResult; // already the XNNPACK path, bit for bit stock
  }

  // XNNPACK applies bias and activation itself when that is exact; otherwise they come after.
  const epilogueInside = fused && exactEpilogue;
  const single = (left: tf.TensorInfo, right: tf.TensorInfo): tf.TensorInfo =>
    original({
      inputs: epilogueInside ? { ...params.inputs, a: left, b: right } : { a: left, b: right },
      backend,
      attrs: {
        ...attrs,
        transposeA: false,
        transposeB: false,
        ...(fused && !epilogueInside ? { activation: 'linear' } : {}),
      },
    }) as KernelResult;

  let product: tf.TensorInfo;
  if (bBatches === 1 && aBatches > 1 && !tA) {
    // One shared right operand: the batches of `a` are just more rows of one product.
    const left = operand(backend, { ...a, shape: [1, aBatches * m, k] }, 0, aBatches * m, k, false);
    const right = operand(backend, b, 0, k, n, tB);
    product = single(left.info, right.info);
    // Freeing the right operand also drops the XNNPACK operator cached on its id.
    if (right.owned) backend.disposeData(right.info.dataId);
  } else {
    // A bias or PReLU weights inside the product are per output column, so they forbid the swap.
    const perColumn = epilogueInside && (bias != null || activation === 'prelu');
    const swap = !perColumn && swapIsCheaper(m, k, n, tA, tB);
    const batches = tf.util.sizeFromShape(outOuter);
    // A single unswapped product is the result itself; otherwise parts are gathered in `out`.
    const out = batches === 1 && !swap ? null : backend.makeOutput([batches, m, n], 'float32');
    let last: tf.TensorInfo | null = null;
    for (let i = 0; i < batches; i++) {
      const ai = broadcastIndex(outOuter, aOuter, i);
      const bi = broadcastIndex(outOuter, bOuter, i);
      const [left, right] = swap
        ? [operand(backend, b, bi, n, k, !tB), operand(backend, a, ai, k, m, !tA)]
        : [operand(backend, a, ai, m, k, tA), operand(backend, b, bi, k, n, tB)];
      last = single(left.info, right.info);
      if (left.owned) backend.disposeData(left.info.dataId);
      if (right.owned) backend.disposeData(right.info.dataId);
      if (out === null) break;
      const dst = heapF32(backend, out).subarray(i * m * n, (i + 1) * m * n);
      const src = heapF32(backend, last);
      if (swap) transposeInto(src, 0, dst, n, m);
      else dst.set(src);
      backend.disposeData(last.dataId);
    }
    product = out ?? last!;
  }
  // Same data in row-major order; only the batch dims are restored before any broadcasting.
  const shaped = { ...product, shape: outShape };
  return fused && !exactEpilogue ? applyEpilogue(backend, params, shaped) : shaped;
}

/**
 * `Sum` over leading axes, as the bias gradient of every dense layer is (`[B, N] → [N]`). The
 * wasm kernel first transposes the reduced axes to the end (about 30 ms for `[2048, 2048]`);
 * summing rows in place is about 6x faster and adds in the same order, row 0 first, in float32,
 * so the result is bit for bit the stock one.
 */
function fastSum(params: KernelParams, original: tf.KernelFunc): KernelResult {
  const backend = params.backend as WasmBackend;
  const x = params.inputs.x;
  if (x === undefined || x.dtype !== 'float32') return original(params) as KernelResult;
  const rank = x.shape.length;
  const axes = [...new Set(tf.util.parseAxisParam(params.attrs?.axis as number[], x.shape))];
  axes.sort((p, q) => p - q);
  const leading = axes.length > 0 && axes.length < rank && axes.every((axis, i) => axis === i);
  const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
  const kept = x.shape.slice(axes.length);
  const cols = tf.util.sizeFromShape(kept);
  // Full and innermost reductions need no transpose in the stock kernel; mixed ones are rare.
  if (!leading || rows * cols === 0) return original(params) as KernelResult;
  const shape = params.attrs?.keepDims === true ? [...axes.map(() => 1), ...kept] : kept;
  const out = backend.makeOutput(shape, 'float32');
  const src = heapF32(backend, x);
  const dst = heapF32(backend, out);
  // Four rows per pass to touch `dst` a quarter as often; `fround` after every addition keeps
  // float32 semantics, and starting from +0 like the stock kernel keeps its sign of zero.
  let row = 0;
  dst.fill(0);
  for (; row + 4 <= rows; row += 4) {
    const r0 = row * cols;
    const r1 = r0 + cols;
    const r2 = r1 + cols;
    const r3 = r2 + cols;
    for (let j = 0; j < cols; j++) {
      let acc = Math.fround(dst[j]! + src[r0 + j]!);
      acc = Math.fround(acc + src[r1 + j]!);
      acc = Math.fround(acc + src[r2 + j]!);
      dst[j] = acc + src[r3 + j]!;
    }
  }
  for (; row < rows; row++) {
    const from = row * cols;
    for (let j = 0; j < cols; j++) dst[j] = dst[j]! + src[from + j]!;
  }
  return out;
}

/** Wasm kernels we replace, each as a function of the stock kernel it wraps. */
const WRAPPERS: Readonly<Record<string, (original: tf.KernelFunc) => tf.KernelFunc>> = {
  BatchMatMul: (original) => (params) => fastProduct(params, original, false),
  _FusedMatMul: (original) => (params) => fastProduct(params, original, true),
  Sum: (original) => (params) => fastSum(params, original),
};

let installed: Map<string, tf.KernelConfig> | null = null;

function isWrapped(config: tf.KernelConfig | undefined): boolean {
  return config !== undefined && (config.kernelFunc as WrappedKernelFunc)[WRAPPED] !== undefined;
}

/**
 * Makes training on the tfjs wasm backend fast: matrix products run on XNNPACK in every case,
 * not only for untransposed batch-1 products (transposed operands, as in the backward pass of
 * every dense layer; batched products; fused bias and activation), and sums over leading axes
 * (bias gradients) skip a transpose. About 15x faster training steps for an MLP.
 *
 * Results equal stock tfjs up to float32 rounding, except where stock tfjs-backend-wasm 4.22 is
 * wrong (a fused bias or activation combined with a transpose or a batch, or a size-1 bias),
 * where they equal the cpu backend instead.
 *
 * {@link selectBackend} calls this for you when it picks wasm; call it yourself if you set the
 * backend with `tf.setBackend('wasm')`. Idempotent, and harmless on other backends: it only
 * replaces kernels registered for wasm.
 *
 * @returns True when the fast kernels are active for wasm, false when tfjs-backend-wasm has not
 *   been imported yet (import it, then call this again).
 */
export function installFastKernels(): boolean {
  if (installed !== null) return true;
  const originals = new Map<string, tf.KernelConfig>();
  for (const name of Object.keys(WRAPPERS)) {
    const config = tf.getKernel(name, BACKEND);
    if (config === undefined) return false;
    // Another copy of this library already wrapped it: nesting would only add overhead.
    if (isWrapped(config)) return true;
    originals.set(name, config);
  }
  for (const [name, config] of originals) {
    const kernelFunc: WrappedKernelFunc = WRAPPERS[name]!(config.kernelFunc);
    kernelFunc[WRAPPED] = config;
    tf.unregisterKernel(name, BACKEND);
    tf.registerKernel({ ...config, kernelFunc });
  }
  installed = originals;
  return true;
}

/**
 * Puts back the stock wasm kernels that {@link installFastKernels} replaced, e.g. to compare
 * speed or results with stock tfjs. Does nothing when they are not installed.
 */
export function uninstallFastKernels(): void {
  if (installed === null) return;
  for (const [name, config] of installed) {
    // Only undo our own wrapper; if someone registered another kernel since, keep theirs.
    if ((tf.getKernel(name, BACKEND)?.kernelFunc as WrappedKernelFunc)?.[WRAPPED] === config) {
      tf.unregisterKernel(name, BACKEND);
      tf.registerKernel(config);
    }
  }
  installed = null;
}

/** Whether the fast wasm kernels of {@link installFastKernels} are active. */
export function fastKernelsInstalled(): boolean {
  return Object.keys(WRAPPERS).every((name) => isWrapped(tf.getKernel(name, BACKEND)));
}

/**
 * The hook {@link selectBackend} runs after activating a backend: installs the fast kernels
 * when the backend is wasm.
 */
export function installFastKernelsFor(backendName: string): void {
  if (backendName === BACKEND) installFastKernels();
}
