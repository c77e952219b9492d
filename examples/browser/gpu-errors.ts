// WebGPU reports a rejected command (validation), a failed allocation (out of memory) or a lost
// device only as an event on the device; the command itself is dropped and tfjs reads back
// whatever the buffers held. Unwatched, training goes on to a normal-looking result made of
// garbage. This watches the WebGPU backend's device and turns such an event into a page error.
import * as tf from '@tensorflow/tfjs-core';
import { PageError } from './data.js';

/** The parts of a GPUDevice used here (TypeScript's DOM library has no WebGPU types). */
interface WebGpuDevice extends EventTarget {
  readonly lost: Promise<{ reason: string; message: string }>;
}

/** A GPUUncapturedErrorEvent: `error` is a GPUValidationError, GPUOutOfMemoryError or GPUInternalError. */
interface UncapturedErrorEvent extends Event {
  readonly error: { readonly message: string };
}

/** The first failure of each device; a device that failed once stays failed. */
const failures = new WeakMap<WebGpuDevice, PageError>();
const watched = new WeakSet<WebGpuDevice>();

/** The device of the active backend when it is WebGPU (tfjs-backend-webgpu keeps it as `device`). */
function activeDevice(): WebGpuDevice | undefined {
  if (tf.getBackend() !== 'webgpu') return undefined;
  return (tf.backend() as unknown as { device?: WebGpuDevice }).device;
}

/** Dawn's messages run over several lines ("\n - While calling …"); the page shows one paragraph. */
function oneLine(message: string): string {
  return message.trim().replace(/\s*\n\s*/g, ' ');
}

function explain(event: UncapturedErrorEvent): PageError {
  const kind = event.error.constructor.name;
  const message = oneLine(event.error.message);
  if (kind === 'GPUOutOfMemoryError') {
    return new PageError(
      `The GPU ran out of memory (WebGPU: ${message}), so the page stopped: what follows would be computed on buffers that do not exist. Pick a smaller preset, close other tabs that use the GPU, or choose WebAssembly.`,
    );
  }
  return new PageError(
    `The GPU rejected a command (WebGPU ${kind}: ${message}), so the page stopped rather than go on with wrong numbers. Reload the page, or choose another backend (WebAssembly works everywhere).`,
  );
}

/**
 * Watches the active WebGPU backend's device (once per device; nothing when the backend is not
 * WebGPU) and calls `onFailure` with a plain-words error on its first failure while it is still
 * the active backend's device.
 */
export function watchWebGpuDevice(onFailure: (error: PageError) => void): void {
  const device = activeDevice();
  if (device === undefined || watched.has(device)) return;
  watched.add(device);
  const fail = (error: PageError) => {
    if (failures.has(device)) return;
    failures.set(device, error);
    if (activeDevice() === device) onFailure(error);
  };
  device.addEventListener('uncapturederror', (event) =>
    fail(explain(event as UncapturedErrorEvent)),
  );
  void device.lost.then((info) =>
    fail(
      new PageError(
        `The GPU device was lost (${info.reason || 'no reason given'}: ${oneLine(info.message)}), so the page stopped. Reload the page to get the GPU back, or choose another backend (WebAssembly works everywhere).`,
      ),
    ),
  );
}

/** The failure of the active backend's WebGPU device, if it had one. */
export function webGpuFailure(): PageError | undefined {
  const device = activeDevice();
  return device === undefined ? undefined : failures.get(device);
}
