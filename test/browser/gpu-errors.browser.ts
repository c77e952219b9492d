// In Chromium, a WebGPU validation error during training stops `fit` with a 'gpu'
// GradientRoutingError, as in Node (test/webgpu-safety.test.ts): the page's half is
// checks/main.ts's gpuErrorCheck.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { GpuErrorCheckResult } from './checks/protocol.js';
import { launchChromium, openPage } from './chromium.js';

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

it('a forced WebGPU validation error stops fit with a gpu error, leaking nothing', async (context) => {
  const { page } = await openPage(browser);
  let result: GpuErrorCheckResult;
  try {
    await page.goto(`${inject('baseUrl')}checks/index.html`);
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    result = await page.evaluate(() =>
      (window as unknown as { gpuErrorCheck: () => Promise<GpuErrorCheckResult> }).gpuErrorCheck(),
    );
  } finally {
    await page.close();
  }
  if (!result.available) {
    console.log(`gpu error check: skipped, ${result.reason}`);
    context.skip(result.reason);
    return;
  }
  expect(result.watched).toBe(true);
  expect(result.code).toBe('gpu');
  expect(result.value).toBe('validation');
  expect(result.message).toMatch(/maxBufferSize/);
  // The error is reported asynchronously in a browser: fit stops at the first check after it
  // arrives, here the step that made it (each step reads its loss), long before the 16 steps.
  expect(result.completedSteps).toBeGreaterThanOrEqual(1);
  expect(result.completedSteps).toBeLessThan(16);
  expect(result.tensorsAfter).toBe(result.tensorsBefore);
});
