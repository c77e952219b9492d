import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset } from '../core/data/dataset.js';
import { GradientRoutingError } from '../core/errors.js';
import { groupedBarChartSpec, lineChartSpec } from '../experiments/reports/charts.js';
import type { PixelBuffer } from '../experiments/reports/grid.js';
import { imageGrid } from '../experiments/reports/grid.js';
import { pipelineCheckNote } from '../experiments/reports/pipeline-check.js';
import {
  formatSplitTable,
  groupKeys,
  type SplitSummary,
} from '../experiments/reports/split-summary.js';
import type { SplitExperimentResult } from '../experiments/split.js';
import { partitionRegions } from '../experiments/split.js';
import {
  encodePng,
  FIGURE_FONT_FAMILY,
  svgToPng,
  writeChartPng,
  writeFileAtomic,
  writeJson,
} from './render.js';

/** The files {@link writeSplitReport} writes, by role. */
export interface SplitReportFiles {
  summary: string;
  table: string;
  reconstructions: string;
  perDigitChart: string;
  lossChart: string;
}

/** What {@link writeSplitReport} wrote, and the figures it could not write. */
export interface SplitReportResult {
  /** Every file of the report, by role (figures in `failed` were not written). */
  files: SplitReportFiles;
  /** Figures that failed (a missing optional package, a rendering error), with the reason. */
  failed: { file: string; error: Error }[];
}

function reportFiles(outDir: string): SplitReportFiles {
  return {
    summary: path.join(outDir, 'summary.json'),
    table: path.join(outDir, 'table.md'),
    reconstructions: path.join(outDir, 'reconstructions.png'),
    perDigitChart: path.join(outDir, 'per-digit-mae.png'),
    lossChart: path.join(outDir, 'loss.png'),
  };
}

/**
 * Prepares `dir` for files before a long run, so that a bad path fails in a second rather than
 * after hours of training: creates it (and its parents), checks that it is a writable directory,
 * and deletes `stale` files left there by an earlier run, so that nothing from that run can be
 * taken for this run's result.
 *
 * @throws `GradientRoutingError` naming the path and the fix.
 */
export async function prepareOutputDirectory(
  dir: string,
  stale: readonly string[] = [],
): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    throw new GradientRoutingError(
      `${dir} exists and is not a directory; pass a directory path (it is created if missing).`,
      'invalid-argument',
      dir,
    );
  }
  try {
    await mkdir(dir, { recursive: true });
    // Proves the directory is writable: the same atomic write the results will use.
    const probe = path.join(dir, '.write-check');
    await writeFileAtomic(probe, 'ok');
    await rm(probe, { force: true });
    for (const name of stale) await rm(path.join(dir, name), { force: true });
  } catch (error) {
    const reason =
      error instanceof Error ? error.message.replace('gradient-routing: ', '') : String(error);
    throw new GradientRoutingError(
      `cannot prepare the output directory ${dir} (${reason}); pass a path you can write to.`,
      'invalid-argument',
      dir,
      { cause: error },
    );
  }
}

/**
 * Prepares `outDir` for {@link writeSplitReport} before training: see
 * {@link prepareOutputDirectory}; the stale files are the report's own.
 * @returns The paths the report will write.
 */
export async function prepareSplitReport(outDir: string): Promise<SplitReportFiles> {
  const files = reportFiles(outDir);
  await prepareOutputDirectory(
    outDir,
    Object.values(files).map((file) => path.basename(file)),
  );
  return files;
}

/** Options of {@link writeSplitReport}. */
export interface SplitReportOptions {
  /** Test examples shown per label in the reconstruction grid. Default 2. */
  examplesPerLabel?: number;
  /** Pixel range of the images, to map to gray levels. Default `[-1, 1]`. */
  range?: readonly [number, number];
}

/**
 * Writes a split experiment's report into `outDir` (created if missing): `summary.json` and
 * `table.md` first, then the figures `reconstructions.png` (originals over the decoder's
 * reconstructions, then the same with each other group's latent block ablated),
 * `per-digit-mae.png` and `loss.png`. Every file is written atomically. A figure that fails
 * does not stop the others and is reported in `failed`; the numbers are never lost to a figure.
 */
