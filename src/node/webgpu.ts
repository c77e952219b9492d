import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  describeAdapter,
  type GpuAdapterDescription,
  isSoftwareAdapter,
} from '../core/backend/adapter.js';
import { GradientRoutingError } from '../core/errors.js';

/*
 * WebGPU in Node, through the `webgpu` package (Dawn's Node bindings, an optional peer).
 *
 * A real GPU is reached through Dawn's default backend (Vulkan on Linux, Metal on macOS, D3D12 on
 * Windows). Machines without one can still run the WebGPU code path on the CPU, which is how CI
 * tests it: Dawn's OpenGL ES backend on Mesa's llvmpipe driver, which Debian installs with
 * `libegl1 libegl-mesa0 libgl1-mesa-dri`. That path needs, all measured on Debian 12 (Mesa 22.3):
 * - `EGL_PLATFORM=surfaceless` while the adapter is found, since there is no display; it is set
 *   in-process (only if the user has not set it) and restored afterwards so child processes do
 *   not inherit it;
 * - the adapter requested at the `compatibility` feature level (a `core` request returns null on
 *   OpenGL ES);
 * - the device requested with the adapter's own compute limits, since the compatibility
 *   defaults (e.g. 4 storage buffers per stage) are too small for tfjs's shaders.
 * Debian 12's Vulkan software driver (lavapipe, Mesa 22.3) cannot be used: Dawn requires a Vulkan
 * feature it lacks and returns no adapter.
 *
 * tfjs-backend-webgpu reads tensors synchronously through `OffscreenCanvas`, which Node lacks, so
 * `dataSync()`/`arraySync()` throw there; the library's training and evaluation paths read with
 * `await tensor.data()`.
 */

/** The parts of the `webgpu` package's `GPU` object used here. */
interface GpuLike {
  requestAdapter(options?: {
    featureLevel?: 'core' | 'compatibility';
    powerPreference?: 'high-performance' | 'low-power';
  }): Promise<AdapterLike | null>;
}

interface AdapterLike {
  readonly info: GpuAdapterDescription;
  readonly limits: Readonly<Record<string, number>>;
  readonly features: ReadonlySet<string>;
  requestDevice(descriptor?: {
    requiredLimits?: Record<string, number>;
    requiredFeatures?: string[];
  }): Promise<DeviceLike>;
}

interface DeviceLike {
  readonly features: ReadonlySet<string>;
  destroy(): void;
}

interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}

/** The tfjs-backend-webgpu export used here. */
interface WebGpuBackendModule {
  WebGPUBackend: new (device: DeviceLike, adapterInfo?: GpuAdapterDescription) => tf.KernelBackend;
}

/**
 * Limits tfjs's compute shaders need above WebGPU's defaults; requested at the adapter's values.
 * tfjs itself asks for the first six; the software adapter at the compatibility level also needs
 * the per-stage buffer and texture counts.
 */
const DEVICE_LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxStorageTexturesPerShaderStage',
] as const;

/** The WebGPU adapter that `selectNodeBackend()` found and registered for tfjs. */
export interface NodeWebGpuAdapter {
  /** Its `GPUAdapterInfo` fields. */
  readonly info: GpuAdapterDescription;
  /** Whether it computes on the CPU (llvmpipe, lavapipe, SwiftShader, …). */
  readonly software: boolean;
  /** The Dawn backend it runs on: the platform's default, or OpenGL ES for the software path. */
  readonly dawnBackend: 'default' | 'opengles';
  /**
   * Whether the device has timestamp queries, which tfjs's `tf.profile` needs for per-kernel GPU
   * times (Dawn's OpenGL ES backend has none; on Vulkan, Metal and D3D12 they are requested).
   */
  readonly timestampQueries: boolean;
}

interface ActiveWebGpu {
  gpu: GpuLike;
  device: DeviceLike;
  adapter: NodeWebGpuAdapter;
  navigatorBefore: PropertyDescriptor | undefined;
  gpuBefore: PropertyDescriptor | undefined;
}

let active: ActiveWebGpu | null = null;

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/** A clear error for an optional package that is not installed; any other error as it is. */
function missingPackageError(error: unknown, message: string): unknown {
  return isModuleNotFound(error)
    ? new GradientRoutingError(message, 'backend', undefined, { cause: error })
    : error;
}

async function importDawn(): Promise<DawnModule> {
  try {
    return (await import('webgpu')) as unknown as DawnModule;
  } catch (error) {
    throw missingPackageError(
      error,
      'WebGPU in Node needs the webgpu package (Dawn, prebuilt; no download at run time): npm install webgpu @tensorflow/tfjs-backend-webgpu.',
    );
  }
}

/**
 * Whether the Vulkan loader can be found on Linux. Without it Dawn's default backend has nothing
 * to open (and prints a warning to stderr); with it absent there is no GPU to reach anyway.
 */
