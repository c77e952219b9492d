import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { BackendWasm, getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { assertThreadsOption, MAX_WASM_THREADS } from '../core/backend/select.js';
import { GradientRoutingError } from '../core/errors.js';

/*
 * Why this file exists: tfjs-backend-wasm ships a multi-threaded build but never uses it in Node.
 * Its loader hands Emscripten the pthread worker and the main script as Blob URLs, which Node's
 * worker_threads cannot open, so the WASM_HAS_MULTITHREAD_SUPPORT flag is hard-wired to false
 * there (tensorflow/tfjs#3830). Here the same build is started with both scripts on disk. Further
 * details: the worker script is shipped only as a JS string (written to a temporary directory
 * for the start-up); the C++ side sizes its thread pool as half the logical cores (a guess at
 * hyper-threading that leaves a 2-vCPU machine with one thread), so the core count it sees is
 * raised to honour the requested number of threads; and the Emscripten script installs
 * process-wide `uncaughtException`/`unhandledRejection` handlers that rethrow, which this file
 * removes again so that loading a backend does not change how the whole process handles errors.
 *
 * Any failure to start (another tfjs-backend-wasm version or file layout, no SharedArrayBuffer,
 * a worker that fails to load, a wasm instantiation error) falls back to tfjs's own
 * single-threaded backend with a one-line notice: threads are a speed-up, never a requirement.
 */

const require = createRequire(import.meta.url);
const BINARY = 'tfjs-backend-wasm-threaded-simd';
/**
 * tfjs-backend-wasm versions whose threaded build this file was written and tested against. The
 * start-up depends on private details (file names, the worker script's export, the Emscripten
 * module's fields), so any other version falls back to one thread instead of guessing.
 */
const KNOWN_WASM_VERSIONS = /^4\.22\.\d+$/;

/** The Emscripten module of the threaded build, as far as this file and BackendWasm use it. */
interface ThreadedModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  tfjs?: Record<string, (...args: number[]) => number>;
  PThread?: EmscriptenThreads;
}

/** One pthread worker (a Node worker_threads Worker, with the handler Emscripten assigns). */
interface PthreadWorker {
  onerror?: (error: unknown) => void;
  unref?: () => void;
  terminate?: () => Promise<number> | undefined;
}

interface EmscriptenThreads {
  unusedWorkers?: PthreadWorker[];
  runningWorkers?: PthreadWorker[];
}

type ModuleFactory = (config: Record<string, unknown>) => Promise<ThreadedModule>;
type EmscriptenImports = { env: Record<string, unknown> };

/**
 * Replaceable parts of the threaded start-up, so that tests can make each kind of failure happen
 * on a machine where threads work. Not part of the public API.
 */
export interface ThreadedWasmSeams {
  /** The installed tfjs-backend-wasm version, as its package.json says. */
  wasmVersion?: () => string;
  /** Whether SharedArrayBuffer exists (threads share one wasm memory). */
  hasSharedMemory?: () => boolean;
  /** The pthread worker script to write to disk, from the one tfjs ships. */
  workerScript?: (shipped: string) => string;
}

/** Where the installed tfjs-backend-wasm keeps its Emscripten builds. */
function wasmOutDirectory(): string {
  return path.join(
    path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')),
    '..',
    'wasm-out',
  );
}

function installedWasmVersion(): string {
  const entry = require.resolve('@tensorflow/tfjs-backend-wasm');
  const manifest = path.join(path.dirname(entry), '..', 'package.json');
  return String((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version?: unknown }).version);
}

/** Why the threaded build cannot start here, found without starting it; null when it may. */
function threadedBuildProblem(seams: ThreadedWasmSeams): string | null {
  const hasSharedMemory = seams.hasSharedMemory ?? (() => typeof SharedArrayBuffer === 'function');
  if (!hasSharedMemory()) return 'this JavaScript runtime has no SharedArrayBuffer';
  const version = (seams.wasmVersion ?? installedWasmVersion)();
  if (!KNOWN_WASM_VERSIONS.test(version)) {
    return `@tensorflow/tfjs-backend-wasm ${version} is not a version this library knows how to start threaded (4.22.x)`;
  }
  const missing = ['.js', '.wasm', '.worker.js']
    .map((suffix) => path.join(wasmOutDirectory(), `${BINARY}${suffix}`))
    .filter((file) => !fs.existsSync(file));
  if (missing.length > 0) return `the threaded build's files are missing (${missing.join(', ')})`;
  return null;
}

