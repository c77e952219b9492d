// The fused optimiser kernel in Chromium: torchAdam and AdamW on WebGPU (SwiftShader's adapter
// without a GPU) give the cpu backend's weights within float32 rounding, one dispatch per variable
// and no uploads per step.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BackendName } from '../../src/index.js';
import { lcgUniform } from '../helpers/random.js';
import type { OptimiserCheckInput, OptimiserCheckResult } from './checks/protocol.js';
import { launchChromium, openPage } from './chromium.js';

// Odd sizes, so no kernel can lean on multiples of a workgroup or of 4.
const shapes = [[1], [7], [33, 5], [2049]];
const random = lcgUniform(424242);
const draw = (size: number, scale: number) =>
  Array.from({ length: size }, (_, i) => (i % 97 === 0 ? 0 : scale * (random() - 0.5)));
const sizes = shapes.map((shape) => shape.reduce((n, d) => n * d, 1));
const input = (backend: BackendName): OptimiserCheckInput => ({
  backend,
  shapes,
  weights: sizes.map((size) => draw(size, 2)),
  gradients: [0, 1, 2].map(() => sizes.map((size) => draw(size, 0.2))),
});
// The same data for both backends: drawn once.
const data = input('cpu');

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

async function check(backend: BackendName): Promise<OptimiserCheckResult> {
  const { page, problems } = await openPage(browser);
  try {
    await page.goto(`${inject('baseUrl')}checks/index.html`);
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    const result = await page.evaluate(
      (arg) =>
        (
          window as unknown as {
            optimiserChecks: (i: OptimiserCheckInput) => Promise<OptimiserCheckResult>;
          }
        ).optimiserChecks(arg),
      { ...data, backend },
    );
    expect(problems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
    return result;
  } finally {
    await page.close();
  }
}

function expectClose(actual: number[][], expected: number[][]): void {
  actual.forEach((values, v) => {
    values.forEach((value, i) => {
      const reference = expected[v]![i]!;
      expect(Math.abs(value - reference), `variable ${v}, entry ${i}`).toBeLessThanOrEqual(
        1e-6 + 2e-6 * Math.abs(reference),
      );
    });
  });
}

describe('the fused optimiser kernel in Chromium', () => {
  it('torchAdam and AdamW on WebGPU give the cpu weights, one dispatch per variable', async (context) => {
    const gpu = await check('webgpu');
    if (!gpu.available) {
      console.log(`optimiser on webgpu: skipped, ${gpu.reason}`);
      context.skip(gpu.reason);
      return;
    }
    const cpu = await check('cpu');
    if (!cpu.available) throw new Error(cpu.reason);
    expect(gpu.activeBackend).toBe('webgpu');
    expectClose(gpu.torchAdam, cpu.torchAdam);
    expectClose(gpu.adamW, cpu.adamW);
    // The data moved: the optimisers did something.
    expect(gpu.torchAdam[3]).not.toEqual(data.weights[3]);
    expect(gpu.steadyStep).toEqual({
      programs: shapes.length,
      uploads: 0,
      fusedPrograms: shapes.length,
    });
    expect(gpu.tensorsAfter).toBe(gpu.tensorsBefore);
    expect(cpu.tensorsAfter).toBe(cpu.tensorsBefore);
  });
});
