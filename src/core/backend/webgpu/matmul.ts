import * as tf from '@tensorflow/tfjs-core';
import { type GatedMatMulAttrs, type GatedOperand, LibraryKernel } from '../library-kernels.js';
import {
  ColumnSumProgram,
  type EpilogueActivation,
  type MatMulShape,
  TiledMatMulProgram,
  type TileSide,
} from './matmul-programs.js';
import {
  type KernelArgs,
  WEBGPU,
  type WebGpuBackend,
  type WebGpuKernelSet,
  webGpuBackendOf,
} from './tfjs-webgpu.js';

/*
 * The dense-layer products on WebGPU: tfjs's BatchMatMul and _FusedMatMul replaced by the
 * register-tiled program of matmul-programs.ts (so every model built from tfjs ops, tfjs-layers'
 * Dense included, uses it), and two kernels of the library's own for a dense layer's backward
 * pass, which tfjs has no kernels for: a product with ReLU's backward applied to one operand as
 * it is read, and the bias gradient's column sum with the same gate. Cases the tiled program
 * does not cover (other dtypes and activations, outer dimensions that broadcast other than by 1)
 * go to the stock kernel, unchanged.
 */

/** The product's shape, or null when the tiled program does not cover it (the stock kernel does). */
function planProduct(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  backend: WebGpuBackend,
): MatMulShape | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const rankA = a.shape.length;
  const rankB = b.shape.length;
  if (rankA < 2 || rankB < 2) return null;
  const m = transposeA ? a.shape[rankA - 1]! : a.shape[rankA - 2]!;
  const k = transposeA ? a.shape[rankA - 2]! : a.shape[rankA - 1]!;
  const kB = transposeB ? b.shape[rankB - 1]! : b.shape[rankB - 2]!;
  const n = transposeB ? b.shape[rankB - 2]! : b.shape[rankB - 1]!;
  if (k !== kB) return null; // the stock kernel reports the mismatch in tfjs's words
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  // tfjs flattens the outer dimensions; only equal counts or a single shared matrix line up.
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
  const batch = Math.max(batchA, batchB);
  const tile = tileSide(batch, m, n);
  const limit = backend.device.limits.maxComputeWorkgroupsPerDimension;
  if (Math.ceil(n / tile) > limit || Math.ceil(m / tile) > limit || batch > limit) return null;
  return {
    tile,
    batch,
    m,
    n,
    k,
    transposeA,
    transposeB,
    broadcastA: batchA === 1 && batch > 1,
    broadcastB: batchB === 1 && batch > 1,
  };
}

/**
 * Big tiles when the product has enough of them to fill a GPU (a hundred or so streaming
 * multiprocessors), small ones otherwise, so that a small product still spreads over the chip.
 */
function tileSide(batch: number, m: number, n: number): TileSide {
  return batch * Math.ceil(m / 64) * Math.ceil(n / 64) >= 128 ? 64 : 32;
}

/** The output shape tfjs gives a product: broadcast outer dimensions, then M×N. */
function productShape(a: tf.TensorInfo, b: tf.TensorInfo, shape: MatMulShape): number[] {
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(
    a.shape.slice(0, -2),
    b.shape.slice(0, -2),
  );
  return [...outer, shape.m, shape.n];
}

/** Reshape through the backend's own kernel: it shares the data, no copy. */
function reshape(backend: WebGpuBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  const kernel = tf.getKernel('Reshape', WEBGPU)!;
  return kernel.kernelFunc({
    inputs: { x },
    backend: backend as unknown as tf.KernelBackend,
    attrs: { shape },
  }) as tf.TensorInfo;
}

interface ProductRequest {
  readonly a: tf.TensorInfo;
  readonly b: tf.TensorInfo;
  readonly shape: MatMulShape;
  readonly bias?: tf.TensorInfo;
  readonly activation: EpilogueActivation;
  readonly gate?: tf.TensorInfo;
  readonly gated: GatedOperand;
}

function runProduct(backend: WebGpuBackend, request: ProductRequest): tf.TensorInfo {
  const { a, b, shape, bias, activation, gate, gated } = request;
  const biasKind =
    bias === undefined ? 'none' : tf.util.sizeFromShape(bias.shape) === 1 ? 'scalar' : 'row';
  const program = new TiledMatMulProgram(shape, { bias: biasKind, activation, gated });
  const asBatches = (x: tf.TensorInfo, rows: number, cols: number) =>
    reshape(backend, x, [tf.util.sizeFromShape(x.shape.slice(0, -2)), rows, cols]);
  const a3 = asBatches(
    a,
    shape.transposeA ? shape.k : shape.m,
    shape.transposeA ? shape.m : shape.k,
  );
  const b3 = asBatches(
    b,
    shape.transposeB ? shape.n : shape.k,
    shape.transposeB ? shape.k : shape.n,
  );
  const inputs = [a3, b3];
  const temporaries = [a3, b3];
  if (gate !== undefined) {
    const gate3 = reshape(backend, gate, (gated === 'a' ? a3 : b3).shape);
    inputs.push(gate3);
    temporaries.push(gate3);
  }
  if (bias !== undefined) {
    const flatBias = reshape(backend, bias, [tf.util.sizeFromShape(bias.shape)]);
    inputs.push(flatBias);
    temporaries.push(flatBias);
  }
  const out = backend.runWebGPUProgram(program, inputs, 'float32', program.uniformData);
  const shaped = reshape(backend, out, productShape(a, b, shape));
  for (const info of [...temporaries, out]) backend.disposeData(info.dataId);
  return shaped;
}

