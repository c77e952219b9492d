import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PNG } from 'pngjs';
import * as vl from 'vega-lite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  groupedBarChartSpec,
  lineChartSpec,
  type VegaLiteSpec,
} from '../src/experiments/reports/charts.js';
import { imageGrid, type PixelBuffer } from '../src/experiments/reports/grid.js';
import { toReportJson } from '../src/experiments/reports/json.js';
import { formatSeriesTable, formatTable, seriesTable } from '../src/experiments/reports/table.js';
import {
  encodePng,
  FIGURE_FONT_FAMILY,
  loadOptional,
  loadOptionalPackages,
  renderVegaLiteToSvg,
  shippedFontFiles,
  svgToPng,
  writeChartPng,
  writeFileAtomic,
  writeJson,
  writePng,
} from '../src/node/render.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function decodePng(bytes: Uint8Array): PNG {
  return PNG.sync.read(Buffer.from(bytes));
}

/** Pixels darker than mid-gray (text; bars are coloured, grid lines light) in rows [top, bottom). */
function darkPixels(png: PNG, rows: { top: number; bottom: number }): number {
  let dark = 0;
  for (let y = rows.top; y < rows.bottom; y++) {
    for (let x = 0; x < png.width; x++) {
      const i = (y * png.width + x) * 4;
      const [r, g, b] = [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
      if (Math.max(r, g, b) < 100) dark++;
    }
  }
  return dark;
}

/** Collects vega-lite's warnings, so that a spec that is silently wrong fails the test. */
class WarningCollector {
  readonly warnings: string[] = [];
  level(): number;
  level(_: number): this;
  level(value?: number): number | this {
    return value === undefined ? 0 : this;
  }
  error(...args: readonly unknown[]): this {
    throw new Error(args.map(String).join(' '));
  }
  warn(...args: readonly unknown[]): this {
    this.warnings.push(args.map(String).join(' '));
    return this;
  }
  info(): this {
    return this;
  }
  debug(): this {
    return this;
  }
}

function compileWarnings(spec: VegaLiteSpec): string[] {
  const logger = new WarningCollector();
  vl.compile(spec as unknown as vl.TopLevelSpec, { logger });
  return logger.warnings;
}

function countMatches(text: string, pattern: RegExp): number {
  return text.match(pattern)?.length ?? 0;
}

/** A gray grid's pixels as one array per pixel row, so an expectation looks like the image. */
function pixelRows({ width, data }: PixelBuffer): number[][] {
  return Array.from({ length: data.length / width }, (_, y) =>
    Array.from(data.subarray(y * width, (y + 1) * width)),
  );
}

describe('imageGrid', () => {
  const grayPadded = { padding: 1, channels: 1 } as const;

  it('places images row by row with padding and background (gray)', () => {
    const grid = imageGrid({
      ...grayPadded,
      rows: [
        [
          [0, 1, 1, 0],
          [1, 1, 1, 1],
        ],
        [[0, 0, 0, 0]],
      ],
      imageWidth: 2,
      imageHeight: 2,
      background: 7,
    });
    expect(grid).toMatchObject({ width: 7, height: 7, channels: 1 });
    const B = 7;
    const edge = Array(7).fill(B);
    expect(pixelRows(grid)).toEqual([
      edge,
      [B, 0, 255, B, 255, 255, B],
      [B, 255, 0, B, 255, 255, B],
      edge,
      [B, 0, 0, B, B, B, B],
      [B, 0, 0, B, B, B, B],
      edge,
    ]);
  });

  it('maps the range to 0..255, clamps outside values and draws NaN black', () => {
    const grid = imageGrid({
      rows: [[-2, -1, -0.5, 0, 0.5, 1, 5, Number.NaN]],
      imageWidth: 8,
      imageHeight: 1,
      range: [-1, 1],
      padding: 0,
      channels: 1,
    });
    // (v + 1) / 2 * 255, rounded: -0.5 → 63.75, 0 → 127.5, 0.5 → 191.25.
    expect(Array.from(grid.data)).toEqual([0, 0, 64, 128, 191, 255, 255, 0]);
  });

  it('splits a flat row into images and upscales each pixel to a block', () => {
    const upscaled = { ...grayPadded, imageWidth: 1, imageHeight: 2, scale: 2, background: 9 };
    const flat = imageGrid({ ...upscaled, rows: [new Float32Array([0, 1, 1, 0])] });
    expect(flat).toMatchObject({ width: 7, height: 6, channels: 1 });
    const B = 9;
    const edge = Array(7).fill(B);
    expect(pixelRows(flat)).toEqual([
      edge,
      [B, 0, 0, B, 255, 255, B],
      [B, 0, 0, B, 255, 255, B],
      [B, 255, 255, B, 0, 0, B],
      [B, 255, 255, B, 0, 0, B],
      edge,
    ]);
    const listed = imageGrid({
      ...upscaled,
      rows: [[new Float32Array([0, 1]), new Float32Array([1, 0])]],
    });
    expect(listed).toEqual(flat);
  });

  it('writes opaque RGBA, gray images as equal r, g, b and RGB images as given', () => {
    const gray = imageGrid({
      rows: [[0.2]],
      imageWidth: 1,
      imageHeight: 1,
      padding: 1,
      background: [10, 20, 30],
    });
    expect(gray).toMatchObject({ width: 3, height: 3, channels: 4 });
    const at = (x: number, y: number) =>
      Array.from(gray.data.slice((y * 3 + x) * 4, (y * 3 + x + 1) * 4));
    expect(at(0, 0)).toEqual([10, 20, 30, 255]);
    expect(at(1, 1)).toEqual([51, 51, 51, 255]);
    const color = imageGrid({
      rows: [[0, 0.5, 1]],
      imageWidth: 1,
      imageHeight: 1,
      imageChannels: 3,
      padding: 0,
    });
    expect(Array.from(color.data)).toEqual([0, 128, 255, 255]);
  });

  it('rejects images of the wrong size, bad ranges and colour in a gray grid', () => {
    expect(() => imageGrid({ rows: [[0, 1, 2]], imageWidth: 2, imageHeight: 1 })).toThrow(
      /gradient-routing: imageGrid row 0 has 3 values, not a multiple of .* = 2/,
    );
    expect(() => imageGrid({ rows: [[[0], [0, 1]]], imageWidth: 1, imageHeight: 1 })).toThrow(
      /row 0 image 1 has 2 values/,
    );
    expect(() => imageGrid({ rows: [[0]], imageWidth: 1, imageHeight: 1, range: [1, 1] })).toThrow(
      /low < high/,
    );
    expect(() =>
      imageGrid({
        rows: [[0, 0, 0]],
        imageWidth: 1,
        imageHeight: 1,
        imageChannels: 3,
        channels: 1,
      }),
    ).toThrow(/use channels: 4/);
    expect(() => imageGrid({ rows: [], imageWidth: 1, imageHeight: 1 })).toThrow(/no rows/);
    expect(() => imageGrid({ rows: [[0]], imageWidth: 1, imageHeight: 1, scale: 1.5 })).toThrow(
      /scale 1.5/,
    );
  });
});

describe('encodePng', () => {
  it('round-trips RGBA pixels through pngjs', async () => {
    const grid = imageGrid({
      rows: [
        [new Float32Array([0, 0.25, 0.5, 0.75, 1, 0.1])],
        [new Float32Array([1, 0, 1, 0, 1, 0])],
      ],
      imageWidth: 3,
      imageHeight: 2,
      padding: 1,
      scale: 2,
      background: [200, 0, 100],
    });
    const bytes = await encodePng(grid);
    expect(Array.from(bytes.slice(0, 8))).toEqual(PNG_SIGNATURE);
    const decoded = decodePng(bytes);
    expect([decoded.width, decoded.height]).toEqual([grid.width, grid.height]);
    expect(new Uint8Array(decoded.data)).toEqual(grid.data);
  });

  it('keeps gray pixels gray and decodes to equal channels', async () => {
    const gray = {
      width: 3,
      height: 2,
      channels: 1 as const,
      data: Uint8Array.from([0, 50, 100, 150, 200, 255]),
    };
    const decoded = decodePng(await encodePng(gray));
    expect(decoded.width).toBe(3);
    expect(decoded.height).toBe(2);
    const expected = Array.from(gray.data).flatMap((level) => [level, level, level, 255]);
    expect(Array.from(decoded.data)).toEqual(expected);
  });

  it('rejects a buffer whose size does not match', async () => {
    await expect(
      encodePng({ width: 2, height: 2, channels: 4, data: new Uint8Array(15) }),
    ).rejects.toThrow(/15 bytes but 2×2×4 needs 16/);
  });
});

describe('formatTable', () => {
  it('pads columns, right-aligns numbers and escapes pipes', () => {
    const table = formatTable(
      ['name', 'MAE', 'note'],
      [
        ['decoder', 0.12345, 'a|b'],
        ['top', 1.5],
      ],
      { digits: 3 },
    );
    expect(table).toBe(
      [
        '| name    |   MAE | note |',
        '| :------ | ----: | :--- |',
        '| decoder | 0.123 | a\\|b |',
        '| top     | 1.500 |      |',
      ].join('\n'),
    );
  });

  it('honours explicit alignments and a custom number format', () => {
    const table = formatTable(['a', 'b'], [[1, 'x']], {
      align: ['center', 'right'],
      format: (value) => `#${value}`,
    });
    expect(table).toBe(['|  a  |   b |', '| :-: | --: |', '| #1  |   x |'].join('\n'));
  });

  it('rejects rows longer than the headers', () => {
    expect(() => formatTable(['a'], [[1, 2]])).toThrow(/row 0 has 2 cells but there are 1 headers/);
  });
});

describe('seriesTable and formatSeriesTable', () => {
  const series = { low: [1, 2], high: [4, 2] };

  it('puts labels in rows with a mean row and ratios of means', () => {
    const text = formatSeriesTable({
      series,
      labels: [3, 7],
      cornerTitle: 'digit',
      ratios: [{ numerator: 'high', denominator: 'low' }],
      digits: 2,
    });
    expect(text).toBe(
      [
        '| digit |  low | high | high/low |',
        '| :---- | ---: | ---: | -------: |',
        '| 3     | 1.00 | 4.00 |     4.00 |',
        '| 7     | 2.00 | 2.00 |     1.00 |',
        // Ratio of the means (3 / 1.5), not the mean of the ratios (2.5).
        '| mean  | 1.50 | 3.00 |     2.00 |',
      ].join('\n'),
    );
  });

  it('puts labels in columns with a mean column', () => {
    expect(
      seriesTable({
        series,
        labelsAs: 'columns',
        ratios: [{ numerator: 'low', denominator: 'high', name: 'r' }],
      }),
    ).toEqual({
      headers: ['series', '0', '1', 'mean'],
      rows: [
        ['low', 1, 2, 1.5],
        ['high', 4, 2, 3],
        ['r', 0.25, 1, 0.5],
      ],
    });
    expect(seriesTable({ series: [{ name: 'x', values: [1] }], mean: false })).toEqual({
      headers: ['label', 'x'],
      rows: [['0', 1]],
    });
  });

  it('names the problem when series do not fit', () => {
    expect(() => seriesTable({ series: { a: [1, 2], b: [1] } })).toThrow(
      /series 'b' has 1 values but series 'a' \(2\) need 2/,
    );
    expect(() => seriesTable({ series: { a: [1] }, labels: [0, 1] })).toThrow(/the 2 labels/);
    expect(() =>
      seriesTable({ series: { a: [1] }, ratios: [{ numerator: 'a', denominator: 'b' }] }),
    ).toThrow(/refers to series 'b', which is not among 'a'/);
    expect(() => seriesTable({ series: {} })).toThrow(/got no series/);
  });
});

describe('chart specs', () => {
  const labels = ['zero', 'one', 'two', 'three'];
  const barSpec = groupedBarChartSpec({
    series: [
      { name: 'decoder', values: [0.1, 0.2, 0.3, 0.4] },
      { name: 'bottom half', values: new Float32Array([0.5, 0.6, Number.NaN, 0.8]) },
      { name: 'top half', values: [0.9, 1.0, 1.1, 1.2] },
    ],
    labels,
    labelTitle: 'digit',
    valueTitle: 'MAE',
    title: 'per-digit MAE',
  });

  it('builds a grouped bar chart that compiles without warnings and draws one bar per value', async () => {
    // Plain JSON, so it can be saved next to the PNG and opened in the Vega editor.
    expect(JSON.parse(JSON.stringify(barSpec))).toEqual(barSpec);
    expect(compileWarnings(barSpec)).toEqual([]);
    const svg = await renderVegaLiteToSvg(barSpec);
    // 4 labels × 3 series, less the NaN, which is left out rather than drawn at 0.
    expect(countMatches(svg, /aria-roledescription="bar"/g)).toBe(11);
    for (const label of labels) expect(svg).toContain(`>${label}</text>`);
    for (const name of ['decoder', 'bottom half', 'top half', 'per-digit MAE', 'MAE', 'digit']) {
      expect(svg).toContain(`>${name}</text>`);
    }
    expect(svg).toContain('value: 1.1000');
    // 4 groups of 3 bars of 10 px plus a gap: a 160 px plot, then axes and legend.
    const width = Number(/<svg[^>]* width="([\d.]+)"/.exec(svg)?.[1]);
    expect(width).toBeGreaterThan(160);
    expect(width).toBeLessThan(400);
  });

  it('draws a subtitle under the title, and keeps a plain title without one', async () => {
    const spec = lineChartSpec({ curves: { loss: [3, 2, 1] }, title: 'Loss', subtitle: 'a note' });
    expect(spec.title).toEqual({ text: 'Loss', subtitle: 'a note' });
    expect(compileWarnings(spec)).toEqual([]);
    const svg = await renderVegaLiteToSvg(spec);
    expect(svg).toContain('>Loss</text>');
    expect(svg).toContain('>a note</text>');
    expect(lineChartSpec({ curves: { loss: [3, 2, 1] }, title: 'Loss' }).title).toBe('Loss');
  });

  it('draws long legend labels in full (Vega-Lite cuts them at 160 px by default)', async () => {
    const name = 'low half (certificates, dims 0-15 of the latent)';
    const svg = await renderVegaLiteToSvg(
      groupedBarChartSpec({ series: [{ name, values: [1, 2] }], labels: ['a', 'b'] }),
    );
    expect(svg).toContain(`>${name}</text>`);
  });

  it('builds a line chart with one line per curve, dropping values a log scale cannot show', async () => {
    const spec = lineChartSpec({
      curves: [
        { name: 'train', values: [1, 0.5, 0.25, 0] },
        { name: 'test', values: [0.9, 0.4], steps: [0, 3] },
      ],
      logScale: true,
      valueTitle: 'loss',
    });
    expect(compileWarnings(spec)).toEqual([]);
    const data = (spec.data as { values: { step: number; series: string; value: number | null }[] })
      .values;
    expect(data).toEqual([
      { step: 0, series: 'train', value: 1 },
      { step: 1, series: 'train', value: 0.5 },
      { step: 2, series: 'train', value: 0.25 },
      { step: 3, series: 'train', value: null },
      { step: 0, series: 'test', value: 0.9 },
      { step: 3, series: 'test', value: 0.4 },
    ]);
    const svg = await renderVegaLiteToSvg(spec);
    expect(countMatches(svg, /aria-roledescription="line mark"/g)).toBe(2);
    // Few points, so each is marked as well: 3 train + 2 test.
    expect(countMatches(svg, /aria-roledescription="point"/g)).toBe(5);
  });

  it('gives every line its own colour, beyond ten curves too', async () => {
    const strokes = async (count: number) => {
      const curves = Array.from({ length: count }, (_, i) => ({ name: `c${i}`, values: [i, i] }));
      const svg = await renderVegaLiteToSvg(lineChartSpec({ curves }));
      const lines = svg.match(/aria-roledescription="line mark"[^>]*/g) ?? [];
      return new Set(lines.map((line) => /stroke="([^"]+)"/.exec(line)?.[1]));
    };
    expect((await strokes(10)).size).toBe(10);
    expect((await strokes(14)).size).toBe(14);
  });

  it('labels the step axis with whole numbers, even over a few steps', async () => {
    const svg = await renderVegaLiteToSvg(
      lineChartSpec({ curves: [{ name: 'loss', values: [3.7, 3.6], steps: [10, 16] }] }),
    );
    const ticks = [...svg.matchAll(/<text[^>]*>([\d.,]+)<\/text>/g)].map((m) => m[1]!);
    expect(ticks).toContain('10');
    expect(ticks).toContain('16');
    expect(ticks.filter((t) => /^1\d(\.\d+)?$/.test(t)).every((t) => !t.includes('.'))).toBe(true);
  });

  it('names the problem in bad input', () => {
    expect(() => lineChartSpec({ curves: [{ name: 'a', values: [1, 2], steps: [0] }] })).toThrow(
      /curve 'a' has 2 values but 1 steps/,
    );
    expect(() =>
      groupedBarChartSpec({
        series: [
          { name: 'a', values: [1] },
          { name: 'a', values: [2] },
        ],
      }),
    ).toThrow(/two series named 'a'/);
    expect(() => groupedBarChartSpec({ series: { a: [1] }, height: 0 })).toThrow(/height 0/);
  });

  it('refuses specs that would load data from elsewhere', async () => {
    const spec = { ...barSpec, data: { url: 'https://example.com/data.json' } };
    await expect(renderVegaLiteToSvg(spec)).rejects.toThrow(
      /loaded from a URL.*put the data in the spec as data.values/,
    );
  });
});

describe('svgToPng', () => {
  it('rasterises at the given scale with visible text', async () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30">' +
      '<text x="4" y="22" font-family="DejaVu Sans, Arial, sans-serif" font-size="18">MAE 0.12</text></svg>';
    const bytes = await svgToPng(svg, { scale: 2 });
    expect(Array.from(bytes.slice(0, 8))).toEqual(PNG_SIGNATURE);
    const png = decodePng(bytes);
    expect([png.width, png.height]).toEqual([240, 60]);
    let dark = 0;
    for (let i = 0; i < png.data.length; i += 4) if ((png.data[i] ?? 255) < 100) dark++;
    // Without any font resvg silently drops text; this machine must have one (see fc-list).
    expect(dark).toBeGreaterThan(200);
  });

  it('rejects a scale it cannot use', async () => {
    await expect(svgToPng('<svg/>', { scale: 0 })).rejects.toThrow(/scale 0/);
  });

  it('sets text in the shipped font with system fonts off', async () => {
    expect(shippedFontFiles().map((file) => basename(file))).toEqual([
      'Roboto-Regular.ttf',
      'Roboto-Bold.ttf',
    ]);
    // Generic and unknown families both fall back to the shipped font.
    for (const family of ['sans-serif', 'No Such Font', FIGURE_FONT_FAMILY]) {
      const svg =
        '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30">' +
        `<text x="4" y="22" font-family="${family}" font-size="18">MAE 0.12</text></svg>`;
      const png = decodePng(await svgToPng(svg, { scale: 1, loadSystemFonts: false }));
      expect(darkPixels(png, { top: 0, bottom: 30 })).toBeGreaterThan(50);
    }
  });
});

