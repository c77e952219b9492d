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

/** The entry file of package `name`, or undefined when it is not installed. */
function resolvedEntry(name: string, resolve: (name: string) => string): string | undefined {
  try {
    return resolve(name);
  } catch {
    return undefined;
  }
}

function installed(name: string): boolean {
  return resolvedEntry(name, (module) => require.resolve(module)) !== undefined;
}

/**
 * The builds of tfjs-node, in the order tried: the CUDA build first, as it is the faster where
 * it is installed (Linux with an NVIDIA GPU). Both register the backend `tensorflow`.
 */
export const TENSORFLOW_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/**
 * @internal The loader of the `tensorflow` backend: imports the first of
 * {@link TENSORFLOW_PACKAGES} that `resolve` finds (tests pass their own resolver, as
 * tfjs-node-gpu cannot be installed everywhere).
 */
export function tensorflowLoader(
  resolve: (name: string) => string = (name) => require.resolve(name),
): BackendLoader {
  return {
    name: 'tensorflow',
    installHint:
      'npm install @tensorflow/tfjs-node, or @tensorflow/tfjs-node-gpu for CUDA on Linux; their install scripts download libtensorflow, so they need network access at install time',
    load: async () => {
      for (const name of TENSORFLOW_PACKAGES) {
        const entry = resolvedEntry(name, resolve);
        if (entry === undefined) continue;
        await import(/* @vite-ignore */ pathToFileURL(entry).href);
        return true;
      }
      return false;
    },
  };
}

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
  tensorflowLoader(),
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
 * 2. `tensorflow` when `@tensorflow/tfjs-node-gpu` (CUDA) or `@tensorflow/tfjs-node` is
 *    installed, the GPU build first;
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
