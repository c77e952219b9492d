import type * as tf from '@tensorflow/tfjs-core';

/*
 * What the library's WebGPU kernels use of tfjs-backend-webgpu 4.22: its program interface
 * (`WebGPUProgram`; the backend's `runWebGPUProgram` adds the bindings, the uniform struct and
 * the entry point around `getUserCode()`) and the parts of its `WebGPUBackend` that the kernels
 * and the counter touch. The types are restated here, not imported, so that the browser-safe core
 * never loads the optional webgpu package.
 */

/** The backend name tfjs-backend-webgpu registers. */
export const WEBGPU = 'webgpu';

/** The argument of a tfjs kernel function. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];

/** The fields of tfjs-backend-webgpu's `WebGPUProgram` the library's programs set. */
export interface WebGpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents?: number[];
  workgroupSize: [number, number, number];
  /** Adds tfjs's `size` uniform, the output's element count. */
  size?: boolean;
  /** WGSL fields appended to tfjs's uniform struct, filled by the program-defined uniforms. */
  uniforms?: string;
  getUserCode(): string;
  /** The class tfjs and the counter name the program by; see {@link programClass}. */
  constructor?: { readonly name: string };
}

/** One value of `runWebGPUProgram`'s program-defined uniforms. */
export interface ProgramUniform {
  readonly type: 'int32' | 'float32';
  readonly data: number[];
}

/** The parts of tfjs-backend-webgpu's `WebGPUBackend` the library uses. */
export interface WebGpuBackend {
  readonly device: {
    readonly limits: { readonly maxComputeWorkgroupsPerDimension: number };
    createShaderModule(descriptor: { code: string; label?: string }): unknown;
    createComputePipeline(descriptor: {
      layout: 'auto';
      compute: { module: unknown; entryPoint: string };
      label?: string;
    }): unknown;
  };
  readonly pipelineCache: Record<string, unknown>;
  readonly tensorMap: {
    get(dataId: tf.DataId): {
      refCount: number;
      resource?: unknown;
      values?: ArrayLike<number> | null;
    };
  };
  readonly queue: { submit(buffers: unknown): void };
  runWebGPUProgram(
    program: WebGpuProgram,
    inputs: tf.TensorInfo[],
    outputDtype: tf.DataType,
    programDefinedUniform?: ProgramUniform[],
    output?: tf.TensorInfo,
  ): tf.TensorInfo;
  /** Copies a tensor's host values into a GPU buffer, when they are still on the host. */
  uploadToGPU(dataId: tf.DataId): void;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/** The WebGPU backend a kernel of the 'webgpu' backend is called with. */
export function webGpuBackendOf(backend: KernelArgs['backend']): WebGpuBackend {
  return backend as unknown as WebGpuBackend;
}

/** One scalar of a program's own uniforms, readable in WGSL as `uniforms.<name>`. */
export interface ScalarUniform {
  readonly name: string;
  readonly type: 'f32' | 'i32';
  readonly value: number;
}

/**
 * The WGSL struct fields of `scalars` (for a program's `uniforms`) and the values to pass to
 * `runWebGPUProgram` in the same order, so that the two cannot disagree.
 */
export function scalarUniforms(scalars: readonly ScalarUniform[]): {
  declaration: string;
  values: ProgramUniform[];
} {
  return {
    declaration: scalars.map(({ name, type }) => `${name} : ${type},`).join(' '),
    values: scalars.map(({ type, value }) => ({
      type: type === 'f32' ? 'float32' : 'int32',
      data: [value],
    })),
  };
}

/** Threads of every workgroup of a one-dimensional program. */
export const FLAT_WORKGROUP_SIZE = 64;

/**
 * The launch fields of a one-dimensional program over `outputShape`: `workgroups` workgroups of
 * {@link FLAT_WORKGROUP_SIZE} threads (by default one thread per output element), whose `main`
 * gets the global invocation index.
 */
export function flatLaunch(
  outputShape: readonly number[],
  workgroups = Math.ceil(outputShape.reduce((n, d) => n * d, 1) / FLAT_WORKGROUP_SIZE),
): Pick<WebGpuProgram, 'dispatchLayout' | 'dispatch' | 'workgroupSize'> {
  return {
    dispatchLayout: { x: outputShape.map((_, axis) => axis) },
    dispatch: [Math.max(1, workgroups), 1, 1],
    workgroupSize: [FLAT_WORKGROUP_SIZE, 1, 1],
  };
}

/**
 * A stand-in for a program class, for programs written as plain objects: tfjs names a program's
 * timings (tf.profile) by its class, and the counter counts programs by it too.
 */
export function programClass(name: string): { name: string } {
  return { name: `GradientRouting${name}Program` };
}

/** A group of the library's WebGPU kernels that belong together (e.g. the dense-layer products). */
export interface WebGpuKernelSet {
  readonly name: string;
  readonly kernels: () => readonly tf.KernelConfig[];
}