function vulkanLoaderPresent(): boolean {
  const name = 'libvulkan.so.1';
  const directories = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  if (directories.some((directory) => fs.existsSync(path.join(directory, name)))) return true;
  try {
    // The dynamic linker's cache lists every library it will find by name.
    return fs.readFileSync('/etc/ld.so.cache').includes(name);
  } catch {
    return false;
  }
}

/** Runs `find` with `EGL_PLATFORM=surfaceless` unless the user set it, then restores the environment. */
async function withSurfacelessEgl<T>(find: () => Promise<T>): Promise<T> {
  const own = process.env.EGL_PLATFORM === undefined;
  if (own) process.env.EGL_PLATFORM = 'surfaceless';
  try {
    return await find();
  } finally {
    if (own) delete process.env.EGL_PLATFORM;
  }
}

async function requestDevice(adapter: AdapterLike): Promise<DeviceLike> {
  const requiredLimits: Record<string, number> = {};
  for (const limit of DEVICE_LIMITS) {
    const value = adapter.limits[limit];
    if (typeof value === 'number') requiredLimits[limit] = value;
  }
  // tfjs times each kernel with timestamp queries while profiling, and only then.
  const requiredFeatures = adapter.features.has(TIMESTAMP_QUERY) ? [TIMESTAMP_QUERY] : [];
  return adapter.requestDevice({ requiredLimits, requiredFeatures });
}

const TIMESTAMP_QUERY = 'timestamp-query';

/**
 * Dawn toggles from `GRADIENT_ROUTING_DAWN_TOGGLES`, a comma-separated list where `name` turns a
 * toggle on and `-name` off, e.g. `allow_unsafe_apis,-timestamp_quantization` for exact kernel
 * times (`npm run bench -- --profile` sets that) or `skip_validation` to measure what validation
 * costs. Read when the device is created.
 */
function dawnToggleFlags(): string[] {
  const names = (process.env.GRADIENT_ROUTING_DAWN_TOGGLES ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '' && name !== '-');
  const enabled = names.filter((name) => !name.startsWith('-'));
  const disabled = names.filter((name) => name.startsWith('-')).map((name) => name.slice(1));
  return [
    ...(enabled.length > 0 ? [`enable-dawn-features=${enabled.join(',')}`] : []),
    ...(disabled.length > 0 ? [`disable-dawn-features=${disabled.join(',')}`] : []),
  ];
}

/** The GPU object, adapter and device to use, or the reason there is none. */
async function findAdapter(
  dawn: DawnModule,
  allowSoftware: boolean,
): Promise<{
  gpu: GpuLike;
  adapter: AdapterLike;
  device: DeviceLike;
  dawnBackend: 'default' | 'opengles';
}> {
  let fallbackReason = 'no GPU adapter was found';
  if (process.platform !== 'linux' || vulkanLoaderPresent()) {
    const gpu = dawn.create(dawnToggleFlags());
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (adapter !== null && (allowSoftware || !isSoftwareAdapter(adapter.info))) {
      return { gpu, adapter, device: await requestDevice(adapter), dawnBackend: 'default' };
    }
    if (adapter !== null)
      fallbackReason = `the only adapter is a software one (${describeAdapter(adapter.info)})`;
  } else {
    fallbackReason = 'no Vulkan loader (libvulkan.so.1) is installed, so no GPU can be reached';
  }
  if (!allowSoftware) {
    throw new GradientRoutingError(
      `WebGPU is not used automatically: ${fallbackReason}. Force it with { backend: 'webgpu' } to run on a software adapter.`,
      'backend',
    );
  }
  if (process.platform !== 'linux') {
    throw new GradientRoutingError(`no WebGPU adapter: ${fallbackReason}.`, 'backend');
  }
  return withSurfacelessEgl(async () => {
    const gpu = dawn.create(['backend=opengles', ...dawnToggleFlags()]);
    const adapter = await gpu.requestAdapter({ featureLevel: 'compatibility' });
    if (adapter === null) {
      throw new GradientRoutingError(
        `no WebGPU adapter: ${fallbackReason}, and Dawn's OpenGL ES backend found none either. On Debian or Ubuntu, apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri gives it Mesa's llvmpipe.`,
        'backend',
      );
    }
    return { gpu, adapter, device: await requestDevice(adapter), dawnBackend: 'opengles' as const };
  });
}

