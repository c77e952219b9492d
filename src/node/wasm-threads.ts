import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { BackendWasm, getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../core/errors.js';

/*
 * Why this file exists: tfjs-backend-wasm ships a multi-threaded build but never uses it in Node.
 * Its loader hands Emscripten the pthread worker and the main script as Blob URLs, which Node's
 * worker_threads cannot open, so the WASM_HAS_MULTITHREAD_SUPPORT flag is hard-wired to false
 * there (tensorflow/tfjs#3830). Here the same build is started with both scripts on disk. Two
 * further details: the worker script is shipped only as a JS string (written to a temporary
 * directory for the start-up), and the C++ side sizes its thread pool as half the logical cores
 * (a guess at hyper-threading that leaves a 2-vCPU machine with one thread), so the core count
 * it sees is raised to honour the requested number of threads.
 */

const require = createRequire(import.meta.url);
const BINARY = 'tfjs-backend-wasm-threaded-simd';
/** tfjs pre-creates this many pthread workers; its thread pool can use no more. */
const MAX_THREADS = 8;

/** The Emscripten module of the threaded build, as far as this file and BackendWasm use it. */
interface ThreadedModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  tfjs?: Record<string, (...args: number[]) => number>;
  PThread?: { runningWorkers?: Array<{ unref?: () => void }> };
}

type ModuleFactory = (config: Record<string, unknown>) => Promise<ThreadedModule>;

/**
 * Writes the pthread worker script to a private temporary directory. The caller calls `remove`
 * once the workers have started; removal at exit is the fallback if startup fails.
 */
function writeWorkerScript(wasmOut: string): { file: string; remove: () => void } {
  const { wasmWorkerContents } = require(path.join(wasmOut, `${BINARY}.worker.js`)) as {
    wasmWorkerContents: string;
  };
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'gradient-routing-wasm-'));
  const removeDirectory = () => fs.rmSync(directory, { recursive: true, force: true });
  process.once('exit', removeDirectory);
  const file = path.join(directory, `${BINARY}.worker.js`);
  // The shipped string lost the escapes of its "\n" literals; tfjs restores them the same way.
  fs.writeFileSync(file, wasmWorkerContents.replace(/\n/g, '\\n'));
  const remove = () => {
    process.removeListener('exit', removeDirectory);
    removeDirectory();
  };
  return { file, remove };
}

async function instantiate(threads: number): Promise<ThreadedModule> {
  const wasmOut = path.join(
    path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')),
    '..',
    'wasm-out',
  );
  const factory = require(path.join(wasmOut, `${BINARY}.js`)) as ModuleFactory;
  const compiled = await WebAssembly.compile(fs.readFileSync(path.join(wasmOut, `${BINARY}.wasm`)));
  const worker = writeWorkerScript(wasmOut);
  const module = await factory({
    locateFile: (file: string) =>
      file.endsWith('.worker.js') ? worker.file : path.join(wasmOut, file),
    // Each worker evaluates the main script itself; a path is what Node can read.
    mainScriptUrlOrBlob: path.join(wasmOut, `${BINARY}.js`),
    instantiateWasm: (
      imports: { env: Record<string, unknown> },
      receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) => {
      imports.env.emscripten_num_logical_cores = () => 2 * threads;
      // Synchronous, so that a failure rejects the factory's promise instead of hanging it.
      const instance = new WebAssembly.Instance(compiled, imports as WebAssembly.Imports);
      receive(instance, compiled);
      return instance.exports;
    },
  });
  // Emscripten resolves only once its pool of MAX_THREADS workers has loaded the script, and the
  // thread pool never needs more workers than that, so the file is no longer needed.
  worker.remove();
  // The C entry points BackendWasm expects; tfjs's own loader attaches the same.
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  return module;
}

/** Options of {@link useWasmThreads}. */
export interface WasmThreadsOptions {
  /**
   * Threads for XNNPACK, 1 to 8. Defaults to the number of logical cores (at most 8). Matrix
   * products scale with real cores; on hyper-threaded cores, try half.
   */
  threads?: number;
}

/**
 * Makes the wasm backend multi-threaded in Node (tfjs leaves it single-threaded there). Call it
 * before the wasm backend is first used, then select wasm as usual (`selectNodeBackend({ backend:
 * 'wasm' })` or `tf.setBackend('wasm')`). Results are unchanged up to float32 rounding; a training
 * step of the paper's model runs about 1.6x faster on 2 cores.
 *
 * Experimental: it starts tfjs-backend-wasm's own threaded build with the pthread worker script
 * on disk, in a temporary directory removed once the workers have loaded it. Node only.
 *
 * @returns The number of threads the backend will use.
 * @throws If `threads` is not an integer from 1 to 8, or if the wasm backend already holds
 *   tensors (they would be lost).
 */
export function useWasmThreads(options: WasmThreadsOptions = {}): number {
  const available = typeof os.availableParallelism === 'function' ? os.availableParallelism() : 1;
  const threads = options.threads ?? Math.min(MAX_THREADS, Math.max(1, available));
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new GradientRoutingError(
      `gradient-routing: threads must be an integer from 1 to ${MAX_THREADS} (tfjs-backend-wasm's thread pool limit), got ${threads}.`,
    );
  }
  const current = tf.findBackend('wasm');
  if (current !== null && current.numDataIds() > 0) {
    throw new GradientRoutingError(
      "gradient-routing: useWasmThreads() must run before the wasm backend holds tensors, which a restart would lose. Call it before selectNodeBackend() or tf.setBackend('wasm').",
    );
  }
  if (tf.findBackendFactory('wasm') !== null) tf.removeBackend('wasm');
  setThreadsCount(threads);
  tf.registerBackend(
    'wasm',
    async () => {
      const module = await instantiate(threads);
      const backend = new BackendWasm(module as unknown as BackendWasm['wasm']);
      // The pool's threads wait for work forever; unreferenced, they no longer keep Node alive.
      for (const worker of module.PThread?.runningWorkers ?? []) worker.unref?.();
      return backend;
    },
    2,
  );
  return threads;
}

/** The threads the active wasm backend uses, or null when wasm is not initialised. */
export function wasmThreadsCount(): number | null {
  return tf.findBackend('wasm') === null ? null : getThreadsCount();
}
