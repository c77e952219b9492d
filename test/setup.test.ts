// The suite-wide settings of test/helpers/setup.ts, checked: if the setup file were dropped from
// vitest.config.ts, or lost a line, every other test would still pass, just less strictly.
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maskValidationEnabled, routeGradients } from '../src/core/routing/route.js';
import { useBackend } from './helpers/backends.js';

describe('the test setup', () => {
  it('runs every test with mask validation on', async () => {
    expect(maskValidationEnabled()).toBe(true);
    await useBackend('cpu');
    const x = tf.ones([2]);
    const mask = tf.tensor1d([1, Number.NaN]);
    expect(() => routeGradients(x, mask)).toThrow(/weight NaN at flat index 1/);
    tf.dispose([x, mask]);
  });

  it('fixes the fast-check seed, so property tests draw the same cases on every run', () => {
    expect(fc.readConfigureGlobal().seed).toBe(20241004);
    const draw = () => fc.sample(fc.integer(), 8);
    expect(draw()).toEqual(draw());
  });
});
