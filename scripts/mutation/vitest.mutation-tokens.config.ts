import { defineConfig } from 'vitest/config';
import base from './vitest.mutation.config.js';

// Mutation run for the per-token masks, ablate, the dense stack, MLP expansion and the
// transformer (scripts/mutation/tokens-transformer.json): only the suites that exercise them.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [
      'test/token-masks.test.ts',
      'test/routing.test.ts',
      'test/transformer.test.ts',
      'test/expand.test.ts',
      'test/autoencoder.test.ts',
      'test/dense-stack.test.ts',
    ],
    env: { GR_MUTATION: '1', GR_MUTATION_LIGHT: '1' },
  },
});
