/**
 * Node-only report output: PNG encoding, chart rendering and atomic file writes. The heavy
 * packages (pngjs, vega, vega-lite, @resvg/resvg-js) are imported on first use, so users who
 * never write a report do not need them installed.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { GradientRoutingError } from '../core/errors.js';
import type { VegaLiteSpec } from '../experiments/reports/charts.js';
import type { PixelBuffer } from '../experiments/reports/grid.js';
import { toReportJson } from '../experiments/reports/json.js';

function isModuleNotFound(error: unknown, name: string): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  const notFound =
    code === 'ERR_MODULE_NOT_FOUND' ||
    code === 'MODULE_NOT_FOUND' ||
    /cannot find (package|module)|failed to (load|resolve)/i.test(error.message);
  return notFound && error.message.includes(name);
}

/**
 * @internal Awaits `load` (a literal `import()`, so bundlers and TypeScript see the package)
 * and turns "not installed" into an error that names the package to install.
 */
export async function loadOptional<T>(
  name: string,
  purpose: string,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isModuleNotFound(error, name)) {
      throw new GradientRoutingError(
        `gradient-routing: ${purpose} needs the optional package '${name}', which is not installed; run \`npm install ${name}\`.`,
        'invalid-data',
        undefined,
        { cause: error },
      );
    }
    throw error;
  }
}

// CommonJS packages imported from ESM (or through a bundler's interop) may put their exports
// on `default`; take them from wherever they are.
function interop<T extends object>(module: T & { default?: unknown }): T {
  const inner = module.default;
  return inner !== null && typeof inner === 'object' ? { ...(inner as T), ...module } : module;
}

async function loadPngjs() {
  const module = await loadOptional('pngjs', 'writing PNG files', () => import('pngjs'));
  return interop(module).PNG;
}

/**
 * Writes `data` to `path` atomically: into a temporary file in the same directory, flushed,
 * then renamed over `path`. Readers never see half a file, and a failed or interrupted write
 * leaves any previous file intact and no temporary file behind.
 *
 * @param path - Destination file; its directory must exist.
 * @param data - Text (written as UTF-8) or bytes.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const target = resolve(path);
  const directory = dirname(target);
  const directoryStat = await stat(directory).catch(() => undefined);
  if (!directoryStat?.isDirectory()) {
    throw new GradientRoutingError(
      `gradient-routing: cannot write ${target}: the directory ${directory} does not exist; create it first, e.g. with fs.mkdirSync(dir, { recursive: true }).`,
    );
  }
  const temporary = join(
    directory,
    `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  try {
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    const reason = error instanceof Error ? error.message : String(error);
    throw new GradientRoutingError(
      `gradient-routing: cannot write ${target} (${reason}); check that the path is a writable file location.`,
      'invalid-data',
      undefined,
      { cause: error },
    );
  }
}

/**
 * Writes a value as pretty JSON, atomically (see {@link writeFileAtomic}); typed arrays become
 * arrays and NaN becomes null, see {@link toReportJson}.
 *
 * @param path - Destination file; its directory must exist.
 * @param value - Plain data, e.g. `{ maeByDigit: { decoder: [...] }, losses: [...] }`.
 */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, toReportJson(value));
}

function checkPixels(image: PixelBuffer): void {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new GradientRoutingError(
      `gradient-routing: cannot encode a ${width}×${height} PNG; width and height must be whole numbers of at least 1.`,
    );
  }
  if (channels !== 1 && channels !== 4) {
    throw new GradientRoutingError(
      `gradient-routing: cannot encode pixels with ${channels} channels as PNG; pass 1 (gray) or 4 (RGBA).`,
    );
  }
  if (data.length !== width * height * channels) {
    throw new GradientRoutingError(
      `gradient-routing: the PNG pixels hold ${data.length} bytes but ${width}×${height}×${channels} needs ${width * height * channels}; pass a buffer from imageGrid or of that size.`,
    );
  }
}

/**
 * Encodes pixels as PNG with pngjs (an optional package, loaded on first use); gray buffers
 * stay gray, RGBA stays RGBA.
 *
 * @param image - Pixels, e.g. from `imageGrid`.
 * @returns The PNG file's bytes.
 */
