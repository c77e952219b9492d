import { defineConfig } from 'vitest/config';
import base from './vitest.mutation.config.js';

// Mutation run for regions.ts and autoencoder.ts: the suites that exercise them.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [
      'test/masks.test.ts',
      'test/autoencoder.test.ts',
      'test/training.test.ts',
      'test/regions-autoencoder.test.ts',
    ],
    env: { GR_MUTATION: '1', GR_MUTATION_LIGHT: '1' },
  },
});
