import { defineConfig } from 'vitest/config';
import base from './vitest.mutation.config.js';

// Mutation run for the experiment runners (split.ts, era.ts): the suites that call them in
// process. The CLI runs inside these files are skipped or never cover the mutant (child process).
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [
      'test/experiment.test.ts',
      'test/era.test.ts',
      'test/split-runner.test.ts',
      'test/era-runner.test.ts',
    ],
    env: { GR_MUTATION: '1', GR_MUTATION_LIGHT: '1' },
  },
});
