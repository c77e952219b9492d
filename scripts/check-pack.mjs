// The packaging check: what `npm pack` makes from a fresh clone works for a user.
//
// 1. Clones HEAD into a temporary folder (no dist/, nothing untracked), links this checkout's
//    node_modules into it and runs `npm pack` there, so the `prepack` script must build.
// 2. Checks the tarball: every entry's files, the figure font, and every relative link of the
//    packed README (and of the documents it leads to) resolving inside it.
// 3. Installs the tarball with its peers into a fresh ES module project and a fresh CommonJS
//    project (from npm's cache where it can: `npm ci` caches the tarballs), imports all three
//    entries in each and runs one routed gradient.
// 4. Type-checks a small consumer against the installed package under TypeScript's
//    moduleResolution node16 (ESM and CommonJS), bundler and node (node10, via typesVersions).
//
// Only committed changes are packed; the check says so when the working tree has others.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { brokenLinks } from './package-links.mjs';

const root = process.cwd();
const work = mkdtempSync(path.join(tmpdir(), 'gr-pack-'));
const started = Date.now();
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: 'pipe', maxBuffer: 64 * 1024 * 1024 });
const log = (message) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${message}`);
const installedVersion = (name) =>
  JSON.parse(readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')).version;

/** npm prints lifecycle script output before the JSON on stdout; take the JSON at the end. */
function packResult(stdout) {
  const start = stdout.lastIndexOf('\n[\n');
  return JSON.parse(start >= 0 ? stdout.slice(start + 1) : stdout)[0];
}

// Each entry point is used once: the routing op (main), a table formatter (experiments),
// backend selection and the shipped figure font (node).
const probe = (load) => `${load}
(async () => {
  const backend = await node.selectNodeBackend({ backend: 'cpu' });
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  const g = tf.grad((v) => tf.sum(lib.routeGradients(v, [[1, 0], [0, 1]])))(x);
  const table = experiments.formatTable(['a'], [[1]]).trim().length > 0;
  const fonts = node.shippedFontFiles().map((file) => file.slice(process.cwd().length + 1));
  console.log(JSON.stringify({ backend, grad: Array.from(g.dataSync()), table, fonts }));
})();
`;
const esmProbe = probe(`import * as lib from 'gradient-routing';
import * as experiments from 'gradient-routing/experiments';
import * as node from 'gradient-routing/node';
import * as tf from '@tensorflow/tfjs-core';`);
const cjsProbe = probe(`const lib = require('gradient-routing');
const experiments = require('gradient-routing/experiments');
const node = require('gradient-routing/node');
const tf = require('@tensorflow/tfjs-core');`);
const expected = JSON.stringify({
  backend: 'cpu',
  grad: [1, 0, 0, 1],
  table: true,
  fonts: ['Roboto-Regular.ttf', 'Roboto-Bold.ttf'].map((file) =>
    path.join('node_modules', 'gradient-routing', 'fonts', file),
  ),
});

// Types only: every import must resolve to real declarations (the annotations fail on `any`
// as much as on a wrong type, since `unknown` is not assignable to them).
const consumer = `import { type BackendName, type LabelRule, labelRule, routeGradients, sliceRegions } from 'gradient-routing';
import { formatTable } from 'gradient-routing/experiments';
import { FIGURE_FONT_FAMILY, type SvgToPngOptions, selectNodeBackend } from 'gradient-routing/node';

