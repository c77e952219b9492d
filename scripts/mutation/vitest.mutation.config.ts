import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

// The test files that exercise the code StrykerJS mutates (npm run test:mutation). Left out: the
// docs, report, data and backend-kernel suites, which cover none of it, and the CLI runs, whose
// child processes never see Stryker's active mutant (GR_MUTATION skips them).
export default defineConfig({
  ...base,
  // This file lives in scripts/mutation/; test paths are relative to the repository root.
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    ...base.test,
    include: [
      'test/routing.test.ts',
      'test/points.test.ts',
      'test/masks.test.ts',
      'test/layer.test.ts',
      'test/io.test.ts',
      'test/autoencoder.test.ts',
      'test/training.test.ts',
      'test/experiment.test.ts',
      'test/node-entry.test.ts',
    ],
    env: { GR_MUTATION: '1' },
  },
});