export async function writeSplitReport(
  outDir: string,
  result: SplitExperimentResult,
  summary: SplitSummary,
  test: ImageDataset,
  options: SplitReportOptions = {},
): Promise<SplitReportResult> {
  await mkdir(outDir, { recursive: true });
  const files = reportFiles(outDir);
  await writeJson(files.summary, summary);
  await writeFileAtomic(files.table, `${formatSplitTable(summary)}\n`);
  const failed: SplitReportResult['failed'] = [];
  const figure = async (file: string, write: () => Promise<void>): Promise<void> => {
    try {
      await write();
    } catch (error) {
      failed.push({ file, error: error instanceof Error ? error : new Error(String(error)) });
    }
  };
  const note = pipelineCheckNote(summary.preset);
  await figure(files.reconstructions, async () => {
    const grid = await reconstructionGrid(result, test, options);
    const keys = groupKeys(result.config.partition.length);
    const regions = partitionRegions(result.config.partition, result.config.model.latentDim);
    const labels = [
      'original',
      'decoder',
      ...keys.map((key, g) => `only ${key} (dims ${regions[g]![0]}-${regions[g]![1] - 1})`),
    ];
    await writeFileAtomic(
      files.reconstructions,
      await labelledGridPng(grid, labels, `Test reconstructions${note ? ` (${note})` : ''}`),
    );
  });
  const keys = groupKeys(result.config.partition.length);
  await figure(files.perDigitChart, () =>
    writeChartPng(
      files.perDigitChart,
      groupedBarChartSpec({
        series: [
          { name: 'decoder', values: summary.perDigit.decoder },
          ...keys.map((key) => ({
            name: `${key} half (${summary.halfDecoders})`,
            values: summary.perDigit[key]!,
          })),
        ],
        labelTitle: 'digit',
        valueTitle: 'test MAE',
        title: `Per-digit reconstruction error (${summary.routed ? 'routed' : 'no routing'})`,
        ...(note && { subtitle: note }),
      }),
    ),
  );
  await figure(files.lossChart, () =>
    writeChartPng(
      files.lossChart,
      lineChartSpec({
        curves: [
          {
            name: 'training loss',
            values: result.losses.map((p) => p.loss),
            steps: result.losses.map((p) => p.step),
          },
        ],
        valueTitle: 'loss',
        title: 'Training loss',
        ...(note && { subtitle: note }),
      }),
    ),
  );
  return { files, failed };
}

/**
 * The grid with a label left of each row and a title above, as PNG: the pixels embedded in an
 * SVG at their own size, the text set by resvg.
 */
async function labelledGridPng(
  grid: PixelBuffer,
  rowLabels: string[],
  title: string,
): Promise<Uint8Array> {
  const png = Buffer.from(await encodePng(grid)).toString('base64');
  const labelWidth = 150;
  const titleHeight = 24;
  const padding = 2;
  const pitch = (grid.height - padding) / rowLabels.length;
  const width = labelWidth + grid.width;
  const height = titleHeight + grid.height;
  const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const texts = rowLabels.map(
    (label, row) =>
      `<text x="${labelWidth - 8}" y="${titleHeight + padding + row * pitch + pitch / 2}" text-anchor="end" dominant-baseline="middle" font-family="${FIGURE_FONT_FAMILY}" font-size="12">${escapeXml(label)}</text>`,
  );
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${height}">` +
    `<text x="8" y="16" font-family="${FIGURE_FONT_FAMILY}" font-size="13" font-weight="bold">${escapeXml(title)}</text>` +
    texts.join('') +
    `<image x="${labelWidth}" y="${titleHeight}" width="${grid.width}" height="${grid.height}" xlink:href="data:image/png;base64,${png}"/>` +
    '</svg>';
  return svgToPng(svg, { scale: 1 });
}

/** Rows: originals, reconstructions, then one row per group with the other groups' blocks off. */
async function reconstructionGrid(
  result: SplitExperimentResult,
  test: ImageDataset,
  options: SplitReportOptions,
) {
  const perLabel = options.examplesPerLabel ?? 2;
  const pixels = test.rows * test.cols;
  const labels = [...result.config.partition.flat()].sort((a, b) => a - b);
  const picked: number[] = [];
  for (const label of labels) {
    let found = 0;
    for (let i = 0; i < test.count && found < perLabel; i++) {
      if (test.labels[i] === label) {
        picked.push(i);
        found += 1;
      }
    }
  }
  const regions = partitionRegions(result.config.partition, result.config.model.latentDim);
  const outputs = tf.tidy(() => {
    const images = new Float32Array(picked.length * pixels);
    picked.forEach((example, row) => {
      images.set(test.images.subarray(example * pixels, (example + 1) * pixels), row * pixels);
    });
    const x = tf.tensor2d(images, [picked.length, pixels]);
    const keepOnly = regions.map((_, g) => regions.filter((__, other) => other !== g));
    return [
      x,
      result.model.reconstruct(x),
      ...keepOnly.map((off) => result.model.reconstructAblated(x, off)),
    ];
  });
  // Read asynchronously: WebGPU in Node cannot read synchronously.
  const rows = await Promise.all(outputs.map(async (t) => (await t.data()) as Float32Array));
  tf.dispose(outputs);
  return imageGrid({
    rows,
    imageWidth: test.cols,
    imageHeight: test.rows,
    range: options.range ?? [-1, 1],
    scale: 2,
  });
}
