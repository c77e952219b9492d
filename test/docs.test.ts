import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from './helpers/backends.js';

// Docs cannot rot: every ```ts block marked `runnable` in README.md and docs/*.md is run here,
// against the source, exactly as written.
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
  runnableBlocks(file).map((block) => ({ name: `${file}:${block.line}`, ...block })),
);

describe('runnable code blocks in the docs', () => {
  beforeAll(() => useBackend('cpu'));

  it('finds the README example', () => {
    expect(cases.some((c) => c.name.startsWith('README.md'))).toBe(true);
  });

  it.each(cases)('$name runs and leaks no tensor', async ({ name, code }) => {
    const file = path.join(generated, `${name.replace(/[^a-z0-9]+/gi, '-')}.ts`);
    writeFileSync(file, code);
    const before = tf.memory().numTensors;
    await import(/* @vite-ignore */ pathToFileURL(file).href);
    expect(tf.memory().numTensors).toBe(before);
  });
});
