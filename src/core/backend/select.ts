import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { installFastKernelsFor } from './fast-kernels.js';

/** A backend this library knows how to load; `'auto'` picks the fastest that loads. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu' | 'webgl' | 'webgpu';
/** A backend to force, or `'auto'` to take the fastest that loads. */
export type BackendChoice = BackendName | 'auto';

/** Options of {@link selectBackend}. */
export interface SelectBackendOptions {
  /** Force one backend; `'auto'` (the default) tries the fastest available first. */
  backend?: BackendChoice;
  /**
   * Where tfjs-backend-wasm's `.wasm` files are served from (a URL prefix ending in `/`).
   * In Node the installed package's own files are used; in a browser your bundler or CDN decides.
   */
  wasmPaths?: string;
}

/**
 * How to make one backend available. `load` registers it with tfjs and resolves to true, or
 * resolves to false when the package that provides it is not installed.
 */
export interface BackendLoader {
  readonly name: BackendName;
  /** What the user should do when this backend was forced but could not load. */
  readonly installHint: string;
  /** Makes the backend available to tfjs; false when its package is not installed. */
  load(options: SelectBackendOptions): Promise<boolean>;
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

/** Loaders usable anywhere, browser included. */
export const portableLoaders: readonly BackendLoader[] = [
  {
    name: 'webgpu',
    installHint: 'install @tensorflow/tfjs-backend-webgpu and import it before selectBackend()',
    load: async () => tf.findBackendFactory('webgpu') !== null,
  },
  {
    name: 'webgl',
    installHint: 'install @tensorflow/tfjs-backend-webgl and import it before selectBackend()',
    load: async () => tf.findBackendFactory('webgl') !== null,
  },
  {
    name: 'wasm',
    installHint:
      'npm install @tensorflow/tfjs-backend-wasm (it ships its .wasm files; no download)',
    load: (options) =>
      loaded(async () => {
        const wasm = await import('@tensorflow/tfjs-backend-wasm');
        if (options.wasmPaths !== undefined) wasm.setWasmPaths(options.wasmPaths);
      }),
  },
  {
    name: 'cpu',
    installHint: 'npm install @tensorflow/tfjs-backend-cpu',
    load: () => loaded(() => import('@tensorflow/tfjs-backend-cpu')),
  },
];

/**
 * Activates a backend from `loaders`, in order, and returns its name. Shared by the browser
 * and Node entry points, which differ only in the loaders they offer.
 */
export async function selectFrom(
  loaders: readonly BackendLoader[],
  options: SelectBackendOptions = {},
): Promise<BackendName> {
  const choice = options.backend ?? 'auto';
  const candidates = choice === 'auto' ? loaders : loaders.filter((l) => l.name === choice);
  if (candidates.length === 0) {
    throw new GradientRoutingError(
      `gradient-routing: unknown backend '${choice}'. Choose one of: auto, ${loaders
        .map((l) => l.name)
        .join(', ')}.`,
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
          return loader.name;
        }
        reason = 'it is installed but failed to initialise';
      } else {
        reason = `it is not installed (${loader.installHint})`;
      }
    } catch (error) {
      reason = `loading it failed: ${(error as Error).message}`;
    }
    if (choice !== 'auto') {
      throw new GradientRoutingError(
        `gradient-routing: backend '${loader.name}' was requested but ${reason}.`,
      );
    }
    failures.push(`${loader.name}: ${reason}`);
  }
  throw new GradientRoutingError(
    `gradient-routing: no backend could be loaded.\n  ${failures.join('\n  ')}`,
  );
}

/**
 * Picks and activates a TensorFlow.js backend: the fastest that loads of webgpu and webgl
 * (when you have imported them), wasm, then cpu. Returns the backend's name.
 * In Node, import `selectBackend` from `gradient-routing/node` instead: it also tries
 * tfjs-node and finds the wasm files of the installed package.
 *
 * @throws When a forced backend cannot load, with what to install.
 */
export function selectBackend(options: SelectBackendOptions = {}): Promise<BackendName> {
  return selectFrom(portableLoaders, options);
}
