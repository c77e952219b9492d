import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (file: string) => fileURLToPath(new URL(`./src/${file}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Examples and docs import the package by name; tests run them against the source.
    alias: [
      { find: /^gradient-routing\/node$/, replacement: source('node/index.ts') },
      { find: /^gradient-routing\/experiments$/, replacement: source('experiments/index.ts') },
      { find: /^gradient-routing$/, replacement: source('index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/helpers/setup.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs keeps one global engine per process; files must not share it.
    pool: 'forks',
    // .ci/run asks for the JSON report on the command line, with or without CI set.
    reporters: ['default'],
  },
});
