import { defineConfig } from 'vitest/config';
import base from './vitest.mutation.config.js';

// The faster mutation run for models, training and layers: without the experiment runner's
// suites (seconds per mutant). npx stryker run with "vitest": { "configFile": this file }.

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [
      'test/points.test.ts',
      'test/layer.test.ts',
      'test/io.test.ts',
      'test/autoencoder.test.ts',
      'test/training.test.ts',
      'test/node-entry.test.ts',
    ],
    env: { GR_MUTATION: '1', GR_MUTATION_LIGHT: '1' },
  },
});
