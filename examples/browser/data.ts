// MNIST from the page's own folder: nothing is fetched from another host. The build cuts each IDX
// file into gzip-compressed IDX chunks of a few thousand examples and lists them in
// mnist/index.json, so that a run fetches only the chunks that cover the examples it uses (the
// smoke preset: one training chunk), about a fifth of the raw bytes each.
import {
  type IdxArrays,
  type IdxData,
  type IdxType,
  type ImageDataset,
  imageDatasetFromIdx,
  parseIdx,
} from 'gradient-routing';

export type Split = 'train' | 'test';

const FOLDER = 'mnist/';
const MANIFEST = `${FOLDER}index.json`;

const FILES: Record<Split, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

const SPLIT_NAMES: Record<Split, string> = {
  train: 'the training digits',
  test: 'the test digits',
};

/** Called as a split's chunks arrive: what it is, and their compressed bytes so far of `total`. */
export type DownloadProgress = (what: string, received: number, total: number) => void;

/** A problem a person can act on, shown in the page as it is. */
export class PageError extends Error {
  override name = 'PageError';
}

/** One chunk of an IDX file as mnist/index.json lists it: an IDX file of `count` examples, gzipped. */
interface ChunkEntry {
  file: string;
  count: number;
  bytes: number;
}

/** The chunks of one IDX file, in order, and the examples they hold together. */
interface ChunkedFile {
  count: number;
  chunks: ChunkEntry[];
}

const REBUILD =
  'Build the page with "npm run demo:build" or "npm run demo", which write the MNIST chunks next to it.';

async function fetchOrExplain(file: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(file);
  } catch (error) {
    throw new PageError(
      `The MNIST file ${file} could not be downloaded from this page's server (${(error as Error).message}). Check that the server is still running.`,
    );
  }
  if (!response.ok) {
    throw new PageError(
      `The MNIST file ${file} is missing from this page's folder (the server answered ${response.status}). ${REBUILD}`,
    );
  }
  return response;
}

function isChunkedFile(value: unknown): value is ChunkedFile {
  const file = value as Partial<ChunkedFile> | undefined;
  return (
    typeof file?.count === 'number' &&
    Array.isArray(file.chunks) &&
    file.chunks.every(
      (c: Partial<ChunkEntry>) =>
        typeof c?.file === 'string' && typeof c.count === 'number' && typeof c.bytes === 'number',
    )
  );
}

let manifest: Promise<Record<string, ChunkedFile>> | undefined;

async function readManifest(): Promise<Record<string, ChunkedFile>> {
  const response = await fetchOrExplain(MANIFEST);
  const parsed = (await response.json().catch(() => undefined)) as
    | { files?: Record<string, unknown> }
    | undefined;
  const files = parsed?.files ?? {};
  for (const name of Object.values(FILES).flatMap((f) => [f.images, f.labels])) {
    if (!isChunkedFile(files[name])) {
      throw new PageError(`${MANIFEST} does not list the chunks of ${name}. ${REBUILD}`);
    }
  }
  return files as Record<string, ChunkedFile>;
}

function chunkedFile(name: string): Promise<ChunkedFile> {
  manifest ??= readManifest().catch((error: unknown) => {
    manifest = undefined; // a later run may find the file
    throw error;
  });
  return manifest.then((files) => files[name]!);
}

/** The leading chunks that hold the first `count` examples. */
function chunksFor(file: ChunkedFile, count: number): ChunkEntry[] {
  const picked: ChunkEntry[] = [];
  let covered = 0;
  for (const chunk of file.chunks) {
    if (covered >= count) break;
    picked.push(chunk);
    covered += chunk.count;
  }
  return picked;
}

/** Inflates gzip bytes with the browser's own decompressor. */
async function gunzip(bytes: Uint8Array, file: string): Promise<Uint8Array> {
  if (typeof DecompressionStream === 'undefined') {
    throw new PageError(
      'This browser cannot decompress gzip (it has no DecompressionStream), which the MNIST files need; use a current Chrome, Edge, Firefox or Safari.',
    );
  }
  const stream = new Blob([bytes as BlobPart])
    .stream()
    .pipeThrough(new DecompressionStream('gzip'));
  try {
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new PageError(
      `The MNIST file ${file} is damaged: it starts as gzip but does not inflate (${(error as Error).message}). ${REBUILD}`,
    );
  }
}

