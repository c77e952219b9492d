// Types of build-demo.mjs, for the TypeScript browser tests that reuse it.
import type { Metafile } from 'esbuild';

export declare const packageAliases: Readonly<Record<string, string>>;
export declare const MNIST_FILES: readonly string[];
export declare const MNIST_CHUNK_SIZE: number;
export declare function bundleForBrowser(
  entry: string,
  outfile: string,
  options?: { minify?: boolean },
): Promise<Metafile>;
export declare function buildDemo(
  outDir: string,
  options?: { minify?: boolean },
): Promise<Metafile>;