describe('charts without system fonts', () => {
  const spec = (titleColor: string): VegaLiteSpec => ({
    ...groupedBarChartSpec({
      series: { decoder: [0.1, 0.2], certificate: [0.3, 0.25] },
      title: 'MAE by digit',
    }),
    // Same layout either way: only the title's colour changes.
    config: { title: { color: titleColor } },
  });

  it("draws the title's pixels, and axis text, with system fonts off", async () => {
    const render = async (titleColor: string) =>
      decodePng(
        await svgToPng(await renderVegaLiteToSvg(spec(titleColor)), {
          scale: 1,
          loadSystemFonts: false,
        }),
      );
    const shown = await render('black');
    const hidden = await render('white');
    expect([shown.width, shown.height]).toEqual([hidden.width, hidden.height]);
    // The renders differ exactly where the title's glyphs are: in the band above the plot.
    const titleRows = new Set<number>();
    for (let i = 0; i < shown.data.length; i += 4) {
      if (shown.data[i] !== hidden.data[i]) titleRows.add(Math.floor(i / 4 / shown.width));
    }
    expect(titleRows.size).toBeGreaterThan(8);
    expect(Math.max(...titleRows)).toBeLessThan(25);
    expect(darkPixels(shown, { top: 0, bottom: 25 })).toBeGreaterThan(60);
    // Axis labels and titles below it, in both renders.
    expect(darkPixels(hidden, { top: 25, bottom: hidden.height })).toBeGreaterThan(200);
  });
});

