import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The browser tests: Node drives Debian's Chromium (playwright-core, no downloaded browser)
// against the demo page and a test page, both bundled from the source. Separate from `npm test`
// (whose include is test/**/*.test.ts): they need Chromium and take a few minutes.
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/browser/**/*.browser.ts'],
    globalSetup: ['test/browser/setup.ts'],
    environment: 'node',
    testTimeout: 300_000,
    hookTimeout: 120_000,
    // One Chromium at a time: the machine has two cores and software GL is CPU-bound.
    fileParallelism: false,
    pool: 'forks',
  },
});
