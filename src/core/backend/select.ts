import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { describeAdapter, type GpuAdapterDescription, isSoftwareAdapter } from './adapter.js';
import { installFastKernelsFor } from './fast-kernels.js';
import { watchGpuErrors } from './webgpu/device.js';
import { installWebGpuKernels } from './webgpu/install.js';

/** A backend this library knows how to load; `'auto'` picks the fastest that loads. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu' | 'webgl' | 'webgpu';
/** A backend to force, or `'auto'` to take the fastest that loads. */
export type BackendChoice = BackendName | 'auto';

/** Options of {@link selectBackend}. */
export interface SelectBackendOptions {
  /**
   * Force one backend; `'auto'` (the default) tries the fastest available first. WebGPU is
   * picked automatically only on a real GPU; forcing `'webgpu'` also accepts a software adapter.
   */
  backend?: BackendChoice;
  /**
   * Where tfjs-backend-wasm's `.wasm` files are served from (a URL prefix ending in `/`).
   * In Node the installed package's own files are used; in a browser your bundler or CDN decides.
   */
  wasmPaths?: string;
  /**
   * Threads of the wasm backend, 1 to 8; `1` turns threads off. Default: every logical core (at
   * most 8). In a browser, threads need a cross-origin isolated page (`crossOriginIsolated`);
   * elsewhere wasm runs on one thread. If threads cannot start, wasm runs on one thread after a
   * notice.
   */
  threads?: number;
  /**
   * Receives one-line notices: wasm threads that could not start, WebGPU on a software adapter.
   * Default: `console.warn`.
   */
  onNotice?: (message: string) => void;
}

/**
 * How to make one backend available. `load` registers it with tfjs and resolves to true, or
 * resolves to false when the package that provides it is not installed. It throws (with the
 * reason) when the package is there but the backend should not or cannot be used.
 */
export interface BackendLoader {
  readonly name: BackendName;
  /** What the user should do when this backend was forced but could not load. */
  readonly installHint: string;
  /** Makes the backend available to tfjs; false when its package is not installed. */
  load(options: SelectBackendOptions): Promise<boolean>;
}

/** The notice callback of `options`, `console.warn` unless given. */
export function noticeOf(options: SelectBackendOptions): (message: string) => void {
  return options.onNotice ?? ((message: string) => console.warn(message));
}

/** Runs a package import, mapping "not installed" to false; literal specifiers keep bundlers able to follow it. */
async function loaded(importPackage: () => Promise<unknown>): Promise<boolean> {
  try {
    await importPackage();
    return true;
  } catch (error) {
    if (isModuleNotFound(error)) return false;
    throw error;
  }
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/**
 * Imports a package this library does not depend on (the GPU backends), or reports that it is
 * missing. The name is passed as a variable on purpose: a literal would make bundlers fail the
 * build of every app that has not installed it. In a bundled app, import the backend yourself
 * (`import '@tensorflow/tfjs-backend-webgpu'`) so that your bundler includes it; it registers
 * itself and this import is not needed.
 */
async function importOptional(specifier: string): Promise<boolean> {
  try {
    await import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);
    return true;
  } catch (error) {
    // Browsers report an unresolvable bare specifier as a TypeError naming it.
    if (isModuleNotFound(error)) return false;
    if (error instanceof TypeError && error.message.includes(specifier)) return false;
    throw error;
  }
}

/** The part of the WebGPU `navigator.gpu` object used to look at the adapter. */
interface GpuProbe {
  requestAdapter(options?: {
    powerPreference?: 'high-performance';
  }): Promise<{ info?: GpuAdapterDescription } | null>;
}

/**
 * Makes tfjs-backend-webgpu available in a browser-like environment, where `navigator.gpu`
 * exists. Automatic selection takes only a real GPU; a software or fallback adapter (SwiftShader,
 * llvmpipe) is slower than wasm here and is used only when WebGPU is asked for by name.
 */
