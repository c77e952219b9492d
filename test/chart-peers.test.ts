// What a user without the chart packages sees: each entry point names every missing package in
// one error and writes nothing. The packages are installed here, so a child process hides them
// with module resolution hooks (test/fixtures/hide-packages) that fail the way Node fails for a
// package that is not installed.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

async function attempts(hidden: readonly string[]): Promise<string[]> {
  const { stdout } = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      './test/fixtures/hide-packages/register.mjs',
      'test/fixtures/hide-packages/write-chart.ts',
    ],
    { env: { ...process.env, HIDE_PACKAGES: hidden.join(',') } },
  );
  return stdout.trim().split('\n');
}

describe('chart rendering without its optional packages', () => {
  it('names all three missing packages in one error, and writes nothing', async () => {
    expect(await attempts(['vega', 'vega-lite', '@resvg/resvg-js'])).toEqual([
      "writeChartPng: gradient-routing: writing chart PNGs needs the optional packages 'vega', 'vega-lite' and '@resvg/resvg-js', which are not installed; run `npm install vega vega-lite @resvg/resvg-js`.",
      "renderVegaLiteToSvg: gradient-routing: rendering charts needs the optional packages 'vega' and 'vega-lite', which are not installed; run `npm install vega vega-lite`.",
      "svgToPng: gradient-routing: rendering charts to PNG needs the optional package '@resvg/resvg-js', which is not installed; run `npm install @resvg/resvg-js`.",
      'files: []',
    ]);
  });

  it('names only the missing one, and renders once nothing is missing', async () => {
    const [writeChart, renderSvg, rasterise, files] = await attempts(['vega-lite']);
    expect(writeChart).toBe(
      "writeChartPng: gradient-routing: writing chart PNGs needs the optional package 'vega-lite', which is not installed; run `npm install vega-lite`.",
    );
    expect(renderSvg).toMatch(/^renderVegaLiteToSvg: .*package 'vega-lite', which is not/);
    expect([rasterise, files]).toEqual(['svgToPng: ok', 'files: []']);
    expect(await attempts([])).toEqual([
      'writeChartPng: ok',
      'renderVegaLiteToSvg: ok',
      'svgToPng: ok',
      'files: ["chart.png"]',
    ]);
  });
});
