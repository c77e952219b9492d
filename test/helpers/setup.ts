import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { setMaskValidation } from '../../src/core/routing/route.js';

// Every test runs with mask validation on: a NaN or out-of-range mask, or an invalid label on
// device, fails the test that made it instead of silently changing a gradient.
setMaskValidation(true);

// The CPU backend prints a banner suggesting tfjs-node on its first tensor in Node, once per test
// file. In tfjs 4.22 the PROD flag only gates tfjs's own log and warn calls (IS_TEST, the other
// switch, also turns on per-kernel leak checks), so this silences the banner and nothing else.
tf.env().set('PROD', true);

// Property tests draw from one fixed seed, so a failure reproduces on every run and machine.
fc.configureGlobal({ seed: 20241004 });
