import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import {
  type BackendChoice,
  type BackendLoader,
  type BackendName,
  noticeOf,
  portableLoaders,
  type SelectBackendOptions,
  selectFrom,
} from '../core/backend/select.js';
import { GradientRoutingError } from '../core/errors.js';
import { configuredWasmThreads, configureWasmThreads, defaultWasmThreads } from './wasm-threads.js';
import { prepareNodeWebGpu } from './webgpu.js';

const require = createRequire(import.meta.url);

/** The directory (with trailing separator) holding the installed tfjs-backend-wasm's .wasm files. */
export function installedWasmDirectory(): string {
  let entry: string;
  try {
    entry = require.resolve('@tensorflow/tfjs-backend-wasm');
  } catch {
    throw new GradientRoutingError(
      'gradient-routing: @tensorflow/tfjs-backend-wasm is not installed; run npm install @tensorflow/tfjs-backend-wasm.',
      'backend',
    );
  }
  return `${path.dirname(entry)}${path.sep}`;
}

function installed(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

const tensorflowLoader: BackendLoader = {
  name: 'tensorflow',
  installHint:
    'npm install @tensorflow/tfjs-node; its install script downloads libtensorflow, so it needs network access at install time',
  load: async () => {
    if (!installed('@tensorflow/tfjs-node')) return false;
    await import(/* @vite-ignore */ pathToFileURL(require.resolve('@tensorflow/tfjs-node')).href);
    return true;
  },
};

const webgpuLoader: BackendLoader = {
  name: 'webgpu',
  installHint:
    'npm install webgpu @tensorflow/tfjs-backend-webgpu (Dawn ships prebuilt; nothing is downloaded at run time)',
  load: async (options) => {
    if (!installed('webgpu') || !installed('@tensorflow/tfjs-backend-webgpu')) return false;
    await prepareNodeWebGpu({
      allowSoftware: options.backend === 'webgpu',
      onNotice: noticeOf(options),
    });
    return true;
  },
};

const wasmLoader: BackendLoader = {
  name: 'wasm',
  installHint: 'npm install @tensorflow/tfjs-backend-wasm (it ships its .wasm files; no download)',
  load: async (options) => {
    setWasmPaths(options.wasmPaths ?? installedWasmDirectory());
    configureWasmThreads({
      // An earlier useWasmThreads() or selection chose the threads unless this call does.
      threads: options.threads ?? configuredWasmThreads() ?? defaultWasmThreads(),
      onNotice: noticeOf(options),
    });
    return true;
  },
};

/** In the order automatic selection tries them. */
const nodeLoaders: readonly BackendLoader[] = [
  webgpuLoader,
  tensorflowLoader,
  wasmLoader,
  ...portableLoaders.filter((loader) => loader.name === 'cpu'),
];

/**
 * Every `backend` that {@link selectNodeBackend} accepts, `auto` first, then in the order
 * automatic selection tries them: for command lines and forms that must list exactly these.
 */
export const NODE_BACKEND_CHOICES: readonly BackendChoice[] = [
  'auto',
  ...new Set(nodeLoaders.map((loader) => loader.name)),
];

/**
 * Picks and activates a TensorFlow.js backend in Node, the fastest that loads:
 * 1. `webgpu` on a real GPU (Vulkan, Metal or D3D12), when the optional `webgpu` and
 *    `@tensorflow/tfjs-backend-webgpu` packages are installed;
 * 2. `tensorflow` (tfjs-node) when it is installed;
 * 3. `wasm` on every core (`threads` picks another number, `1` turns threads off), its .wasm
 *    files read from the installed package, with the fast training kernels;
 * 4. `cpu`.
 * Returns the backend's name. Force one with `{ backend: 'wasm' }` and so on; `{ backend:
 * 'webgpu' }` also runs on a software adapter (Mesa's llvmpipe), with a notice.
 *
 * Threads that cannot start (another tfjs-backend-wasm version, no SharedArrayBuffer, a worker
 * error) leave wasm on one thread after a one-line notice, never an error.
 *
 * @throws `GradientRoutingError` when a forced backend cannot load, saying what to
 *   install, or when `threads` is not an integer from 1 to 8.
 *
 * @example
 * ```ts
 * import { selectNodeBackend } from 'gradient-routing/node';
 * const backend = await selectNodeBackend(); // 'webgpu' | 'tensorflow' | 'wasm' | 'cpu'
 * await selectNodeBackend({ backend: 'wasm', threads: 1 }); // single-threaded wasm
 * ```
 */
export function selectNodeBackend(options: SelectBackendOptions = {}): Promise<BackendName> {
  return selectFrom(nodeLoaders, options);
}
