// Serves the in-browser demo on this machine only, cross-origin isolated (COOP/COEP headers), so
// that tfjs-backend-wasm can use threads (SharedArrayBuffer needs isolation).
//
//   npm run demo                  builds demo-dist/ and serves it at http://127.0.0.1:8080/
//   npm run demo -- --port 9000   another port (0 picks a free one)

import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildDemo } from './build-demo.mjs';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  // The MNIST chunks: served as the gzip files they are (no Content-Encoding), and the page
  // inflates them itself, so that any static host serves them the same way.
  '.gz': 'application/gzip',
};

/** The headers that make a page cross-origin isolated (and so allowed SharedArrayBuffer). */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/**
 * Serves the files of `dir` on 127.0.0.1 (never another interface), with the isolation headers
 * unless `isolated` is false (as a plain static host would). Resolves to the running server and
 * its base URL once it listens.
 */
export function serveStatic(dir, port = 0, { isolated = true } = {}) {
  const base = path.resolve(dir);
  const headers = isolated ? ISOLATION_HEADERS : {};
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const relative = decodeURIComponent(url.pathname).replace(/\/$/, '/index.html');
    const file = path.join(base, relative);
    // Only files inside the served folder; `..` in the path cannot climb out.
    if (!file.startsWith(base + path.sep)) {
      response.writeHead(403, headers).end('forbidden');
      return;
    }
    let size;
    try {
      const stats = statSync(file);
      if (!stats.isFile()) throw new Error('not a file');
      size = stats.size;
    } catch {
      response.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      response.end(`not found: ${url.pathname}`);
      return;
    }
    response.writeHead(200, {
      ...headers,
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Length': size,
      'Cache-Control': 'no-cache',
    });
    if (request.method === 'HEAD') response.end();
    else createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: actual } = server.address();
      resolve({ server, url: `http://127.0.0.1:${actual}/` });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve-demo: --port needs a port number (0-65535), got '${values.port}'`);
    process.exit(2);
  }
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const outDir = path.join(root, 'demo-dist');
  await buildDemo(outDir);
  try {
    const { url } = await serveStatic(outDir, port);
    console.log(`demo at ${url} (cross-origin isolated; Ctrl-C stops it)`);
  } catch (error) {
    console.error(
      `serve-demo: cannot listen on 127.0.0.1:${port} (${error.message}); pick another with --port.`,
    );
    process.exit(1);
  }
}
