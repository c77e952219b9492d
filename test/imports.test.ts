import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const scratch = mkdtempSync(path.join(tmpdir(), 'gr-imports-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes a small src/ tree and runs the import-direction check on it. */
async function check(files: Record<string, string>): Promise<{ code: number; output: string }> {
  const root = mkdtempSync(path.join(scratch, 'tree-'));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
  try {
    const { stdout } = await run('node', ['scripts/check-imports.mjs', root]);
    return { code: 0, output: stdout };
  } catch (error) {
    const failed = error as { code: number; stderr: string };
    return { code: failed.code, output: failed.stderr };
  }
}

describe('the import-direction check', () => {
  it('passes on this repository', async () => {
    const { stdout } = await run('node', ['scripts/check-imports.mjs']);
    expect(stdout).toMatch(/^import direction: ok/);
  });

  it('accepts an import from an earlier layer', async () => {
    const result = await check({
      'core/routing/route.ts': "import { x } from '../errors.js';\n",
      'core/errors.ts': 'export const x = 1;\n',
    });
    expect(result).toEqual({ code: 0, output: expect.stringMatching(/ok \(1 imports/) });
  });

  it('rejects an import from a later layer, naming both files', async () => {
    const result = await check({
      'core/masks/table.ts': "import { Autoencoder } from '../models/autoencoder.js';\n",
      'core/models/autoencoder.ts': 'export class Autoencoder {}\n',
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain('core/masks/table.ts imports core/models/autoencoder.ts');
  });

  it('rejects a file in no layer', async () => {
    const result = await check({ 'misc/thing.ts': 'export const y = 2;\n' });
    expect(result.code).toBe(1);
    expect(result.output).toContain('misc/thing.ts: in no layer');
  });
});
