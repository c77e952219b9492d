import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { routeGradients } from '../src/routing/route.js';
import { TEST_BACKENDS, useBackend } from './helpers/backends.js';

describe.each(TEST_BACKENDS)('routeGradients on %s', (backend) => {
  it('smoke', async () => {
    await useBackend(backend);
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const g = tf.grad((v: tf.Tensor) =>
      tf.sum(
        tf.mul(
          routeGradients(v, [
            [1, 0],
            [0, 1],
          ]),
          tf.scalar(NaN),
        ),
      ),
    )(x);
    const values = Array.from(g.dataSync());
    expect(Object.is(values[1], 0)).toBe(true);
    expect(Number.isNaN(values[0])).toBe(true);
  });
});
