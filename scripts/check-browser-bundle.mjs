// Proves that the main entry point runs in a browser: bundles dist/index.js with everything it
// reaches (tfjs included) for the browser platform, where any Node built-in fails to resolve.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';

const outDir = mkdtempSync(path.join(tmpdir(), 'gr-browser-'));
const outfile = path.join(outDir, 'bundle.js');
try {
  const result = await build({
    entryPoints: ['dist/index.js'],
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
    throw new Error(`browser bundle imports ${nodeImports.map((i) => i.path).join(', ')}`);
  }
  const kib = (statSync(outfile).size / 1024).toFixed(0);
  console.log(`browser bundle of the main entry: ok (${kib} KiB, no Node built-ins)`);
} catch (error) {
  const details = error.errors?.map((e) => `${e.location?.file ?? ''}: ${e.text}`).join('\n') ?? '';
  console.error(`browser bundle check failed: ${error.message}\n${details}`);
  process.exitCode = 1;
} finally {
  rmSync(outDir, { recursive: true, force: true });
}