async function loadBrowserWebGpu(options: SelectBackendOptions): Promise<boolean> {
  if (tf.findBackendFactory('webgpu') === null) {
    if (!(await importOptional('@tensorflow/tfjs-backend-webgpu'))) return false;
  }
  const gpu = (globalThis as { navigator?: { gpu?: GpuProbe } }).navigator?.gpu;
  if (tf.findBackendFactory('webgpu') === null || gpu === undefined) {
    throw new GradientRoutingError('this environment has no WebGPU (navigator.gpu)', 'backend');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null) throw new GradientRoutingError('WebGPU found no adapter', 'backend');
  const info = adapter.info ?? {};
  if (isSoftwareAdapter(info)) {
    if (options.backend !== 'webgpu') {
      throw new GradientRoutingError(
        `WebGPU's only adapter is a software one (${describeAdapter(info)}); force it with { backend: 'webgpu' }`,
        'backend',
      );
    }
    noticeOf(options)(
      `gradient-routing: WebGPU runs on a software adapter (${describeAdapter(info)}): results are right but slower than the wasm backend.`,
    );
  }
  return true;
}

/**
 * The WebGL renderer's name where the environment can tell (a page with a canvas), else
 * undefined. Browsers without a GPU render WebGL in software (SwiftShader, llvmpipe).
 */