/**
 * Writes the pthread worker script to a private temporary directory. The caller calls `remove`
 * once the workers have started; removal at exit is the fallback if startup fails.
 */
function writeWorkerScript(
  wasmOut: string,
  seams: ThreadedWasmSeams,
): { file: string; remove: () => void } {
  const { wasmWorkerContents } = require(path.join(wasmOut, `${BINARY}.worker.js`)) as {
    wasmWorkerContents: string;
  };
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'gradient-routing-wasm-'));
  const removeDirectory = () => fs.rmSync(directory, { recursive: true, force: true });
  process.once('exit', removeDirectory);
  const file = path.join(directory, `${BINARY}.worker.js`);
  // The shipped string lost the escapes of its "\n" literals; tfjs restores them the same way.
  const script = wasmWorkerContents.replace(/\n/g, '\\n');
  fs.writeFileSync(file, seams.workerScript ? seams.workerScript(script) : script);
  const remove = () => {
    process.removeListener('exit', removeDirectory);
    removeDirectory();
  };
  return { file, remove };
}

/**
 * Runs `start` and removes the process-wide error listeners it added (synchronously or while its
 * promise was pending): Emscripten's, which rethrow every error in the process.
 */
async function withoutNewProcessListeners<T>(start: () => T | Promise<T>): Promise<T> {
  const uncaught = new Set(process.listeners('uncaughtException'));
  const unhandled = new Set(process.listeners('unhandledRejection'));
  const removeNew = () => {
    for (const listener of process.listeners('uncaughtException')) {
      if (!uncaught.has(listener)) process.removeListener('uncaughtException', listener);
    }
    for (const listener of process.listeners('unhandledRejection')) {
      if (!unhandled.has(listener)) process.removeListener('unhandledRejection', listener);
    }
  };
  let pending: T | Promise<T>;
  try {
    pending = start();
  } finally {
    // At once as well: the module may reject before the caller's handlers see the error.
    removeNew();
  }
  try {
    return await pending;
  } finally {
    removeNew();
  }
}

/**
 * Runs `dispose` and puts back any process-wide error listener it removed. tfjs-backend-wasm's
 * Emscripten modules, when disposed, remove every `uncaughtException`/`unhandledRejection`
 * listener that existed when they were loaded (a filter in its post.js that always passes), which
 * would silently take away the handlers of the application or of a test runner.
 */
function keepingProcessListeners(dispose: () => void): void {
  const uncaught = process.listeners('uncaughtException');
  const unhandled = process.listeners('unhandledRejection');
  try {
    dispose();
  } finally {
    const uncaughtNow = new Set(process.listeners('uncaughtException'));
    for (const listener of uncaught) {
      if (!uncaughtNow.has(listener)) process.on('uncaughtException', listener);
    }
    const unhandledNow = new Set(process.listeners('unhandledRejection'));
    for (const listener of unhandled) {
      if (!unhandledNow.has(listener)) process.on('unhandledRejection', listener);
    }
  }
}

function workersOf(module: { PThread?: EmscriptenThreads }): PthreadWorker[] {
  return [...(module.PThread?.unusedWorkers ?? []), ...(module.PThread?.runningWorkers ?? [])];
}