/** Whether a fused bias is one the epilogue reads directly: one value, or one per output column. */
function epilogueBias(bias: tf.TensorInfo, n: number): boolean {
  const size = tf.util.sizeFromShape(bias.shape);
  if (size === 1) return true;
  return size === n && bias.shape[bias.shape.length - 1] === n;
}

function isEpilogueActivation(name: unknown): name is EpilogueActivation {
  return name === undefined || name === null || name === 'linear' || name === 'relu';
}

/**
 * The replacement of tfjs's BatchMatMul or _FusedMatMul (the same inputs and attributes, the
 * latter with a bias, an activation and PReLU weights), with `stock` for what it does not cover.
 */
function productKernel(
  kernelName: 'BatchMatMul' | '_FusedMatMul',
  stock: tf.KernelConfig | undefined,
): tf.KernelConfig {
  return {
    kernelName,
    backendName: WEBGPU,
    kernelFunc: (params: KernelArgs) => {
      const backend = webGpuBackendOf(params.backend);
      const { a, b, bias, preluActivationWeights } = params.inputs as Record<
        string,
        tf.TensorInfo | undefined
      >;
      const { transposeA, transposeB, activation } = params.attrs as {
        transposeA: boolean;
        transposeB: boolean;
        activation?: string;
      };
      const shape = planProduct(a!, b!, transposeA, transposeB, backend);
      const covered =
        shape !== null &&
        preluActivationWeights === undefined &&
        isEpilogueActivation(activation) &&
        (bias === undefined || (bias.dtype === 'float32' && epilogueBias(bias, shape.n)));
      if (!covered) return delegate(stock, params);
      return runProduct(backend, {
        a: a!,
        b: b!,
        shape,
        bias,
        activation: activation === 'relu' ? 'relu' : 'linear',
        gated: 'none',
      });
    },
  };
}

function delegate(stock: tf.KernelConfig | undefined, params: KernelArgs): tf.TensorInfo {
  if (stock === undefined)
    throw new Error('gradient-routing: no stock WebGPU matMul kernel to fall back on.');
  return stock.kernelFunc(params) as tf.TensorInfo;
}

/**
 * The library's own products: {@link LibraryKernel.dense} (a dense layer's forward: bias and
 * activation, no transposes) and {@link LibraryKernel.gatedMatMul} (its backward products:
 * transposes and a gate).
 * Both take inputs `a`, `b` and optionally `bias` and `gate`.
 */
function libraryProductKernel(kernelName: string): tf.KernelConfig {
  return {
    kernelName,
    backendName: WEBGPU,
    kernelFunc: (params: KernelArgs) => {
      const backend = webGpuBackendOf(params.backend);
      const { a, b, bias, gate } = params.inputs as Record<string, tf.TensorInfo | undefined>;
      const attrs = params.attrs as Partial<GatedMatMulAttrs> & { activation?: EpilogueActivation };
      const {
        transposeA = false,
        transposeB = false,
        gated = 'none',
        activation = 'linear',
      } = attrs;
      const shape = planProduct(a!, b!, transposeA, transposeB, backend);
      if (shape === null) {
        throw new Error(
          `gradient-routing: ${kernelName} takes float32 matrices of matching inner size, got [${a!.shape}] and [${b!.shape}].`,
        );
      }
      const gatedOperand = gate === undefined ? 'none' : gated;
      return runProduct(backend, {
        a: a!,
        b: b!,
        shape,
        bias,
        activation,
        gate,
        gated: gatedOperand,
      });
    },
  };
}

const gatedColumnSumKernel: tf.KernelConfig = {
  kernelName: LibraryKernel.gatedColumnSum,
  backendName: WEBGPU,
  kernelFunc: (params: KernelArgs) => {
    const backend = webGpuBackendOf(params.backend);
    const { x, gate } = params.inputs as Record<string, tf.TensorInfo | undefined>;
    if (x!.shape.length !== 2 || x!.dtype !== 'float32') {
      throw new Error(
        `gradient-routing: ${LibraryKernel.gatedColumnSum} takes a float32 matrix, got shape [${x!.shape}].`,
      );
    }
    const [rows, columns] = x!.shape as [number, number];
    const program = new ColumnSumProgram(rows, columns, gate !== undefined);
    const inputs = gate === undefined ? [x!] : [x!, gate];
    return backend.runWebGPUProgram(program, inputs, 'float32', program.uniformData);
  },
};

/** The kernel set of install.ts: the stock kernels are looked up when it installs them. */
export const denseMatMulKernels: WebGpuKernelSet = {
  name: 'dense-matmul',
  kernels: (): readonly tf.KernelConfig[] => [
    productKernel('BatchMatMul', tf.getKernel('BatchMatMul', WEBGPU)),
    productKernel('_FusedMatMul', tf.getKernel('_FusedMatMul', WEBGPU)),
    libraryProductKernel(LibraryKernel.dense),
    libraryProductKernel(LibraryKernel.gatedMatMul),
    gatedColumnSumKernel,
  ],
};
