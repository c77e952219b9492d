import { GradientRoutingError } from '../../core/errors.js';
/**
 * 8-bit pixels, row-major from the top-left, `channels` bytes per pixel (1: gray, 4: RGBA).
 * The layout pngjs, canvases' `ImageData` (RGBA) and most image tools use.
 */
export interface PixelBuffer {
  /** Pixels per row. */
  readonly width: number;
  /** Rows of pixels. */
  readonly height: number;
  /** Bytes per pixel: 1 for gray, 4 for RGBA. */
  readonly channels: 1 | 4;
  /** `width * height * channels` bytes. */
  readonly data: Uint8Array;
}

/** Numbers of one or several images, e.g. from `tensor.dataSync()`. */
export type NumericArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint8Array
  | Uint8ClampedArray
  | readonly number[];

/**
 * One row of the grid: either all its images concatenated (e.g. `batch.dataSync()` of a
 * `[n, 28, 28]` tensor) or one array per image.
 */
export type GridRow = NumericArray | readonly NumericArray[];

/** Options of {@link imageGrid}. */
export interface ImageGridOptions {
  /** The rows top to bottom, e.g. `[originals, reconstructions, withTopHalfAblated]`. */
  readonly rows: readonly GridRow[];
  /** Width of one image in pixels, e.g. 28. */
  readonly imageWidth: number;
  /** Height of one image in pixels, e.g. 28. */
  readonly imageHeight: number;
  /** 1 (gray, default) or 3 (RGB, interleaved per pixel). */
  readonly imageChannels?: 1 | 3;
  /**
   * The values drawn black and white: `[0, 1]` (default) or `[-1, 1]` for tanh outputs. Values
   * outside are clamped, as reconstructions overshoot; NaN is drawn black.
   */
  readonly range?: readonly [number, number];
  /** Output pixels between images and around the grid. Default 2. */
  readonly padding?: number;
  /** Each image pixel becomes `scale × scale` output pixels (nearest neighbour). Default 1. */
  readonly scale?: number;
  /** Colour of the padding: a gray level or `[r, g, b]`, each 0..255. Default 128, visible against both black and white digits. */
  readonly background?: number | readonly [number, number, number];
  /** 4 (RGBA, default) or 1 (gray; only for gray images and a gray background). */
  readonly channels?: 1 | 4;
}

function checkInteger(value: number, name: string, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new GradientRoutingError(
      `gradient-routing: imageGrid got ${name} ${value}; pass a whole number of at least ${min}.`,
    );
  }
}

function checkByte(value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 255) {
    throw new GradientRoutingError(
      `gradient-routing: imageGrid got background level ${value}; pass whole numbers from 0 to 255.`,
    );
  }
}

function isImageList(row: GridRow): row is readonly NumericArray[] {
  return Array.isArray(row) && row.length > 0 && typeof row[0] !== 'number';
}

/** An image as a view into its row's numbers, so splitting a row copies nothing. */
interface ImageView {
  readonly values: NumericArray;
  readonly offset: number;
}

function splitRow(row: GridRow, imageSize: number, rowIndex: number): ImageView[] {
  if (isImageList(row)) {
    row.forEach((image, i) => {
      if (image.length !== imageSize) {
        throw new GradientRoutingError(
          `gradient-routing: imageGrid row ${rowIndex} image ${i} has ${image.length} values but imageWidth × imageHeight × imageChannels is ${imageSize}; check the image size options.`,
        );
      }
    });
    return row.map((values) => ({ values, offset: 0 }));
  }
  const flat = row as NumericArray;
  if (flat.length % imageSize !== 0) {
    throw new GradientRoutingError(
      `gradient-routing: imageGrid row ${rowIndex} has ${flat.length} values, not a multiple of imageWidth × imageHeight × imageChannels = ${imageSize}; check the image size options.`,
    );
  }
  return Array.from({ length: flat.length / imageSize }, (_, i) => ({
    values: flat,
    offset: i * imageSize,
  }));
}

/**
 * Lays out rows of images as one picture, e.g. MNIST originals above their reconstructions,
 * so that a whole batch can be compared at a glance. Rows may hold different numbers of
 * images; missing places show the background.
 *
 * @param options - The rows, image size, value range, padding and scale.
 * @returns Pixels ready for `encodePng`/`writePng` from `gradient-routing/node`, or for a
 *   canvas' `ImageData` in a browser (RGBA).
 *
 * @example
 * ```ts
 * const grid = imageGrid({
 *   rows: [originals.dataSync(), reconstructions.dataSync()],
 *   imageWidth: 28,
 *   imageHeight: 28,
 *   scale: 2,
 * });
 * ```
 */