export const rule: LabelRule = labelRule(4, [{ labels: [0], region: [0, 2] }]);
export const route: typeof routeGradients = routeGradients;
export const slice: typeof sliceRegions = sliceRegions;
export const table: string = formatTable(['a'], [[1]]);
export const font: string = FIGURE_FONT_FAMILY;
export const options: SvgToPngOptions = { loadSystemFonts: false };
export const backend: Promise<BackendName> = selectNodeBackend();
// @ts-expect-error: a wrong option type must be an error, or the types resolved to any.
selectNodeBackend({ threads: 'many' });
`;
const typeChecks = [
  { app: 'esm', name: 'node16 (ES module)', module: 'node16', moduleResolution: 'node16' },
  { app: 'cjs', name: 'node16 (CommonJS)', module: 'node16', moduleResolution: 'node16' },
  { app: 'esm', name: 'bundler', module: 'esnext', moduleResolution: 'bundler' },
  { app: 'cjs', name: 'node (node10)', module: 'commonjs', moduleResolution: 'node' },
];

function makeApp(name, type, tarball) {
  const app = path.join(work, `${name}-app`);
  mkdirSync(app);
  writeFileSync(
    path.join(app, 'package.json'),
    `${JSON.stringify({ name: `${name}-app`, private: true, type }, null, 2)}\n`,
  );
  run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      tarball,
      `@tensorflow/tfjs-core@${installedVersion('@tensorflow/tfjs-core')}`,
      `@tensorflow/tfjs-layers@${installedVersion('@tensorflow/tfjs-layers')}`,
      `@types/node@${installedVersion('@types/node')}`,
    ],
    app,
  );
  return app;
}

try {
  const head = run('git', ['rev-parse', 'HEAD'], root).trim();
  if (run('git', ['status', '--porcelain', '--untracked-files=no'], root).trim() !== '') {
    log(`note: packing HEAD ${head.slice(0, 12)}; uncommitted changes are not in it`);
  }
  const clone = path.join(work, 'clone');
  run('git', ['clone', '--quiet', '--no-checkout', root, clone], work);
  run('git', ['checkout', '--quiet', '--detach', head], clone);
  if (existsSync(path.join(clone, 'dist'))) throw new Error('the fresh clone already has dist/');
  symlinkSync(path.join(root, 'node_modules'), path.join(clone, 'node_modules'), 'dir');

  log(`npm pack in a fresh clone of ${head.slice(0, 12)} (prepack builds)`);
  const packed = packResult(run('npm', ['pack', '--json', '--pack-destination', work], clone));
  const tarball = path.join(work, packed.filename);
  log(`packed ${packed.filename}: ${packed.entryCount} files, ${packed.size} bytes`);

  const unpacked = path.join(work, 'unpacked');
  mkdirSync(unpacked);
  run('tar', ['-xzf', tarball, '-C', unpacked], work);
  const files = new Set(packed.files.map((file) => file.path));
  const required = ['index', 'experiments', 'node'].flatMap((entry) =>
    ['.js', '.cjs', '.d.ts', '.d.cts'].map((extension) => `dist/${entry}${extension}`),
  );
  required.push('fonts/Roboto-Regular.ttf', 'fonts/Roboto-Bold.ttf', 'fonts/OFL.txt');
  const missing = required.filter((file) => !files.has(file));
  if (missing.length > 0) throw new Error(`the tarball lacks ${missing.join(', ')}`);
  const broken = brokenLinks(files, (file) =>
    readFileSync(path.join(unpacked, 'package', file), 'utf8'),
  );
  if (broken.length > 0) {
    throw new Error(`links of the packed docs that leave the package:\n  ${broken.join('\n  ')}`);
  }
  log('tarball: every entry, the font and every README link inside it');

  const apps = {
    esm: makeApp('esm', 'module', tarball),
    cjs: makeApp('cjs', 'commonjs', tarball),
  };
  log('installed into an ES module project and a CommonJS project');
  for (const [name, source] of [
    ['esm', esmProbe],
    ['cjs', cjsProbe],
  ]) {
    writeFileSync(path.join(apps[name], 'probe.js'), source);
    const out = run('node', ['probe.js'], apps[name]).trim().split('\n').at(-1);
    if (out !== expected) throw new Error(`${name} probe printed ${out}, expected ${expected}`);
    log(`${name} project imports all three entries: ${out}`);
  }

  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const check of typeChecks) {
    const app = apps[check.app];
    writeFileSync(path.join(app, 'consumer.ts'), consumer);
    const config = `tsconfig.${check.moduleResolution}.json`;
    writeFileSync(
      path.join(app, config),
      JSON.stringify({
        compilerOptions: {
          module: check.module,
          moduleResolution: check.moduleResolution,
          target: 'es2022',
          strict: true,
          noEmit: true,
          esModuleInterop: true,
          types: ['node'],
          skipLibCheck: true,
        },
        files: ['consumer.ts'],
      }),
    );
    try {
      run(process.execPath, [tsc, '-p', config], app);
    } catch (error) {
      throw new Error(`TypeScript, moduleResolution ${check.name}:\n${error.stdout}`);
    }
    log(`types resolve under moduleResolution ${check.name}`);
  }
  log('packaging check: ok');
} catch (error) {
  console.error(
    `packaging check failed: ${error.message}\n${error.stdout ?? ''}${error.stderr ?? ''}`,
  );
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