function webglRenderer(): string | undefined {
  try {
    const doc = (globalThis as { document?: Pick<Document, 'createElement'> }).document;
    const canvas = doc?.createElement('canvas');
    const gl = canvas?.getContext('webgl2') ?? canvas?.getContext('webgl');
    if (gl === null || gl === undefined) return undefined;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    const name: unknown = gl.getParameter(
      debug === null ? gl.RENDERER : debug.UNMASKED_RENDERER_WEBGL,
    );
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Makes tfjs-backend-webgl available. Like WebGPU, automatic selection skips a software
 * renderer (measured 8–18× slower than wasm for these models in headless Chromium); asking for
 * `'webgl'` by name takes it with a notice.
 */
async function loadWebGl(options: SelectBackendOptions): Promise<boolean> {
  if (tf.findBackendFactory('webgl') === null) {
    await importOptional('@tensorflow/tfjs-backend-webgl');
  }
  if (tf.findBackendFactory('webgl') === null) return false;
  const renderer = webglRenderer();
  if (renderer !== undefined && isSoftwareAdapter({ description: renderer })) {
    if (options.backend !== 'webgl') {
      throw new GradientRoutingError(
        `WebGL renders in software here (${renderer}); force it with { backend: 'webgl' }`,
        'backend',
      );
    }
    noticeOf(options)(
      `gradient-routing: WebGL runs on a software renderer (${renderer}): results are right but slower than the wasm backend.`,
    );
  }
  return true;
}

/** tfjs-backend-wasm pre-creates this many pthread workers; its thread pool can use no more. */
export const MAX_WASM_THREADS = 8;

/**
 * Sets the wasm backend's threads before it starts in a browser. tfjs itself runs its threaded
 * build only where SharedArrayBuffer can be shared with workers (a cross-origin isolated page),
 * and by default gives XNNPACK half the cores; this asks for all of them, or for `threads`.
 */
async function configureBrowserWasm(
  wasm: typeof import('@tensorflow/tfjs-backend-wasm'),
  options: SelectBackendOptions,
): Promise<void> {
  if (options.wasmPaths !== undefined) wasm.setWasmPaths(options.wasmPaths);
  if (tf.findBackend('wasm') !== null) return; // already running; its threads are fixed
  const threads = options.threads;
  if (threads === 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    return;
  }
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
    ?.hardwareConcurrency;
  wasm.setThreadsCount(Math.min(MAX_WASM_THREADS, threads ?? Math.max(1, cores ?? 1)));
  if (threads !== undefined && !(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'))) {
    noticeOf(options)(
      'gradient-routing: multi-threaded wasm needs a cross-origin isolated page (Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp); using 1 thread.',
    );
  }
}

/** Checks the `threads` option: an integer from 1 to 8 (or absent). */
export function assertThreadsOption(threads: number | undefined): void {
  if (threads === undefined) return;
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new GradientRoutingError(
      `threads must be an integer from 1 to ${MAX_WASM_THREADS} (tfjs-backend-wasm's thread pool limit), got ${String(threads)}; pass 1 to turn threads off.`,
      'invalid-argument',
      threads,
    );
  }
}

/** Loaders usable anywhere, browser included, in the order automatic selection tries them. */
export const portableLoaders: readonly BackendLoader[] = [
  {
    name: 'webgpu',
    installHint:
      "npm install @tensorflow/tfjs-backend-webgpu, and in a bundled app import '@tensorflow/tfjs-backend-webgpu' once",
    load: loadBrowserWebGpu,
  },
  {
    name: 'webgl',
    installHint:
      "npm install @tensorflow/tfjs-backend-webgl, and in a bundled app import '@tensorflow/tfjs-backend-webgl' once",
    load: loadWebGl,
  },
  {
    name: 'wasm',
    installHint:
      'npm install @tensorflow/tfjs-backend-wasm (it ships its .wasm files; no download)',
    load: (options) =>
      loaded(async () => {
        await configureBrowserWasm(await import('@tensorflow/tfjs-backend-wasm'), options);
      }),
  },
  {
    name: 'cpu',
    installHint: 'npm install @tensorflow/tfjs-backend-cpu',
    load: () => loaded(() => import('@tensorflow/tfjs-backend-cpu')),
  },
];

/** An error's message without the library prefix, to embed in another message. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^gradient-routing: /, '');
}

/**
 * Activates a backend from `loaders`, in order, and returns its name. Shared by the browser
 * and Node entry points, which differ only in the loaders they offer.
 */
export async function selectFrom(
  loaders: readonly BackendLoader[],
  options: SelectBackendOptions = {},
): Promise<BackendName> {
  assertThreadsOption(options.threads);
  const choice = options.backend ?? 'auto';
  const candidates = choice === 'auto' ? loaders : loaders.filter((l) => l.name === choice);
  if (candidates.length === 0) {
    throw new GradientRoutingError(
      `gradient-routing: unknown backend '${choice}'. Choose one of: auto, ${loaders
        .map((l) => l.name)
        .join(', ')}.`,
      'invalid-argument',
      choice,
    );
  }
  const failures: string[] = [];
  for (const loader of candidates) {
    let reason: string;
    try {
      if (await loader.load(options)) {
        if (await tf.setBackend(loader.name)) {
          await tf.ready();
          // Training on stock wasm is ~15x slower: its transposed matrix products skip XNNPACK.
          installFastKernelsFor(loader.name);
          if (loader.name === 'webgpu') installWebGpuKernels();
          // Its validation and out-of-memory errors stop training instead of being only printed.
          if (loader.name === 'webgpu') watchGpuErrors();
          return loader.name;
        }
        reason = 'it is installed but failed to initialise';
      } else {
        reason = `it is not installed (${loader.installHint})`;
      }
    } catch (error) {
      reason = `loading it failed: ${reasonOf(error)}`;
    }
    if (choice !== 'auto') {
      throw new GradientRoutingError(
        `gradient-routing: backend '${loader.name}' was requested but ${reason}.`,
        'backend',
        loader.name,
      );
    }
    failures.push(`${loader.name}: ${reason}`);
  }
  throw new GradientRoutingError(
    `gradient-routing: no backend could be loaded.\n  ${failures.join('\n  ')}`,
    'backend',
  );
}

/**
 * Picks and activates a TensorFlow.js backend in a browser: WebGPU on a real GPU, then WebGL,
 * then wasm (multi-threaded on a cross-origin isolated page, with the fast training kernels),
 * then cpu. Returns the backend's name. The GPU backends are optional packages: install them,
 * and in a bundled app import them once so that the bundler includes them.
 * In Node, use `selectNodeBackend` from `gradient-routing/node` instead: it also reaches WebGPU
 * through the `webgpu` package, runs wasm on every core and finds the installed wasm files.
 *
 * @throws `GradientRoutingError` when a forced backend cannot load, with what to install.
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-webgpu'; // optional: lets selectBackend() use the GPU
 * const backend = await selectBackend(); // 'webgpu' | 'webgl' | 'wasm' | 'cpu'
 * ```
 */
export function selectBackend(options: SelectBackendOptions = {}): Promise<BackendName> {
  return selectFrom(portableLoaders, options);
}