describe('file output', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gradient-routing-reports-'));
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('writes JSON, PNGs and chart PNGs leaving only the destination files', async () => {
    await writeJson(join(directory, 'report.json'), {
      mae: new Float32Array([0.1, 0.25]),
      diverged: Number.NaN,
      // vega-lite, imported above, gives Sets a toJSON that writes them as strings.
      labels: new Set(['a']),
    });
    await writePng(
      join(directory, 'grid.png'),
      imageGrid({ rows: [[0, 1]], imageWidth: 2, imageHeight: 1 }),
    );
    await writeChartPng(
      join(directory, 'chart.png'),
      groupedBarChartSpec({ series: { a: [1, 2] } }),
      {
        scale: 1,
      },
    );
    expect((await readdir(directory)).sort()).toEqual(['chart.png', 'grid.png', 'report.json']);
    expect(await readFile(join(directory, 'report.json'), 'utf8')).toBe(
      '{\n  "mae": [\n    0.1,\n    0.25\n  ],\n  "diverged": null,\n  "labels": [\n    "a"\n  ]\n}\n',
    );
    const chart = decodePng(await readFile(join(directory, 'chart.png')));
    expect(chart.width).toBeGreaterThan(50);
    expect(chart.height).toBeGreaterThan(50);
    const grid = decodePng(await readFile(join(directory, 'grid.png')));
    // One 2×1 image with the default padding of 2 around it.
    expect([grid.width, grid.height]).toEqual([6, 5]);
  });

  it('replaces an existing file', async () => {
    const path = join(directory, 'table.md');
    await writeFile(path, 'old');
    await writeFileAtomic(path, 'new');
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(await readdir(directory)).toEqual(['table.md']);
  });

  it('throws a clear error and writes nothing when the directory is missing', async () => {
    const path = join(directory, 'missing', 'report.json');
    await expect(writeJson(path, { a: 1 })).rejects.toThrow(
      /gradient-routing: cannot write .*report\.json: the directory .*missing does not exist; create it first/,
    );
    expect(await readdir(directory)).toEqual([]);
  });

  it('removes its temporary file when the final rename fails', async () => {
    // A directory where the file should go makes the rename, the last step, fail.
    await mkdir(join(directory, 'taken.json'));
    await expect(writeJson(join(directory, 'taken.json'), [1])).rejects.toThrow(
      /gradient-routing: cannot write .*taken\.json/,
    );
    expect(await readdir(directory)).toEqual(['taken.json']);
    expect(await readdir(join(directory, 'taken.json'))).toEqual([]);
  });

  it('refuses values JSON cannot hold, before touching the disk', async () => {
    const cycle: { self?: unknown } = {};
    cycle.self = cycle;
    await expect(writeJson(join(directory, 'cycle.json'), cycle)).rejects.toThrow(
      /cannot serialise the report as JSON/,
    );
    await expect(writeJson(join(directory, 'u.json'), undefined)).rejects.toThrow(
      /a undefined cannot be written as JSON/,
    );
    expect(await readdir(directory)).toEqual([]);
  });
});