export async function encodePng(image: PixelBuffer): Promise<Uint8Array> {
  checkPixels(image);
  const PNG = await loadPngjs();
  // pngjs colour types: 0 is gray, 6 is RGBA.
  const colorType = image.channels === 1 ? 0 : 6;
  const png = new PNG({ width: image.width, height: image.height });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  const bytes = PNG.sync.write(png, {
    colorType,
    inputColorType: colorType,
    inputHasAlpha: image.channels === 4,
  });
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Encodes pixels as PNG and writes them atomically (see {@link writeFileAtomic}).
 *
 * @param path - Destination `.png` file; its directory must exist.
 * @param image - Pixels, e.g. from `imageGrid`.
 */
export async function writePng(path: string, image: PixelBuffer): Promise<void> {
  await writeFileAtomic(path, await encodePng(image));
}

/**
 * Fonts tried in order for chart text. resvg maps the generic `sans-serif` to Arial and, when
 * that is missing (as on most Linux machines), falls back to the first font it finds, often
 * a serif; naming common sans fonts keeps charts alike across machines. Unquoted: resvg
 * 2.6 drops a font list with quoted names.
 */
const CHART_FONTS =
  'Helvetica Neue, Helvetica, Arial, Liberation Sans, DejaVu Sans, Noto Sans, Roboto, sans-serif';

function withDefaultFont(spec: VegaLiteSpec): VegaLiteSpec {
  const config = spec.config;
  if (config !== undefined && (config === null || typeof config !== 'object')) return spec;
  const given = (config ?? {}) as Record<string, unknown>;
  return given.font === undefined ? { ...spec, config: { ...given, font: CHART_FONTS } } : spec;
}

function refuseLoading(what: string): Promise<never> {
  return Promise.reject(
    new GradientRoutingError(
      `gradient-routing: the chart asks to load ${what}, but charts are rendered without network or file access; put the data in the spec as data.values.`,
    ),
  );
}

/**
 * Renders a Vega-Lite spec to SVG text in Node: compiled with vega-lite, drawn by a headless
 * Vega view. Needs the optional packages `vega` and `vega-lite`; uses no canvas and loads
 * nothing from the network or disk, so the data must be inline. When the spec sets no font,
 * a list of common sans fonts is used.
 *
 * @param spec - E.g. from `groupedBarChartSpec` or `lineChartSpec`.
 * @returns The SVG document.
 */
export async function renderVegaLiteToSvg(spec: VegaLiteSpec): Promise<string> {
  const purpose = 'rendering charts';
  const vegaLite = interop(await loadOptional('vega-lite', purpose, () => import('vega-lite')));
  const vega = interop(await loadOptional('vega', purpose, () => import('vega')));
  type TopLevelSpec = Parameters<typeof vegaLite.compile>[0];
  let compiled: ReturnType<typeof vegaLite.compile>;
  try {
    compiled = vegaLite.compile(withDefaultFont(spec) as unknown as TopLevelSpec);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new GradientRoutingError(
      `gradient-routing: vega-lite rejected the chart spec (${reason}); fix the spec, see https://vega.github.io/vega-lite/docs/.`,
      'invalid-data',
      undefined,
      { cause: error },
    );
  }
  // Vega logs a failed load and draws the chart without that data; refuse up front instead.
  const external = compiled.spec.data?.find((data) => 'url' in data);
  if (external) {
    throw new GradientRoutingError(
      `gradient-routing: the chart's data '${external.name}' is loaded from a URL, but charts are rendered without network or file access; put the data in the spec as data.values.`,
    );
  }
  const loader = {
    load: (uri: string) => refuseLoading(uri),
    sanitize: (uri: string) => refuseLoading(uri),
    http: (uri: string) => refuseLoading(uri),
    file: (filename: string) => refuseLoading(filename),
  };
  const view = new vega.View(vega.parse(compiled.spec), { renderer: 'none', loader });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Options of {@link svgToPng}. */
export interface SvgToPngOptions {
  /** Zoom factor: 2 (default) gives sharp text on high-density screens and in documents. */
  readonly scale?: number;
  /** Background behind transparent parts, any CSS colour. Default `'white'`. */
  readonly background?: string;
  /**
   * Font files to load in addition to (or, with `loadSystemFonts: false`, instead of) the
   * system fonts. Give one where the machine has no fonts, or text will be missing.
   */
  readonly fontFiles?: readonly string[];
  /** Directories of font files to load, as `fontFiles`. */
  readonly fontDirs?: readonly string[];
  /** Whether to load the system's fonts. Default true. */
  readonly loadSystemFonts?: boolean;
  /** Family for text whose fonts are all missing. Default: resvg's first font found. */
  readonly defaultFontFamily?: string;
}

/**
 * Rasterises SVG to PNG with @resvg/resvg-js (an optional package, loaded on first use).
 *
 * @param svg - The SVG document, e.g. from {@link renderVegaLiteToSvg}.
 * @param options - Scale, background and fonts.
 * @returns The PNG file's bytes.
 */
export async function svgToPng(svg: string, options: SvgToPngOptions = {}): Promise<Uint8Array> {
  const scale = options.scale ?? 2;
  if (!(Number.isFinite(scale) && scale > 0 && scale <= 16)) {
    throw new GradientRoutingError(
      `gradient-routing: svgToPng got scale ${scale}; pass a number above 0 and at most 16, e.g. 2.`,
    );
  }
  const resvg = interop(
    await loadOptional(
      '@resvg/resvg-js',
      'rendering charts to PNG',
      () => import('@resvg/resvg-js'),
    ),
  );
  const renderer = new resvg.Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: options.background ?? 'white',
    logLevel: 'off',
    font: {
      loadSystemFonts: options.loadSystemFonts ?? true,
      ...(options.fontFiles ? { fontFiles: [...options.fontFiles] } : {}),
      ...(options.fontDirs ? { fontDirs: [...options.fontDirs] } : {}),
      ...(options.defaultFontFamily ? { defaultFontFamily: options.defaultFontFamily } : {}),
    },
  });
  const bytes = renderer.render().asPng();
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Renders a Vega-Lite spec to a PNG file: {@link renderVegaLiteToSvg}, then {@link svgToPng},
 * written atomically. Needs `vega`, `vega-lite` and `@resvg/resvg-js`.
 *
 * @param path - Destination `.png` file; its directory must exist.
 * @param spec - E.g. from `groupedBarChartSpec` or `lineChartSpec`.
 * @param options - Scale, background and fonts of the PNG.
 */
export async function writeChartPng(
  path: string,
  spec: VegaLiteSpec,
  options: SvgToPngOptions = {},
): Promise<void> {
  const svg = await renderVegaLiteToSvg(spec);
  await writeFileAtomic(path, await svgToPng(svg, options));
}
