// What the split report's figures say: the smoke preset's note, the reconstruction grid's row
// labels and the bar chart's legend. The PNGs cannot be read back as text, so the chart specs and
// the grid's SVG are caught on their way to the renderer (which still runs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  runSplitExperiment,
  type SplitExperimentResult,
  splitPresets,
  summarizeSplitExperiment,
} from '../src/experiments/index.js';
import type { VegaLiteSpec } from '../src/experiments/reports/charts.js';
import { writeSplitReport } from '../src/node/split-report.js';
import { useBackend } from './helpers/backends.js';
import { columnBlockImages } from './helpers/random.js';

const rendered = vi.hoisted(() => ({
  charts: new Map<string, unknown>(),
  svgs: [] as string[],
  pngs: [] as Promise<Uint8Array>[],
}));

vi.mock('../src/node/render.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../src/node/render.js')>();
  return {
    ...original,
    writeChartPng: (file: string, spec: VegaLiteSpec, options?: unknown) => {
      rendered.charts.set(path.basename(file), spec);
      return original.writeChartPng(
        file,
        spec,
        options as Parameters<typeof original.writeChartPng>[2],
      );
    },
    // The grid is rasterised without system fonts, as on a server or in a container: its text
    // must come from the font the package ships.
    svgToPng: (svg: string, options?: Parameters<typeof original.svgToPng>[1]) => {
      rendered.svgs.push(svg);
      const png = original.svgToPng(svg, { ...options, loadSystemFonts: false });
      rendered.pngs.push(png);
      return png;
    },
  };
});

const SMOKE_NOTE = 'smoke run: checks the pipeline only; its numbers mean nothing';
const scratch = mkdtempSync(path.join(tmpdir(), 'gr-split-report-'));
const test = columnBlockImages(12, 2);
let result: SplitExperimentResult;

beforeAll(async () => {
  await useBackend('cpu');
  result = await runSplitExperiment(
    { train: columnBlockImages(48, 1), test },
    {
      ...splitPresets.smoke,
      model: { hidden: [12], latentDim: 6, seed: 0 },
      fit: { epochs: 1, batchSize: 16, seed: 0 },
      probe: { ...splitPresets.smoke.probe, epochs: 1 },
      partition: [[0], [1], [2]],
    },
  );
});

afterAll(() => {
  result.model.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

/** Writes the report of `result` as if run with `preset`; returns the chart titles and grid SVG. */
async function report(preset: string) {
  rendered.charts.clear();
  rendered.svgs.length = 0;
  rendered.pngs.length = 0;
  const summary = summarizeSplitExperiment(result, { preset, backend: 'cpu', wallSeconds: 1 });
  const before = tf.memory().numTensors;
  const { failed } = await writeSplitReport(path.join(scratch, preset), result, summary, test);
  expect(tf.memory().numTensors).toBe(before);
  expect(failed).toEqual([]);
  const title = (file: string) => (rendered.charts.get(file) as { title?: unknown }).title;
  expect(rendered.svgs).toHaveLength(1);
  return {
    perDigit: rendered.charts.get('per-digit-mae.png') as VegaLiteSpec,
    titles: [title('per-digit-mae.png'), title('loss.png')],
    grid: rendered.svgs[0]!,
    gridPng: PNG.sync.read(Buffer.from(await rendered.pngs[0]!)),
  };
}

describe('the split report figures', () => {
  it('say under every title that smoke only checks the pipeline, and only for smoke', async () => {
    const smoke = await report('smoke');
    for (const title of smoke.titles) {
      expect(title).toEqual({ text: expect.any(String), subtitle: SMOKE_NOTE });
    }
    expect(smoke.grid).toContain(`Test reconstructions (${SMOKE_NOTE})`);
    const quick = await report('quick');
    for (const title of quick.titles) expect(String(title)).not.toMatch(/smoke/);
    expect(quick.grid).not.toMatch(/smoke/);
  });

  it('label each row of the reconstruction grid, top to bottom, beside its row', async () => {
    const { grid } = await report('quick');
    const labels = [...grid.matchAll(/<text x="142" y="([\d.]+)"[^>]*>([^<]*)<\/text>/g)];
    expect(labels.map((m) => m[2])).toEqual([
      'original',
      'decoder',
      'only group0 (dims 0-1)',
      'only group1 (dims 2-3)',
      'only group2 (dims 4-5)',
    ]);
    // Five rows of 6 px images at scale 2 with 2 px padding, under a 24 px title: each label sits
    // at the middle of its row.
    const image = /<image x="150" y="24" width="(\d+)" height="(\d+)"/.exec(grid);
    expect(image).not.toBeNull();
    const pitch = (Number(image![2]) - 2) / 5;
    expect(pitch).toBe(14);
    labels.forEach((m, row) => {
      expect(Number(m[1])).toBeCloseTo(24 + 2 + row * pitch + pitch / 2, 6);
    });
  });

  it("show the grid's title and every row label with system fonts off", async () => {
    const { gridPng } = await report('quick');
    // Dark pixels left of the images (x < 150), in a band of rows.
    const darkInLabelColumn = (top: number, bottom: number) => {
      let dark = 0;
      for (let y = top; y < bottom; y++) {
        for (let x = 0; x < 150; x++) if (gridPng.data[(y * gridPng.width + x) * 4]! < 100) dark++;
      }
      return dark;
    };
    expect(darkInLabelColumn(0, 24)).toBeGreaterThan(100);
    // Each row's label in its own 14 px band (see the previous test's layout).
    for (let row = 0; row < 5; row++) {
      expect(darkInLabelColumn(26 + row * 14, 26 + (row + 1) * 14)).toBeGreaterThan(20);
    }
  });

  it('name every half decoder in the bar chart legend, which is never cut', async () => {
    const { perDigit } = await report('quick');
    const json = JSON.stringify(perDigit);
    for (const key of ['group0', 'group1', 'group2']) {
      expect(json).toContain(`${key} half (certificates)`);
    }
    expect(json).toContain('"labelLimit":0');
  });
});
