import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../../errors.js';

/*
 * WebGPU reports validation and out-of-memory errors asynchronously, as `uncapturederror`
 * events on the device, and by default only prints them: a command buffer that failed
 * validation is dropped, and tfjs goes on reading whatever its output buffers held. Training then
 * continues on garbage to a normal-looking result. This module turns those events (and the loss
 * of the device) into a GradientRoutingError at the next check, which the training loops make
 * once per step. Recording in a handler and throwing later keeps the check free of GPU syncs.
 */

/** The parts of a WebGPU `GPUDevice` read here (browsers and Dawn's Node bindings alike). */
export interface WebGpuDeviceLike {
  readonly limits: {
    readonly maxStorageBufferBindingSize: number;
    readonly maxBufferSize: number;
  };
  readonly lost?: Promise<{ readonly reason?: string; readonly message?: string }>;
  /** Where the watch listens for uncaptured errors, when the device has it (browsers, Dawn). */
  addEventListener?(type: 'uncapturederror', listener: (event: UncapturedErrorEvent) => void): void;
  /** The fallback handler slot, for devices without `addEventListener`. */
  onuncapturederror?: ((event: UncapturedErrorEvent) => void) | null;
}

/** WebGPU's `GPUUncapturedErrorEvent`, as far as it is read. */
interface UncapturedErrorEvent {
  readonly error?: { readonly message?: string; readonly constructor?: { readonly name?: string } };
}

/** What went wrong on a device: the first failure since the last check. */
interface GpuFailure {
  kind: 'validation' | 'out-of-memory' | 'internal' | 'lost';
  message: string;
}

interface Watch {
  failure: GpuFailure | null;
}

const watches = new WeakMap<WebGpuDeviceLike, Watch>();

/** The device of the active 'webgpu' backend, or null when another backend is active. */
export function activeWebGpuDevice(): WebGpuDeviceLike | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const device = (tf.backend() as unknown as { device?: WebGpuDeviceLike }).device;
  return device?.limits === undefined ? null : device;
}

/**
 * The largest number of bytes one tensor may hold on the active backend and still be bound by a
 * kernel: the WebGPU device's `maxStorageBufferBindingSize` (and `maxBufferSize`), or `Infinity`
 * on backends without such a limit.
 */
export function maxTensorBytes(): number {
  const device = activeWebGpuDevice();
  if (device === null) return Number.POSITIVE_INFINITY;
  return Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
}

function kindOf(event: UncapturedErrorEvent): GpuFailure['kind'] {
  const name = event.error?.constructor?.name ?? '';
  if (/OutOfMemory/i.test(name)) return 'out-of-memory';
  if (/Internal/i.test(name)) return 'internal';
  return 'validation';
}

/**
 * Starts recording the WebGPU errors of `device` (by default the active backend's), so that
 * {@link checkGpuErrors} can stop a run on them. `fit` and the probes call it themselves;
 * `selectNodeBackend` and `selectBackend` do when they pick WebGPU. Call it in a page that sets
 * the backend itself, to catch errors raised before training starts. Idempotent; returns false
 * when there is no WebGPU device to watch.
 */
export function watchGpuErrors(device: WebGpuDeviceLike | null = activeWebGpuDevice()): boolean {
  if (device === null) return false;
  if (watches.has(device)) return true;
  const watch: Watch = { failure: null };
  watches.set(device, watch);
  const record = (event: UncapturedErrorEvent) => {
    // The first error is the cause; the ones after it are usually its consequences
    // ("[Invalid CommandBuffer] is invalid due to a previous error").
    watch.failure ??= { kind: kindOf(event), message: event.error?.message ?? 'no message' };
  };
  if (typeof device.addEventListener === 'function') {
    device.addEventListener('uncapturederror', record);
  } else {
    // Chains to a handler the page may have set, rather than replacing it.
    const previous = device.onuncapturederror;
    device.onuncapturederror = (event) => {
      record(event);
      previous?.(event);
    };
  }
  void device.lost?.then((info) => {
    // Destroyed on purpose (releaseNodeWebGpu, a page unloading): nothing to report.
    if (info.reason === 'destroyed') return;
    watch.failure ??= { kind: 'lost', message: info.message ?? 'no message' };
  });
  return true;
}

const MIB = 1024 * 1024;

function mebibytes(bytes: number): string {
  return `${Number((bytes / MIB).toFixed(1))} MiB`;
}

function failureError(failure: GpuFailure, device: WebGpuDeviceLike): GradientRoutingError {
  const firstLine = failure.message.split('\n')[0]!.trim().replace(/\.$/, '');
  const { maxStorageBufferBindingSize, maxBufferSize } = device.limits;
  const limits =
    `this device binds at most ${mebibytes(maxStorageBufferBindingSize)} per storage buffer ` +
    `(maxStorageBufferBindingSize ${maxStorageBufferBindingSize}) and allocates at most ` +
    `${mebibytes(maxBufferSize)} per buffer (maxBufferSize ${maxBufferSize})`;
  const messages: Record<GpuFailure['kind'], string> = {
    validation:
      `WebGPU rejected a command, so its results would be garbage: ${firstLine} ` +
      `(${limits}). Keep large training data in chunks (toChunkedTensors, ChunkedRows), lower the ` +
      'batch size or layer widths so that no tensor exceeds the limit, or use another backend (wasm).',
    'out-of-memory':
      `the GPU ran out of memory: ${firstLine} (${limits}). Lower the batch size or layer ` +
      'widths, dispose tensors you no longer need, or use another backend (wasm).',
    internal:
      `WebGPU reported an internal error: ${firstLine} (${limits}). Lower the batch size, or ` +
      'use another backend (wasm).',
    lost:
      `the WebGPU device was lost: ${firstLine}. Results computed since are invalid; restart the ` +
      'run (in a browser, reload the page), or use another backend (wasm).',
  };
  return new GradientRoutingError(messages[failure.kind], 'gpu', failure.kind);
}

/**
 * Throws the first WebGPU error recorded since the last check, as a GradientRoutingError with
 * code `'gpu'` that names the device's buffer limits and what to do. Cheap (no GPU sync): the
 * training loops call it after every step. Starts watching the active device when nobody has.
 * Does nothing on other backends.
 *
 * @throws {@link GradientRoutingError} (code `'gpu'`, `value` the kind of error: `'validation'`,
 *   `'out-of-memory'`, `'internal'` or `'lost'`).
 */
export function checkGpuErrors(): void {
  const device = activeWebGpuDevice();
  if (device === null) return;
  const watch = watches.get(device);
  if (watch === undefined) {
    watchGpuErrors(device);
    return;
  }
  const { failure } = watch;
  if (failure === null) return;
  // Reported once: a later run on the same device starts clean (a lost device fails again).
  if (failure.kind !== 'lost') watch.failure = null;
  throw failureError(failure, device);
}
