import fc from 'fast-check';
import { setMaskValidation } from '../../src/core/routing/route.js';

// Every test runs with mask validation on: a NaN or out-of-range mask, or an invalid label on
// device, fails the test that made it instead of silently changing a gradient.
setMaskValidation(true);

// Property tests draw from one fixed seed, so a failure reproduces on every run and machine.
fc.configureGlobal({ seed: 20241004 });
