import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type BackendLoader,
  type BackendName,
  portableLoaders,
  type SelectBackendOptions,
  selectFrom,
} from '../core/backend/select.js';
import { GradientRoutingError } from '../core/errors.js';

const require = createRequire(import.meta.url);

/** The directory (with trailing separator) holding the installed tfjs-backend-wasm's .wasm files. */
export function installedWasmDirectory(): string {
  let entry: string;
  try {
    entry = require.resolve('@tensorflow/tfjs-backend-wasm');
  } catch {
    throw new GradientRoutingError(
      'gradient-routing: @tensorflow/tfjs-backend-wasm is not installed; run npm install @tensorflow/tfjs-backend-wasm.',
    );
  }
  return `${path.dirname(entry)}${path.sep}`;
}

const tensorflowLoader: BackendLoader = {
  name: 'tensorflow',
  installHint:
    'npm install @tensorflow/tfjs-node; its install script downloads libtensorflow, so it needs network access at install time',
  load: async () => {
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      return false;
    }
    await import(/* @vite-ignore */ pathToFileURL(require.resolve('@tensorflow/tfjs-node')).href);
    return true;
  },
};

const nodeLoaders: readonly BackendLoader[] = [
  tensorflowLoader,
  ...portableLoaders
    .filter((loader) => loader.name === 'wasm' || loader.name === 'cpu')
    .map((loader) =>
      loader.name === 'wasm'
        ? {
            ...loader,
            load: (options: SelectBackendOptions) =>
              loader.load({ ...options, wasmPaths: options.wasmPaths ?? installedWasmDirectory() }),
          }
        : loader,
    ),
];

/**
 * Picks and activates a TensorFlow.js backend in Node: tfjs-node when it is installed, else
 * wasm (its .wasm files read from the installed package, no network), else cpu.
 * Returns the backend's name. Force one with `{ backend: 'wasm' }` and so on.
 *
 * @throws When a forced backend cannot load, saying what to install.
 *
 * @example
 * ```ts
 * import { selectNodeBackend } from 'gradient-routing/node';
 * const backend = await selectNodeBackend(); // 'tensorflow' | 'wasm' | 'cpu'
 * ```
 */
export function selectNodeBackend(options: SelectBackendOptions = {}): Promise<BackendName> {
  return selectFrom(nodeLoaders, options);
}
