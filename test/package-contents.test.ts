/**
 * The packed README works where npm users read it: every relative link and image of README.md,
 * and of every shipped document it leads to, names a file that `npm pack` puts in the tarball.
 * The file list comes from `npm pack --dry-run` (no build needed: no link points into dist/).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { brokenLinks, relativeLinks } from '../scripts/package-links.mjs';

const run = promisify(execFile);

describe('relativeLinks', () => {
  it('finds inline links, images, reference definitions and HTML, and skips code and URLs', () => {
    const markdown = [
      'See [concepts](docs/concepts.md#routing) and ![grid](docs/figures/grid.png "Grid").',
      '<img src="docs/figures/a.png" alt=""> [home](https://example.com) [top](#top)',
      '[ref]: docs/era.md',
      '`[not](a-link.md)`',
      '```ts',
      'const x = [1](2); // [no](inside-code.md)',
      '```',
      '[spaced](docs/with%20space.md)',
    ].join('\n');
    expect(relativeLinks(markdown)).toEqual([
      { line: 1, target: 'docs/concepts.md' },
      { line: 1, target: 'docs/figures/grid.png' },
      { line: 2, target: 'docs/figures/a.png' },
      { line: 3, target: 'docs/era.md' },
      { line: 8, target: 'docs/with space.md' },
    ]);
  });

  it('reports a link to a file outside the package, following links between documents', () => {
    const files: Record<string, string> = {
      'README.md': '[guide](docs/guide.md) ![fig](docs/figures/fig.png)',
      'docs/guide.md': '[example](../examples/run.ts) [back](../README.md) [src](../src/x.ts)',
    };
    const packed = new Set([
      'README.md',
      'docs/guide.md',
      'docs/figures/fig.png',
      'examples/run.ts',
    ]);
    expect(brokenLinks(packed, (file) => files[file]!)).toEqual(['docs/guide.md:1 -> ../src/x.ts']);
    packed.delete('docs/figures/fig.png');
    expect(brokenLinks(packed, (file) => files[file]!)).toEqual([
      'README.md:1 -> docs/figures/fig.png',
      'docs/guide.md:1 -> ../src/x.ts',
    ]);
  });
});

describe('the packed package', () => {
  let packed: Set<string>;

  beforeAll(async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      maxBuffer: 16 * 1024 * 1024,
    });
    const [result] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    packed = new Set(result.files.map((file) => file.path));
  });

  it('resolves every relative link and image of the README, and of the documents it links', () => {
    expect(packed.has('README.md')).toBe(true);
    expect(brokenLinks(packed, (file) => readFileSync(file, 'utf8'))).toEqual([]);
  });

  it('ships the figure font and its license, and no test or source files', () => {
    for (const file of ['fonts/Roboto-Regular.ttf', 'fonts/Roboto-Bold.ttf', 'fonts/OFL.txt']) {
      expect(packed).toContain(file);
    }
    expect([...packed].filter((file) => /^(src|test|bench|scripts)\//.test(file))).toEqual([]);
  });
});
