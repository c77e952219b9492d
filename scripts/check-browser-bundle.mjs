// Proves that the browser-safe entry points run in a browser: bundles each with everything it
// reaches (tfjs included) for the browser platform, where any Node built-in fails to resolve.
// The in-browser demo page (examples/browser/) is bundled the same way, as `npm run demo:build`
// bundles it.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { bundleForBrowser } from './build-demo.mjs';

const entries = { main: 'dist/index.js', experiments: 'dist/experiments.js' };
const outDir = mkdtempSync(path.join(tmpdir(), 'gr-browser-'));
try {
  for (const [name, entry] of Object.entries(entries)) await check(name, entry);
  await checkDemoPage();
} catch (error) {
  const details = error.errors?.map((e) => `${e.location?.file ?? ''}: ${e.text}`).join('\n') ?? '';
  console.error(`browser bundle check failed: ${error.message}\n${details}`);
  process.exitCode = 1;
} finally {
  rmSync(outDir, { recursive: true, force: true });
}

async function check(name, entry) {
  const outfile = path.join(outDir, `${name}.js`);
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    outfile,
    logLevel: 'silent',
    metafile: true,
  });
  assertNoNodeImports(result.metafile, `${name} entry`);
  const kib = (statSync(outfile).size / 1024).toFixed(0);
  console.log(`browser bundle of the ${name} entry: ok (${kib} KiB, no Node built-ins)`);
}

function assertNoNodeImports(metafile, what) {
  // esbuild lists a TypeScript import used only for types as external (it elides it); the package
  // is bundled all the same through the file's other imports, so that is no external.
  const bundled = (specifier) =>
    Object.keys(metafile.inputs).some((file) => file.includes(`node_modules/${specifier}/`));
  const nodeImports = Object.values(metafile.inputs)
    .flatMap((input) => input.imports)
    .filter(
      (imported) =>
        imported.path.startsWith('node:') ||
        builtinModules.includes(imported.path) ||
        (imported.external && !bundled(imported.path)),
    );
  if (nodeImports.length > 0) {
    throw new Error(`${what} imports ${nodeImports.map((i) => i.path).join(', ')}`);
  }
}

async function checkDemoPage() {
  const outfile = path.join(outDir, 'demo.js');
  const metafile = await bundleForBrowser('examples/browser/main.ts', outfile);
  assertNoNodeImports(metafile, 'the demo page (examples/browser/main.ts)');
  const kib = (statSync(outfile).size / 1024).toFixed(0);
  console.log(`browser bundle of the demo page: ok (${kib} KiB minified, no Node built-ins)`);
}
