// A clean checkout passes its own checks (issue 9): the lockfile agrees with package.json, so
// `npm install` does not rewrite it, and .ci/run's test step works with or without CI set.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const root = process.cwd();
const run = promisify(execFile);
const scratch = mkdtempSync(path.join(tmpdir(), 'gr-repository-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const readJson = (file: string) => JSON.parse(readFileSync(path.join(root, file), 'utf8'));

describe('a clean checkout', () => {
  it("has a lockfile whose root entry is package.json's, optional peers included", () => {
    const manifest = readJson('package.json');
    const lock = readJson('package-lock.json');
    const entry = lock.packages[''];
    // npm install rewrites the lockfile when any of these differ (0.1.0's lacked the optional peers).
    expect(lock.name).toBe(manifest.name);
    expect(lock.version).toBe(manifest.version);
    for (const field of [
      'name',
      'version',
      'license',
      'engines',
      'dependencies',
      'devDependencies',
      'peerDependencies',
      'peerDependenciesMeta',
    ]) {
      expect({ field, value: entry[field] }).toEqual({ field, value: manifest[field] });
    }
  });

  it('keeps the mutation-test configs beside their Stryker configs, each pointing at one that exists', () => {
    expect(readdirSync(root).filter((name) => name.startsWith('vitest.mutation'))).toEqual([]);
    const strykerConfigs = [
      'stryker.config.json',
      ...readdirSync(path.join(root, 'scripts', 'mutation'))
        .filter((name) => name.endsWith('.json'))
        .map((name) => path.join('scripts', 'mutation', name)),
    ];
    for (const file of strykerConfigs) {
      const configFile: string = readJson(file).vitest.configFile;
      expect({ file, configFile }).toEqual({
        file,
        configFile: expect.stringMatching(
          /^scripts\/mutation\/vitest\.mutation[\w-]*\.config\.ts$/,
        ),
      });
      expect(existsSync(path.join(root, configFile)), `${file}: ${configFile}`).toBe(true);
    }
  });

  it('ignores no tracked file, so biome checks every source file and git adds new ones', async () => {
    // `reports/` (Stryker's output) once matched src/experiments/reports/ too: biome, which reads
    // .gitignore, skipped those sources, and `git add -A` would have left new files there behind.
    const { stdout } = await run(
      'git',
      ['ls-files', '--cached', '--ignored', '--exclude-standard'],
      {
        cwd: root,
      },
    );
    expect(stdout.trim().split('\n').filter(Boolean)).toEqual([]);
  });

  it(".ci/run's test step writes and reads its JSON report without CI set", async () => {
    // The step's two commands, exactly as .ci/run has them.
    const script = readFileSync(path.join(root, '.ci', 'run'), 'utf8');
    const testLine = /^npm test -- (.*)$/m.exec(script);
    const summaryLine = /^node -e "(.*)"$/m.exec(script);
    expect(testLine, '.ci/run runs `npm test -- <reporter flags>`').not.toBeNull();
    expect(summaryLine, ".ci/run prints the report's summary with node -e").not.toBeNull();
    // The same flags over one small test file, the report going to a scratch directory.
    const report = path.join(scratch, 'test-results.json');
    const flags = testLine![1]!.split(' ').map((flag) => flag.replace('test-results.json', report));
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => key !== 'CI' && !key.startsWith('VITEST')),
    );
    const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
    await run(process.execPath, [vitest, 'run', 'test/setup.test.ts', ...flags], {
      cwd: root,
      env,
    });
    // The summary line reads ./test-results.json: run it where the report is.
    const code = summaryLine![1]!.replace(/\\`/g, '`').replace(/\\\$/g, '$');
    const { stdout } = await run(process.execPath, ['-e', code], { cwd: scratch, env });
    expect(stdout.trim()).toBe('2 passed, 0 failed, 0 skipped');
  });
});
