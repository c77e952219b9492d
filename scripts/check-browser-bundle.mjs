// Proves that the browser-safe entry points run in a browser: bundles each with everything it
// reaches (tfjs included) for the browser platform, where any Node built-in fails to resolve.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';

const entries = { main: 'dist/index.js', experiments: 'dist/experiments.js' };
const outDir = mkdtempSync(path.join(tmpdir(), 'gr-browser-'));
try {
  for (const [name, entry] of Object.entries(entries)) await check(name, entry);
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
  const nodeImports = Object.values(result.metafile.inputs)
    .flatMap((input) => input.imports)
    .filter((imported) => imported.path.startsWith('node:') || imported.external);
  if (nodeImports.length > 0) {
    throw new Error(`${name} entry imports ${nodeImports.map((i) => i.path).join(', ')}`);
  }
  const kib = (statSync(outfile).size / 1024).toFixed(0);
  console.log(`browser bundle of the ${name} entry: ok (${kib} KiB, no Node built-ins)`);
}
