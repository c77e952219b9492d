import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset } from '../core/data/dataset.js';
import { groupedBarChartSpec, lineChartSpec } from '../experiments/reports/charts.js';
import { imageGrid } from '../experiments/reports/grid.js';
import {
  formatSplitTable,
  groupKeys,
  type SplitSummary,
} from '../experiments/reports/split-summary.js';
import type { SplitExperimentResult } from '../experiments/split.js';
import { partitionRegions } from '../experiments/split.js';
import { writeChartPng, writeFileAtomic, writeJson, writePng } from './render.js';

/** The files {@link writeSplitReport} wrote, by role. */
export interface SplitReportFiles {
  summary: string;
  table: string;
  reconstructions: string;
  perDigitChart: string;
  lossChart: string;
}

/** Options of {@link writeSplitReport}. */
export interface SplitReportOptions {
  /** Test examples shown per label in the reconstruction grid. Default 2. */
  examplesPerLabel?: number;
  /** Pixel range of the images, to map to gray levels. Default `[-1, 1]`. */
  range?: readonly [number, number];
}

/**
 * Writes a split experiment's report into `outDir` (created if missing): `summary.json`,
 * `table.md`, `reconstructions.png` (originals over the decoder's reconstructions, then the same
 * with each other group's latent block ablated), `per-digit-mae.png` and `loss.png`.
 * Every file is written atomically.
 */
export async function writeSplitReport(
  outDir: string,
  result: SplitExperimentResult,
  summary: SplitSummary,
  test: ImageDataset,
  options: SplitReportOptions = {},
): Promise<SplitReportFiles> {
  await mkdir(outDir, { recursive: true });
  const files: SplitReportFiles = {
    summary: path.join(outDir, 'summary.json'),
    table: path.join(outDir, 'table.md'),
    reconstructions: path.join(outDir, 'reconstructions.png'),
    perDigitChart: path.join(outDir, 'per-digit-mae.png'),
    lossChart: path.join(outDir, 'loss.png'),
  };
  await writeJson(files.summary, summary);
  await writeFileAtomic(files.table, `${formatSplitTable(summary)}\n`);
  await writePng(files.reconstructions, await reconstructionGrid(result, test, options));
  const keys = groupKeys(result.config.partition.length);
  await writeChartPng(
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
    }),
  );
  await writeChartPng(
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
    }),
  );
  return files;
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