/** The first bytes of every gzip stream. */
const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Downloads one chunk and parses it with the library's IDX parser, which checks its header. A
 * server that sent the file with `Content-Encoding: gzip` has had the browser inflate it already:
 * those bytes are IDX as they are.
 */
async function downloadChunk(file: string): Promise<IdxData> {
  const response = await fetchOrExplain(file);
  const raw = new Uint8Array(await response.arrayBuffer());
  const gzipped = raw[0] === GZIP_MAGIC[0] && raw[1] === GZIP_MAGIC[1];
  return parseIdx(gzipped ? await gunzip(raw, file) : raw, { name: file });
}

/** Parsed chunks, kept so that a second run (or a loaded model) does not download them again. */
const parsedChunks = new Map<string, Promise<IdxData>>();

function chunk(file: string): Promise<IdxData> {
  let parsed = parsedChunks.get(file);
  if (parsed === undefined) {
    parsed = downloadChunk(file).catch((error: unknown) => {
      parsedChunks.delete(file); // a later run tries again
      throw error;
    });
    parsedChunks.set(file, parsed);
  }
  return parsed;
}

type TypedArray = IdxArrays[IdxType];

/**
 * The first `count` examples of consecutive chunks of one IDX file, as one {@link IdxData}. Every
 * chunk must have the element type and the example shape of the first.
 */
function joinChunks(name: string, chunks: IdxData[], count: number): IdxData {
  const [first] = chunks;
  if (first === undefined)
    throw new PageError(`${MANIFEST} lists no chunks of ${name}. ${REBUILD}`);
  const shape = first.dims.slice(1);
  const perExample = shape.reduce((product, size) => product * size, 1);
  const data = new (first.data.constructor as new (length: number) => TypedArray)(
    count * perExample,
  );
  let filled = 0;
  for (const [index, part] of chunks.entries()) {
    if (part.type !== first.type || part.dims.slice(1).join() !== shape.join()) {
      throw new PageError(
        `Chunk ${index} of ${name} holds ${part.type} [${part.dims.join(', ')}] but its first chunk ${first.type} [${first.dims.join(', ')}]: the chunks come from different files. ${REBUILD}`,
      );
    }
    const take = Math.min(part.data.length, data.length - filled);
    // Both arrays have the element type checked above; the cast only names one of them.
    (data as Float64Array).set((part.data as Float64Array).subarray(0, take), filled);
    filled += take;
  }
  if (filled < data.length) {
    throw new PageError(
      `The chunks of ${name} hold ${filled / perExample} examples, fewer than the ${count} that ${MANIFEST} promises. ${REBUILD}`,
    );
  }
  return { type: first.type, dims: [count, ...shape], data } as IdxData;
}

/**
 * One MNIST split scaled to [-1, 1] as the Node example scales it, cut to the first `limit`
 * examples when given: only the chunks that hold them are fetched.
 */
export async function loadMnistSplit(
  split: Split,
  limit: number | undefined,
  onProgress: DownloadProgress,
): Promise<ImageDataset> {
  const names = FILES[split];
  const plan = await Promise.all(
    [names.images, names.labels].map(async (name) => {
      const file = await chunkedFile(name);
      const count = Math.min(file.count, limit ?? file.count);
      return { name, count, chunks: chunksFor(file, count) };
    }),
  );
  const total = plan.reduce((sum, p) => sum + p.chunks.reduce((s, c) => s + c.bytes, 0), 0);
  let received = 0;
  onProgress(SPLIT_NAMES[split], received, total);
  const [images, labels] = await Promise.all(
    plan.map(async ({ name, count, chunks }) => {
      const parsed = await Promise.all(
        chunks.map(async ({ file, bytes }) => {
          const idx = await chunk(`${FOLDER}${file}`);
          received += bytes;
          onProgress(SPLIT_NAMES[split], received, total);
          return idx;
        }),
      );
      return joinChunks(name, parsed, count);
    }),
  );
  // The library checks that images and labels agree (type, rank, count) and scales the pixels.
  return imageDatasetFromIdx(
    images!,
    labels!,
    { range: [-1, 1], imageSize: [28, 28] },
    { images: `${FOLDER}${names.images}`, labels: `${FOLDER}${names.labels}` },
  );
}
