// Packs the library, installs the tarball into a fresh project (from npm's cache where it can:
// `npm ci` caches tarballs but not the registry metadata a fresh install also needs), then imports
// every entry point from ESM and CommonJS and
// runs one routed gradient in each.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = process.cwd();
const work = mkdtempSync(path.join(tmpdir(), 'gr-pack-'));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: 'pipe' });

// Each entry point is used once: the routing op (main), a table formatter (experiments) and
// backend selection (node).
const probe = (load) => `${load}
const tf = lib.tf;
(async () => {
  const backend = await node.selectNodeBackend({ backend: 'cpu' });
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  const g = tf.grad((v) => tf.sum(lib.routeGradients(v, [[1, 0], [0, 1]])))(x);
  const table = experiments.formatTable(['a'], [[1]]).trim().length > 0;
  console.log(JSON.stringify({ backend, grad: Array.from(g.dataSync()), table }));
})();
`;

try {
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], root));
  const tarball = path.join(work, packed[0].filename);
  console.log(
    `packed ${packed[0].filename}: ${packed[0].entryCount} files, ${packed[0].size} bytes`,
  );
  const app = path.join(work, 'app');
  run('mkdir', ['-p', app]);
  writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "private": true }\n');
  run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      tarball,
      '@tensorflow/tfjs-core@4.22.0',
      '@tensorflow/tfjs-layers@4.22.0',
    ],
    app,
  );
  writeFileSync(
    path.join(app, 'probe.mjs'),
    probe(`import * as lib0 from 'gradient-routing'; import * as tf0 from '@tensorflow/tfjs-core';
import * as node from 'gradient-routing/node';
import * as experiments from 'gradient-routing/experiments';
const lib = { ...lib0, tf: tf0 };`),
  );
  writeFileSync(
    path.join(app, 'probe.cjs'),
    probe(`const lib = { ...require('gradient-routing'), tf: require('@tensorflow/tfjs-core') };
const node = require('gradient-routing/node');
const experiments = require('gradient-routing/experiments');`),
  );
  const expected = JSON.stringify({ backend: 'cpu', grad: [1, 0, 0, 1], table: true });
  for (const file of ['probe.mjs', 'probe.cjs']) {
    const out = run('node', [file], app).trim().split('\n').at(-1);
    if (out !== expected) throw new Error(`${file} printed ${out}, expected ${expected}`);
    console.log(`${file}: ${out}`);
  }
  console.log('packaging check: ok');
} catch (error) {
  console.error(
    `packaging check failed: ${error.message}\n${error.stdout ?? ''}${error.stderr ?? ''}`,
  );
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