/** Starts the threaded Emscripten module; rejects (never hangs or crashes) if a worker fails. */
async function startThreadedModule(
  threads: number,
  seams: ThreadedWasmSeams,
): Promise<ThreadedModule> {
  const wasmOut = wasmOutDirectory();
  const factory = require(path.join(wasmOut, `${BINARY}.js`)) as ModuleFactory;
  const compiled = await WebAssembly.compile(fs.readFileSync(path.join(wasmOut, `${BINARY}.wasm`)));
  const worker = writeWorkerScript(wasmOut, seams);
  // Emscripten's handler for a worker's 'error' event throws, which would end the process; each
  // worker's handler is replaced during the start-up so that an error rejects it instead.
  let rejectStart: (error: unknown) => void = () => {};
  const workerFailed = new Promise<never>((_, reject) => {
    rejectStart = reject;
  });
  const originalHandlers = new Map<PthreadWorker, PthreadWorker['onerror']>();
  // Emscripten uses this object as its Module, so the thread pool appears on it as `PThread`.
  const config: Record<string, unknown> & { PThread?: EmscriptenThreads } = {
    locateFile: (file: string) =>
      file.endsWith('.worker.js') ? worker.file : path.join(wasmOut, file),
    // Each worker evaluates the main script itself; a path is what Node can read.
    mainScriptUrlOrBlob: path.join(wasmOut, `${BINARY}.js`),
    instantiateWasm: (
      imports: EmscriptenImports,
      receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) => {
      imports.env.emscripten_num_logical_cores = () => 2 * threads;
      // Synchronous, so that a failure rejects the factory's promise instead of hanging it.
      const instance = new WebAssembly.Instance(compiled, imports as WebAssembly.Imports);
      // `receive` hands the compiled module to every pooled worker, setting its error handler.
      receive(instance, compiled);
      for (const pooled of workersOf(config)) {
        originalHandlers.set(pooled, pooled.onerror);
        pooled.onerror = (error: unknown) => rejectStart(error);
      }
      return instance.exports;
    },
  };
  try {
    const started = withoutNewProcessListeners(() => factory(config));
    started.catch(() => {}); // a worker failure wins the race below; this rejection is expected
    // Emscripten resolves only once its pool of MAX_WASM_THREADS workers has loaded the script.
    const module = await Promise.race([started, workerFailed]);
    for (const [pooled, handler] of originalHandlers) pooled.onerror = handler;
    return module;
  } catch (error) {
    await Promise.all(workersOf(config).map((pooled) => pooled.terminate?.()));
    throw error;
  } finally {
    // The thread pool never needs more workers than it has loaded, so the file has served.
    worker.remove();
  }
}

/** A BackendWasm on the threaded build, or an error saying why it could not start. */
async function threadedBackend(
  threads: number,
  seams: ThreadedWasmSeams,
): Promise<tf.KernelBackend> {
  const problem = threadedBuildProblem(seams);
  if (problem !== null) throw new Error(problem);
  const module = await startThreadedModule(threads, seams);
  // The C entry points BackendWasm expects; tfjs's own loader attaches the same.
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  setThreadsCount(threads);
  const backend = new BackendWasm(module as unknown as BackendWasm['wasm']);
  // The pool's threads wait for work forever; unreferenced, they no longer keep Node alive.
  for (const pooled of workersOf(module)) pooled.unref?.();
  return backend;
}

/** Marks the factories this file registers, to tell them from tfjs's own. */
const OURS = Symbol.for('gradient-routing.wasm-threads.factory');
type BackendFactory = () => tf.KernelBackend | Promise<tf.KernelBackend>;
type MarkedFactory = BackendFactory & { [OURS]?: number };

/** tfjs-backend-wasm's own factory (single-threaded in Node), kept to fall back on. */
let stockFactory: BackendFactory | null = null;
/** Whether the threaded build failed to start in this process (its notice has been given). */
let threadedStartFailed = false;
const WASM_PRIORITY = 2;

/**
 * The threads the registered wasm factory was configured with (by {@link useWasmThreads} or an
 * earlier selection), or null when tfjs's own factory is registered.
 */
export function configuredWasmThreads(): number | null {
  return (tf.findBackendFactory('wasm') as MarkedFactory | null)?.[OURS] ?? null;
}

/** The number of threads to use when none is asked for: every logical core, at most 8. */
export function defaultWasmThreads(): number {
  const cores =
    typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(MAX_WASM_THREADS, Math.max(1, cores));
}

function assertThreads(threads: number): number {
  assertThreadsOption(threads);
  return threads;
}

/** Options of {@link configureWasmThreads}. */
export interface ConfigureWasmThreadsOptions {
  /** Threads for XNNPACK, 1 to 8; 1 runs tfjs's own single-threaded build. */
  threads: number;
  /** Where the one-line notice goes when threads cannot start. Default: `console.warn`. */
  onNotice?: (message: string) => void;
  /** Test seams; see {@link ThreadedWasmSeams}. */
  seams?: ThreadedWasmSeams;
}

/** What {@link configureWasmThreads} did. */
export type WasmThreadsSetup = 'registered' | 'unchanged' | 'kept-running';

