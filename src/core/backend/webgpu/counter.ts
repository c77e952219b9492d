import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../../errors.js';
import { WEBGPU, type WebGpuBackend, webGpuBackendOf } from './tfjs-webgpu.js';

/*
 * On a GPU a training step of a small model is bound by the CPU work of each dispatch (a uniform
 * buffer, a bind group, an encoder call) and of each upload of a host value (a staging buffer and
 * a copy), not by arithmetic. Counting them is the measure that does not depend on the machine,
 * so the counter wraps the three places of tfjs-backend-webgpu where that work happens:
 * `runWebGPUProgram` (one compute dispatch per call), `uploadToGPU` (a host array copied into a
 * GPU buffer, counted only when it really copies) and the queue's `submit`.
 */

/** What ran on the WebGPU backend while a counter was running. */
export interface WebGpuWorkCount {
  /** Compute programs dispatched (`runWebGPUProgram` calls), each one dispatch. */
  programs: number;
  /** Host arrays copied into GPU buffers: scalars made from plain numbers, new data, … */
  uploads: number;
  /** Bytes those uploads copied. */
  uploadedBytes: number;
  /** Command buffers submitted to the device queue. */
  submits: number;
  /** Programs by their class name (e.g. `BinaryOpProgram`, `MatMulPackedProgram`). */
  programsByName: Record<string, number>;
}

/** A running count; {@link WebGpuCounter.stop} ends it and returns what was counted. */
export interface WebGpuCounter {
  /** What has been counted so far (a copy). */
  readonly counts: WebGpuWorkCount;
  /** Stops counting and returns the final figures. Idempotent. */
  stop(): WebGpuWorkCount;
}

interface Wrapping {
  backend: WebGpuBackend;
  originals: Pick<WebGpuBackend, 'runWebGPUProgram' | 'uploadToGPU'> & {
    submit: WebGpuBackend['queue']['submit'];
  };
}

const running = new Set<WebGpuWorkCount>();
let wrapping: Wrapping | null = null;

function emptyCount(): WebGpuWorkCount {
  return { programs: 0, uploads: 0, uploadedBytes: 0, submits: 0, programsByName: {} };
}

function copyCount(count: WebGpuWorkCount): WebGpuWorkCount {
  return { ...count, programsByName: { ...count.programsByName } };
}

function currentWebGpuBackend(): WebGpuBackend {
  if (tf.getBackend() !== WEBGPU) {
    throw new GradientRoutingError(
      `countWebGpuWork counts WebGPU work, but the active backend is '${tf.getBackend()}'. ` +
        "Select WebGPU first (selectBackend({ backend: 'webgpu' }) or selectNodeBackend).",
      'backend',
    );
  }
  return webGpuBackendOf(tf.backend());
}

function wrap(backend: WebGpuBackend): Wrapping {
  const originals = {
    runWebGPUProgram: backend.runWebGPUProgram,
    uploadToGPU: backend.uploadToGPU,
    submit: backend.queue.submit,
  };
  backend.runWebGPUProgram = function (this: WebGpuBackend, program, ...rest) {
    // Every program has one (a class, or programClass's stand-in); the fallback is a plain object's.
    const name = program.constructor?.name ?? 'Object';
    for (const count of running) {
      count.programs += 1;
      count.programsByName[name] = (count.programsByName[name] ?? 0) + 1;
    }
    return originals.runWebGPUProgram.call(this, program, ...rest);
  };
  backend.uploadToGPU = function (this: WebGpuBackend, dataId) {
    // tfjs calls this for every input of every program; only data still on the host is copied.
    const data = this.tensorMap.get(dataId);
    if (data.resource == null && data.values != null) {
      const bytes = 4 * data.values.length;
      for (const count of running) {
        count.uploads += 1;
        count.uploadedBytes += bytes;
      }
    }
    originals.uploadToGPU.call(this, dataId);
  };
  const queue = backend.queue;
  queue.submit = (buffers) => {
    for (const count of running) count.submits += 1;
    originals.submit.call(queue, buffers);
  };
  return { backend, originals };
}

function unwrap({ backend, originals }: Wrapping): void {
  // Own properties were added on top of the prototype's methods: deleting them restores those.
  const own = backend as unknown as Record<string, unknown>;
  if (Object.getPrototypeOf(backend).runWebGPUProgram === originals.runWebGPUProgram) {
    delete own.runWebGPUProgram;
    delete own.uploadToGPU;
  } else {
    backend.runWebGPUProgram = originals.runWebGPUProgram;
    backend.uploadToGPU = originals.uploadToGPU;
  }
  const queue = backend.queue as unknown as Record<string, unknown>;
  if (Object.getPrototypeOf(backend.queue).submit === originals.submit) delete queue.submit;
  else backend.queue.submit = originals.submit;
}

/**
 * Starts counting the WebGPU backend's dispatches, uploads and queue submits. Counters may run
 * side by side (each sees everything that happens while it runs); the backend's methods are put
 * back when the last one stops. Creates no tensors.
 *
 * @throws `GradientRoutingError` (code `'backend'`) when the active backend is not WebGPU.
 * @example
 * ```ts
 * const counter = startWebGpuCounter();
 * const loss = step();
 * await loss.data();
 * const { programs, uploads } = counter.stop();
 * ```
 */
export function startWebGpuCounter(): WebGpuCounter {
  const backend = currentWebGpuBackend();
  if (wrapping !== null && wrapping.backend !== backend) {
    // The backend was replaced (e.g. released and selected again) while counters ran.
    unwrap(wrapping);
    running.clear();
    wrapping = null;
  }
  wrapping ??= wrap(backend);
  const count = emptyCount();
  running.add(count);
  let final: WebGpuWorkCount | null = null;
  return {
    get counts() {
      return copyCount(final ?? count);
    },
    stop() {
      if (final !== null) return copyCount(final);
      final = copyCount(count);
      running.delete(count);
      if (running.size === 0 && wrapping !== null) {
        unwrap(wrapping);
        wrapping = null;
      }
      return copyCount(final);
    },
  };
}

/**
 * Runs `fn` (sync or async) and counts the WebGPU work it causes: programs dispatched, host
 * arrays uploaded and command buffers submitted. The backend is restored afterwards, also when
 * `fn` throws. Work still queued inside tfjs when `fn` returns is submitted later and not counted
 * as a submit; read a result inside `fn` (`await t.data()`) to include it.
 *
 * @throws `GradientRoutingError` (code `'backend'`) when the active backend is not WebGPU.
 * @example
 * ```ts
 * const { result: loss, counts } = await countWebGpuWork(async () => {
 *   const loss = model.step(batch);
 *   await loss.data();
 *   return loss;
 * });
 * console.log(counts.programs, counts.uploads, counts.submits);
 * ```
 */
export async function countWebGpuWork<T>(
  fn: () => T | Promise<T>,
): Promise<{ result: T; counts: WebGpuWorkCount }> {
  const counter = startWebGpuCounter();
  try {
    const result = await fn();
    return { result, counts: counter.stop() };
  } finally {
    counter.stop();
  }
}