/** Gives tfjs-backend-webgpu the browser globals it expects: `navigator.gpu` and the GPU* enums. */
function installGlobals(
  dawn: DawnModule,
  gpu: GpuLike,
): Pick<ActiveWebGpu, 'navigatorBefore' | 'gpuBefore'> {
  for (const [name, value] of Object.entries(dawn.globals)) {
    if (!(name in globalThis))
      Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  const navigatorBefore = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const existing = (globalThis as { navigator?: object }).navigator;
  if (existing === undefined) {
    // Node 20 has no navigator at all.
    Object.defineProperty(globalThis, 'navigator', {
      value: { gpu },
      configurable: true,
      writable: true,
    });
    return { navigatorBefore, gpuBefore: undefined };
  }
  // Node 21+ has a navigator without `gpu`.
  const gpuBefore = Object.getOwnPropertyDescriptor(existing, 'gpu');
  Object.defineProperty(existing, 'gpu', { value: gpu, configurable: true, writable: true });
  return { navigatorBefore, gpuBefore };
}

function restoreGlobals(state: ActiveWebGpu): void {
  const navigator = (globalThis as { navigator?: object }).navigator;
  if (state.navigatorBefore === undefined) {
    delete (globalThis as { navigator?: object }).navigator;
  } else if (navigator !== undefined) {
    if (state.gpuBefore === undefined) delete (navigator as { gpu?: unknown }).gpu;
    else Object.defineProperty(navigator, 'gpu', state.gpuBefore);
  }
}

/** Options of {@link prepareNodeWebGpu}. */
export interface PrepareWebGpuOptions {
  /** Accept a software adapter (when WebGPU was asked for by name); else only a real GPU. */
  allowSoftware: boolean;
  /** Where the one-line notice about a software adapter goes. Default: `console.warn`. */
  onNotice?: (message: string) => void;
}

/**
 * Makes the 'webgpu' backend available to tfjs in Node: finds an adapter (a real GPU, or with
 * `allowSoftware` Mesa's llvmpipe through Dawn's OpenGL ES backend), installs the globals
 * tfjs-backend-webgpu needs and registers the backend on that device. Activate it with
 * `tf.setBackend('webgpu')`; `selectNodeBackend()` does all of this for you.
 *
 * @returns The adapter in use.
 * @throws `GradientRoutingError` (code `'backend'`) naming why WebGPU cannot be used.
 */
export async function prepareNodeWebGpu(options: PrepareWebGpuOptions): Promise<NodeWebGpuAdapter> {
  if (active !== null && tf.findBackendFactory('webgpu') !== null) {
    if (active.adapter.software && !options.allowSoftware) {
      throw new GradientRoutingError(
        `WebGPU is not used automatically: its adapter is a software one (${describeAdapter(active.adapter.info)}). Force it with { backend: 'webgpu' }.`,
        'backend',
      );
    }
    return active.adapter;
  }
  const dawn = await importDawn();
  let backendModule: WebGpuBackendModule;
  const found = await findAdapter(dawn, options.allowSoftware);
  const adapter: NodeWebGpuAdapter = {
    info: { ...pickInfo(found.adapter.info) },
    software: isSoftwareAdapter(found.adapter.info),
    dawnBackend: found.dawnBackend,
    timestampQueries: found.device.features.has(TIMESTAMP_QUERY),
  };
  const globals = installGlobals(dawn, found.gpu);
  try {
    backendModule = (await import(
      '@tensorflow/tfjs-backend-webgpu'
    )) as unknown as WebGpuBackendModule;
  } catch (error) {
    found.device.destroy();
    restoreGlobals({ ...globals, gpu: found.gpu, device: found.device, adapter });
    throw missingPackageError(
      error,
      'WebGPU in Node needs @tensorflow/tfjs-backend-webgpu: npm install @tensorflow/tfjs-backend-webgpu webgpu.',
    );
  }
  // tfjs registers a factory of its own when navigator.gpu exists at import; it would request a
  // default adapter, which on the software path does not exist.
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  const { device } = found;
  tf.registerBackend('webgpu', () => new backendModule.WebGPUBackend(device, adapter.info), 3);
  active = { gpu: found.gpu, device, adapter, ...globals };
  if (adapter.software) {
    const notice = options.onNotice ?? ((message: string) => console.warn(message));
    notice(
      `gradient-routing: WebGPU runs on a software adapter (${describeAdapter(adapter.info)}): results are right but slower than the wasm backend; use it to test the WebGPU path.`,
    );
  }
  return adapter;
}

function pickInfo(info: GpuAdapterDescription): GpuAdapterDescription {
  // GPUAdapterInfo's fields are getters on a native object; copy them into a plain one.
  const { vendor, architecture, device, description, isFallbackAdapter } = info;
  return { vendor, architecture, device, description, isFallbackAdapter };
}

/** The WebGPU adapter registered for tfjs in this process, or null. */
export function nodeWebGpuAdapter(): NodeWebGpuAdapter | null {
  return active?.adapter ?? null;
}

/**
 * Removes the 'webgpu' backend, destroys its device and takes `navigator.gpu` away again, so
 * that the process can exit and another backend can be selected. Tensors still on WebGPU are
 * lost. Does nothing when WebGPU was not prepared by this library.
 */
export function releaseNodeWebGpu(): void {
  if (active === null) return;
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  active.device.destroy();
  restoreGlobals(active);
  active = null;
}