/**
 * Registers the 'wasm' backend with `threads` threads, to start on the next `tf.setBackend('wasm')`.
 * If the threaded build cannot start there, the backend starts single-threaded after one
 * notice. A wasm backend already running with another thread count is restarted when it holds
 * no tensors, and kept (with a notice) when it does, since a restart would lose them.
 */
export function configureWasmThreads(options: ConfigureWasmThreadsOptions): WasmThreadsSetup {
  const asked = assertThreads(options.threads);
  const notice = options.onNotice ?? ((message: string) => console.warn(message));
  // After one failed start (and its notice), later selections go straight to one thread; a
  // test that injects failures through `seams` always tries again.
  const threads = threadedStartFailed && options.seams === undefined ? 1 : asked;
  const current = tf.findBackend('wasm');
  const registered = tf.findBackendFactory('wasm') as MarkedFactory | null;
  // Seams (tests) always restart the backend, to exercise the start-up they replace.
  const restart = options.seams !== undefined;
  if (current !== null) {
    if (getThreadsCount() === threads && !restart) return 'unchanged';
    if (current.numDataIds() > 0) {
      notice(
        `gradient-routing: the wasm backend already runs with ${getThreadsCount()} thread(s) and holds tensors, which a restart would lose; keeping it. Select the backend before creating tensors to get ${threads}.`,
      );
      return 'kept-running';
    }
  } else if (registered?.[OURS] === threads && !restart) {
    return 'unchanged';
  }
  if (registered !== null && registered[OURS] === undefined) stockFactory = registered;
  if (stockFactory === null) {
    throw new GradientRoutingError(
      'the wasm backend is not registered; import @tensorflow/tfjs-backend-wasm before configuring its threads.',
      'backend',
    );
  }
  const fallback = stockFactory;
  if (registered !== null) keepingProcessListeners(() => tf.removeBackend('wasm'));
  const seams = options.seams ?? {};
  const factory: MarkedFactory =
    threads === 1
      ? async () => {
          setThreadsCount(1);
          return withoutNewProcessListeners(fallback);
        }
      : async () => {
          try {
            const backend = await threadedBackend(threads, seams);
            threadedStartFailed = false;
            return backend;
          } catch (error) {
            threadedStartFailed = true;
            notice(
              `gradient-routing: multi-threaded wasm could not start (${error instanceof Error ? error.message : String(error)}); using 1 thread.`,
            );
            setThreadsCount(1);
            return withoutNewProcessListeners(fallback);
          }
        };
  factory[OURS] = threads;
  tf.registerBackend('wasm', factory, WASM_PRIORITY);
  return 'registered';
}

/** Options of {@link useWasmThreads}. */
export interface WasmThreadsOptions {
  /**
   * Threads for XNNPACK, 1 to 8. Defaults to the number of logical cores (at most 8). Matrix
   * products scale with real cores; on hyper-threaded cores, try half.
   */
  threads?: number;
  /** Where the one-line notice goes when threads cannot start. Default: `console.warn`. */
  onNotice?: (message: string) => void;
}

/**
 * Sets the number of threads of the wasm backend in Node before it starts. `selectNodeBackend()`
 * already uses every core (its `threads` option picks another number); call this only when you
 * activate wasm yourself with `tf.setBackend('wasm')`.
 *
 * @returns The number of threads asked for. If the threaded build cannot start, the backend
 *   starts with 1 thread and says so once; {@link wasmThreadsCount} tells what it got.
 * @throws `GradientRoutingError` if `threads` is not an integer from 1 to 8, or if the
 *   wasm backend already runs with another number of threads and holds tensors (they would be
 *   lost).
 */
export function useWasmThreads(options: WasmThreadsOptions = {}): number {
  const threads = assertThreads(options.threads ?? defaultWasmThreads());
  const current = tf.findBackend('wasm');
  if (current !== null && current.numDataIds() > 0 && getThreadsCount() !== threads) {
    throw new GradientRoutingError(
      "gradient-routing: useWasmThreads() must run before the wasm backend holds tensors, which a restart would lose. Call it before selectNodeBackend() or tf.setBackend('wasm').",
      'backend',
    );
  }
  configureWasmThreads({ threads, ...(options.onNotice ? { onNotice: options.onNotice } : {}) });
  return threads;
}

/** The threads the active wasm backend uses, or null when wasm is not initialised. */
export function wasmThreadsCount(): number | null {
  return tf.findBackend('wasm') === null ? null : getThreadsCount();
}
