/**
 * Node-only report output: PNG encoding, chart rendering and atomic file writes. The heavy
 * packages (pngjs, vega, vega-lite, @resvg/resvg-js) are imported on first use, so users who
 * never write a report do not need them installed.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
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

/** An optional package and a literal `import()` of it (so bundlers and TypeScript see it). */
export interface OptionalPackage<T> {
  readonly name: string;
  readonly load: () => Promise<T>;
}

function quotedList(names: readonly string[]): string {
  const quoted = names.map((name) => `'${name}'`);
  return quoted.length < 2
    ? quoted.join('')
    : `${quoted.slice(0, -1).join(', ')} and ${quoted.at(-1)}`;
}

/**
 * @internal Loads several optional packages at once. When some are not installed, one error
 * names all of them, so a user installs them in one go instead of one per attempt.
 */
export async function loadOptionalPackages<T extends readonly unknown[]>(
  purpose: string,
  packages: { readonly [K in keyof T]: OptionalPackage<T[K]> },
): Promise<T> {
  const list = packages as readonly OptionalPackage<unknown>[];
  const settled = await Promise.allSettled(list.map((module) => module.load()));
  const missing: string[] = [];
  const causes: unknown[] = [];
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') return;
    if (!isModuleNotFound(outcome.reason, list[i]!.name)) throw outcome.reason;
    missing.push(list[i]!.name);
    causes.push(outcome.reason);
  });
  if (missing.length > 0) {
    const which =
      missing.length === 1
        ? `the optional package ${quotedList(missing)}, which is not installed`
        : `the optional packages ${quotedList(missing)}, which are not installed`;
    throw new GradientRoutingError(
      `gradient-routing: ${purpose} needs ${which}; run \`npm install ${missing.join(' ')}\`.`,
      'invalid-data',
      undefined,
      { cause: causes.length === 1 ? causes[0] : new AggregateError(causes) },
    );
  }
  return settled.map(
    (outcome) => (outcome as PromiseFulfilledResult<unknown>).value,
  ) as unknown as T;
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
  const [module] = await loadOptionalPackages<[T]>(purpose, [{ name, load }]);
  return module;
}

// CommonJS packages imported from ESM (or through a bundler's interop) may put their exports
// on `default`; take them from wherever they are.
function interop<T extends object>(module: T & { default?: unknown }): T {
  const inner = module.default;
  return inner !== null && typeof inner === 'object' ? { ...(inner as T), ...module } : module;
}

// The chart packages, each with a literal import() that bundlers and TypeScript can follow.
const VEGA_LITE = { name: 'vega-lite', load: () => import('vega-lite') };
const VEGA = { name: 'vega', load: () => import('vega') };
const RESVG = { name: '@resvg/resvg-js', load: () => import('@resvg/resvg-js') };

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
 * The family of the font shipped in the package's `fonts/` folder (Roboto, SIL OFL 1.1). Charts
 * and the reconstruction grid ask for it, and {@link svgToPng} always loads it, so figures keep
 * their text on machines without system fonts and look alike everywhere.
 */
export const FIGURE_FONT_FAMILY = 'Roboto';

/** The shipped font's files, found through the package's own exports (see package.json). */
const SHIPPED_FONTS = ['Roboto-Regular.ttf', 'Roboto-Bold.ttf'] as const;

/**
 * Paths of the fonts shipped with the package. Resolved as `gradient-routing/fonts/…` from this
 * module, which finds the package root from src/ (tests, tsx) and dist/ (installed) alike.
 * Empty where the package's files are not beside the code (bundled into one file): resvg
 * then uses the system fonts and `fontFiles`.
 */
export function shippedFontFiles(): string[] {
  const require = createRequire(import.meta.url);
  try {
    return SHIPPED_FONTS.map((file) => require.resolve(`gradient-routing/fonts/${file}`));
  } catch {
    return [];
  }
}

/**
 * Unquoted: resvg 2.6 drops a font list with quoted names. `sans-serif` is for other SVG
 * renderers (a browser showing the SVG of {@link renderVegaLiteToSvg}) that lack Roboto.
 */
const CHART_FONTS = `${FIGURE_FONT_FAMILY}, sans-serif`;

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
 * text is set in the shipped {@link FIGURE_FONT_FAMILY}.
 *
 * @param spec - E.g. from `groupedBarChartSpec` or `lineChartSpec`.
 * @returns The SVG document.
 */
export async function renderVegaLiteToSvg(spec: VegaLiteSpec): Promise<string> {
  const [vegaModule, vegaLiteModule] = await loadOptionalPackages('rendering charts', [
    VEGA,
    VEGA_LITE,
  ]);
  const vegaLite = interop(vegaLiteModule);
  const vega = interop(vegaModule);
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
   * Font files to load in addition to the shipped Roboto ({@link FIGURE_FONT_FAMILY}) and the
   * system fonts, e.g. for scripts Roboto lacks.
   */
  readonly fontFiles?: readonly string[];
  /** Directories of font files to load, as `fontFiles`. */
  readonly fontDirs?: readonly string[];
  /**
   * Whether to load the system's fonts too. Default true. With `false` (faster, and the same
   * picture on every machine) text is set in the shipped Roboto and `fontFiles`.
   */
  readonly loadSystemFonts?: boolean;
  /**
   * Family for text whose fonts are all missing, and for the generic `sans-serif`. Default:
   * the shipped {@link FIGURE_FONT_FAMILY}.
   */
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
  const [resvgModule] = await loadOptionalPackages('rendering charts to PNG', [RESVG]);
  const resvg = interop(resvgModule);
  const shipped = shippedFontFiles();
  // Without the shipped font, leave the families to resvg (its first font found).
  const family = options.defaultFontFamily ?? (shipped.length > 0 ? FIGURE_FONT_FAMILY : undefined);
  const renderer = new resvg.Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: options.background ?? 'white',
    logLevel: 'off',
    font: {
      loadSystemFonts: options.loadSystemFonts ?? true,
      fontFiles: [...shipped, ...(options.fontFiles ?? [])],
      ...(options.fontDirs ? { fontDirs: [...options.fontDirs] } : {}),
      ...(family === undefined ? {} : { defaultFontFamily: family, sansSerifFamily: family }),
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
  // All three up front, so that one error names every missing package.
  await loadOptionalPackages('writing chart PNGs', [VEGA, VEGA_LITE, RESVG]);
  const svg = await renderVegaLiteToSvg(spec);
  await writeFileAtomic(path, await svgToPng(svg, options));
}
