import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';

/**
 * `tensor.dataSync()` for the library's checks that must run inside synchronous code (a
 * gradient tape, a validation step). tfjs-backend-webgpu reads synchronously through
 * `OffscreenCanvas`, which Node lacks, so there it throws a bare `ReferenceError`; this turns
 * that into an error saying what is happening and what to do instead (`fix`).
 */
export function readSync(tensor: tf.Tensor, purpose: string, fix: string): ArrayLike<number> {
  try {
    return tensor.dataSync() as ArrayLike<number>;
  } catch (error) {
    if (error instanceof ReferenceError && error.message.includes('OffscreenCanvas')) {
      throw new GradientRoutingError(
        `${purpose} reads the tensor synchronously, which the ${tf.getBackend()} backend cannot do in Node (no OffscreenCanvas); ${fix}`,
        'backend',
        undefined,
        { cause: error },
      );
    }
    throw error;
  }
}
