import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { routeGradients } from '../../src/core/routing/route.js';

/**
 * Routes a dense layer's output `[6, 8]` with a per-example mask and backpropagates upstream
 * gradients full of NaN and ±Infinity. Checks, on whatever backend and kernels are active, that
 * the routed gradient is exactly +0 wherever the mask is 0 (and `mask · dy` elsewhere), and that
 * the weight columns fed only through blocked entries get exactly zero, not NaN.
 */
export function expectExactRouting(): void {
  const before = tf.memory().numTensors;
  const x = tf.randomNormal([6, 5], 0, 1, 'float32', 3);
  const w = tf.tidy(() => tf.variable(tf.randomNormal([5, 8], 0, 1, 'float32', 4)));
  // Examples 0-2 may update dims 0-3, examples 3-5 dims 4-7; one soft weight.
  const mask = tf.tensor2d(
    Array.from({ length: 48 }, (_, i) => {
      const [row, col] = [Math.floor(i / 8), i % 8];
      if (row === 0 && col === 1) return 0.5;
      return row < 3 === col < 4 ? 1 : 0;
    }),
    [6, 8],
  );
  const specials = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 2.5, -1];
  const upstream = tf.tensor2d(
    Array.from({ length: 48 }, (_, i) => {
      const [row, col] = [Math.floor(i / 8), i % 8];
      const blocked = row < 3 !== col < 4;
      // Poison only where the mask blocks; finite values where it lets gradient through.
      return blocked ? specials[i % specials.length]! : 1 + (i % 5);
    }),
    [6, 8],
  );
  const z = tf.matMul(x, w);
  const dz = tf.grad((v: tf.Tensor) => routeGradients(v, mask))(z, upstream);
  const m = mask.dataSync();
  const g = dz.dataSync();
  const u = upstream.dataSync();
  let blocked = 0;
  for (let i = 0; i < m.length; i++) {
    if (m[i] === 0) {
      blocked += 1;
      expect(Object.is(g[i], 0), `entry ${i}: ${g[i]}`).toBe(true);
    } else {
      expect(g[i]).toBe(Math.fround(u[i]! * m[i]!));
    }
  }
  expect(blocked).toBe(24);
  // Through the dense layer (the fast matMul kernels' transposed path): examples 3-5 poison
  // dims 0-3 and examples 0-2 dims 4-7, all blocked, so every weight gradient is finite.
  const dw = tf.grad((v: tf.Tensor) => routeGradients(tf.matMul(x, v), mask))(w, upstream);
  expect(Array.from(dw.dataSync()).every(Number.isFinite)).toBe(true);
  expect(Array.from(dw.dataSync()).some((value) => value !== 0)).toBe(true);
  tf.dispose([x, w, z, mask, upstream, dz, dw]);
  expect(tf.memory().numTensors).toBe(before);
}
