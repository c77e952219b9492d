import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { buildDemo, bundleForBrowser } from '../../scripts/build-demo.mjs';
import { serveStatic } from '../../scripts/serve-demo.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where the demo is served (cross-origin isolated), ending in `/`. */
    baseUrl: string;
    /** The same files served without the isolation headers, as a plain static host would. */
    plainUrl: string;
  }
}

/**
 * Builds the demo as `npm run demo` does, plus the routing-checks test page under `checks/`, and
 * serves both from 127.0.0.1 with the isolation headers for the whole run.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'gr-browser-test-'));
  const here = path.dirname(fileURLToPath(import.meta.url));
  // Minified, as `npm run demo:build` writes it: the tests measure the bytes a run fetches.
  await buildDemo(dir);
  await bundleForBrowser(path.join(here, 'checks/main.ts'), path.join(dir, 'checks/checks.js'), {
    minify: false,
  });
  copyFileSync(path.join(here, 'checks/index.html'), path.join(dir, 'checks/index.html'));
  const { server, url } = await serveStatic(dir);
  const plain = await serveStatic(dir, 0, { isolated: false });
  project.provide('baseUrl', url);
  project.provide('plainUrl', plain.url);
  return async () => {
    await new Promise((resolve) => server.close(resolve));
    await new Promise((resolve) => plain.server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  };
}