describe('toReportJson', () => {
  it('writes float32 values with their significant digits only', () => {
    const values = new Float32Array([0.1, 1 / 3, 123456.789, -0, 1e-8]);
    const parsed = JSON.parse(toReportJson(values)) as number[];
    expect(parsed).toEqual([0.1, 0.33333334, 123456.79, 0, 1e-8]);
    // Each written number reads back as the same float32 (=== so that -0 matches 0).
    expect(parsed.every((value, i) => Math.fround(value) === values[i])).toBe(true);
    expect(toReportJson({ a: new Int32Array([1, -2]), m: new Map([['k', 1]]) })).toBe(
      '{\n  "a": [\n    1,\n    -2\n  ],\n  "m": {\n    "k": 1\n  }\n}\n',
    );
  });
});

describe('loadOptional', () => {
  it('names the missing package and how to install it', async () => {
    const name = 'gradient-routing-package-that-does-not-exist';
    await expect(
      loadOptional(name, 'testing', () => import(/* @vite-ignore */ name)),
    ).rejects.toThrow(
      `gradient-routing: testing needs the optional package '${name}', which is not installed; run \`npm install ${name}\`.`,
    );
  });

  it('names every missing package of a set in one error, and only those', async () => {
    const missing = ['gradient-routing-missing-a', 'gradient-routing-missing-b'];
    await expect(
      loadOptionalPackages('testing', [
        { name: missing[0]!, load: () => import(/* @vite-ignore */ missing[0]!) },
        { name: 'pngjs', load: () => import('pngjs') },
        { name: missing[1]!, load: () => import(/* @vite-ignore */ missing[1]!) },
      ]),
    ).rejects.toThrow(
      `gradient-routing: testing needs the optional packages '${missing[0]}' and '${missing[1]}', which are not installed; run \`npm install ${missing.join(' ')}\`.`,
    );
    const [png] = await loadOptionalPackages('testing', [
      { name: 'pngjs', load: () => import('pngjs') },
    ]);
    expect(png).toHaveProperty('PNG');
  });

  it('passes other failures through unchanged', async () => {
    const failure = new Error('boom');
    await expect(loadOptional('x', 'testing', () => Promise.reject(failure))).rejects.toBe(failure);
  });
});
