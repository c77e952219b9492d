import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from './helpers/backends.js';

// Docs cannot rot: every ```ts block marked `runnable` in README.md and docs/*.md is type-checked
// (strict, the repository's tsconfig) and run here, against the source, exactly as written.
const root = process.cwd();
const documents = [
  'README.md',
  ...readdirSync(path.join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];
const generated = path.join(root, 'test', '.generated');
mkdirSync(generated, { recursive: true });
afterAll(() => rmSync(generated, { recursive: true, force: true }));

function runnableBlocks(file: string): { line: number; code: string }[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  const blocks: { line: number; code: string }[] = [];
  const pattern = /^```ts runnable\n([\s\S]*?)^```/gm;
  for (const match of text.matchAll(pattern)) {
    blocks.push({ line: text.slice(0, match.index).split('\n').length, code: match[1]! });
  }
  return blocks;
}

const cases = documents.flatMap((file) =>
  runnableBlocks(file).map((block) => ({
    name: `${file}:${block.line}`,
    file: path.join(generated, `${`${file}:${block.line}`.replace(/[^a-z0-9]+/gi, '-')}.ts`),
    ...block,
  })),
);

/** Type errors of every block at once (one tsc run), by generated file name. */
async function typeErrors(): Promise<Map<string, string[]>> {
  for (const { file, code } of cases) writeFileSync(file, code);
  // Extends the repository's config, so the package names resolve to the source as in tests.
  const config = path.join(generated, 'tsconfig.json');
  writeFileSync(
    config,
    JSON.stringify({
      extends: '../../tsconfig.json',
      include: ['./*.ts'],
      compilerOptions: { noEmit: true },
    }),
  );
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const output = await promisify(execFile)(process.execPath, [
    tsc,
    '-p',
    config,
    '--pretty',
    'false',
  ])
    .then(({ stdout }) => stdout)
    .catch((error: { stdout?: string }) => error.stdout ?? String(error));
  const errors = new Map<string, string[]>();
  for (const line of output.split('\n')) {
    const match = /^(.*?\.ts)\(\d+,\d+\): error/.exec(line);
    if (match === null) continue;
    const name = path.basename(match[1]!);
    errors.set(name, [...(errors.get(name) ?? []), line]);
  }
  return errors;
}

describe('runnable code blocks in the docs', () => {
  let errors: Map<string, string[]>;
  beforeAll(async () => {
    await useBackend('cpu');
    errors = await typeErrors();
  });

  it('finds the README example', () => {
    expect(cases.some((c) => c.name.startsWith('README.md'))).toBe(true);
  });

  it('the README says the package is ESM-first and shows the CommonJS form, with real names', async () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    expect(readme).toMatch(/The package is ESM-first/);
    expect(readme).toMatch(/top-level `await`/);
    const block = /^```js\n([\s\S]*?require\('gradient-routing'\)[\s\S]*?)^```/m.exec(readme);
    expect(block, 'a ```js block that requires gradient-routing').not.toBeNull();
    const entries: Record<string, string> = {
      'gradient-routing': 'src/index.ts',
      'gradient-routing/node': 'src/node/index.ts',
      'gradient-routing/experiments': 'src/experiments/index.ts',
    };
    const required = [...block![1]!.matchAll(/const \{([^}]*)\} = require\('([^']+)'\)/g)];
    expect(required.map((r) => r[2])).toEqual(['gradient-routing', 'gradient-routing/node']);
    for (const [, names, entry] of required) {
      const exports = await import(
        /* @vite-ignore */ pathToFileURL(path.join(root, entries[entry!]!)).href
      );
      for (const name of names!.split(',').map((n) => n.trim())) {
        expect(typeof exports[name], `${entry} exports ${name}`).toBe('function');
      }
    }
  });

  it('the type check catches a type error in a block', async () => {
    // The check must bite: a block that indexes a union without narrowing fails it.
    const bad = path.join(generated, 'zz-deliberately-wrong.ts');
    writeFileSync(
      bad,
      "import * as tf from '@tensorflow/tfjs-core';\nconst x = tf.zeros([2, 2]).arraySync();\nexport const first = x[0]![0];\n",
    );
    const found = await typeErrors();
    rmSync(bad);
    expect(found.get('zz-deliberately-wrong.ts')?.join('\n')).toMatch(/error TS/);
  });

  it.each(cases)('$name type-checks under strict', ({ file }) => {
    expect(errors.get(path.basename(file)) ?? []).toEqual([]);
  });

  it.each(cases)('$name runs and leaks no tensor', async ({ file, code }) => {
    writeFileSync(file, code);
    const before = tf.memory().numTensors;
    await import(/* @vite-ignore */ pathToFileURL(file).href);
    expect(tf.memory().numTensors).toBe(before);
  });
});