export function imageGrid(options: ImageGridOptions): PixelBuffer {
  const { imageWidth, imageHeight } = options;
  const imageChannels = options.imageChannels ?? 1;
  const padding = options.padding ?? 2;
  const scale = options.scale ?? 1;
  const channels = options.channels ?? 4;
  const background = options.background ?? 128;
  const [low, high] = options.range ?? [0, 1];
  checkInteger(imageWidth, 'imageWidth', 1);
  checkInteger(imageHeight, 'imageHeight', 1);
  checkInteger(padding, 'padding', 0);
  checkInteger(scale, 'scale', 1);
  if (imageChannels !== 1 && imageChannels !== 3) {
    throw new GradientRoutingError(
      `gradient-routing: imageGrid got imageChannels ${imageChannels}; pass 1 (gray) or 3 (RGB).`,
    );
  }
  if (channels !== 1 && channels !== 4) {
    throw new GradientRoutingError(
      `gradient-routing: imageGrid got channels ${channels}; pass 4 (RGBA) or 1 (gray).`,
    );
  }
  if (!Number.isFinite(low) || !Number.isFinite(high) || !(low < high)) {
    throw new GradientRoutingError(
      `gradient-routing: imageGrid got range [${low}, ${high}]; pass finite [low, high] with low < high, e.g. [0, 1] or [-1, 1].`,
    );
  }
  const backgroundRgb =
    typeof background === 'number' ? [background, background, background] : [...background];
  if (backgroundRgb.length !== 3) {
    throw new GradientRoutingError(
      'gradient-routing: imageGrid got a background colour without three parts; pass a gray level or [r, g, b].',
    );
  }
  backgroundRgb.forEach(checkByte);
  const grayBackground = backgroundRgb.every((level) => level === backgroundRgb[0]);
  if (channels === 1 && (imageChannels === 3 || !grayBackground)) {
    throw new GradientRoutingError(
      'gradient-routing: imageGrid cannot draw colour into a gray (channels: 1) grid; use channels: 4.',
    );
  }
  if (options.rows.length === 0) {
    throw new GradientRoutingError(
      'gradient-routing: imageGrid got no rows; pass at least one row of images.',
    );
  }

  const imageSize = imageWidth * imageHeight * imageChannels;
  const rows = options.rows.map((row, i) => splitRow(row, imageSize, i));
  const columns = Math.max(...rows.map((row) => row.length));
  if (columns === 0) {
    throw new GradientRoutingError(
      'gradient-routing: imageGrid got only empty rows; pass at least one image.',
    );
  }
  const cellWidth = imageWidth * scale;
  const cellHeight = imageHeight * scale;
  const width = padding + columns * (cellWidth + padding);
  const height = padding + rows.length * (cellHeight + padding);
  const data = new Uint8Array(width * height * channels);

  const fill: number[] = channels === 1 ? [backgroundRgb[0] ?? 0] : [...backgroundRgb, 255];
  for (let offset = 0; offset < data.length; offset += channels) data.set(fill, offset);

  const span = high - low;
  const toByte = (value: number): number => {
    if (Number.isNaN(value)) return 0;
    const clamped = Math.min(high, Math.max(low, value));
    return Math.round(((clamped - low) / span) * 255);
  };
  const pixel = new Uint8Array(channels);
  rows.forEach((images, row) => {
    const top = padding + row * (cellHeight + padding);
    images.forEach((image, column) => {
      const left = padding + column * (cellWidth + padding);
      for (let y = 0; y < imageHeight; y++) {
        for (let x = 0; x < imageWidth; x++) {
          const source = image.offset + (y * imageWidth + x) * imageChannels;
          if (channels === 1) {
            pixel[0] = toByte(image.values[source] ?? Number.NaN);
          } else {
            for (let c = 0; c < 3; c++) {
              pixel[c] = toByte(image.values[source + (imageChannels === 3 ? c : 0)] ?? Number.NaN);
            }
            pixel[3] = 255;
          }
          for (let dy = 0; dy < scale; dy++) {
            const outRow = top + y * scale + dy;
            for (let dx = 0; dx < scale; dx++) {
              data.set(pixel, (outRow * width + left + x * scale + dx) * channels);
            }
          }
        }
      }
    });
  });
  return { width, height, channels, data };
}
