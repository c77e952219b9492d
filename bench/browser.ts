/**
 * `npm run bench:browser`: how fast the demo page trains in headless Chromium on each backend.
 * Opens the page with `?preset=…&backend=…&autostart=1` (plus `epochs=`, `train=`) and reads the
 * training time it reports and the bytes it fetched. Prints measurements, not verdicts. With
 * `--screenshot PATH` it also saves a screenshot of the last finished page, after turning off
 * the switches `--switch-off` names (the docs' figure is made that way).
 *
 *   npm run bench:browser -- --preset quick --epochs 1 --train 3200 --test 500 --backends webgl,wasm
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildDemo } from '../scripts/build-demo.mjs';
import { serveStatic } from '../scripts/serve-demo.mjs';
import { launchChromium, openPage } from '../test/browser/chromium.js';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'quick' },
    backends: { type: 'string', default: 'webgpu,webgl,wasm,cpu' },
    epochs: { type: 'string' },
    train: { type: 'string' },
    test: { type: 'string' },
    timeout: { type: 'string', default: '1800' },
    screenshot: { type: 'string' },
    'switch-off': { type: 'string' },
  },
});

const dir = mkdtempSync(path.join(tmpdir(), 'gr-browser-bench-'));
await buildDemo(dir);
const { server, url } = await serveStatic(dir);
const browser = await launchChromium();
try {
  for (const backend of values.backends.split(',')) {
    const params = new URLSearchParams({ preset: values.preset, backend, autostart: '1' });
    if (values.epochs) params.set('epochs', values.epochs);
    if (values.train) params.set('train', values.train);
    if (values.test) params.set('test', values.test);
    const { page, problems, fetched } = await openPage(browser, { width: 1200, height: 900 });
    await page.goto(`${url}?${params}`);
    await page.waitForFunction(
      () => ['done', 'error'].includes(document.body.dataset.state ?? ''),
      null,
      { timeout: Number(values.timeout) * 1000, polling: 1000 },
    );
    const result = await page.evaluate(() => ({
      state: document.body.dataset.state,
      steps: Number(document.body.dataset.trainSteps),
      seconds: Number(document.body.dataset.trainSeconds),
      backend: document.querySelector('[data-testid=backend]')?.textContent,
      error: document.querySelector('[data-testid=error]')?.textContent,
      low: document.querySelector('[data-testid=split-low]')?.textContent,
      high: document.querySelector('[data-testid=split-high]')?.textContent,
      isolated: crossOriginIsolated,
    }));
    const files = await fetched();
    const megabytes = (files.reduce((sum, file) => sum + file.bytes, 0) / 1e6).toFixed(2);
    if (result.state === 'error') {
      console.log(`${backend}: error: ${result.error}`);
    } else {
      console.log(
        `${result.backend}: ${result.steps} steps in ${result.seconds.toFixed(1)} s = ` +
          `${(result.steps / result.seconds).toFixed(2)} steps/s (preset ${values.preset}, ` +
          `split ratios ${result.low} / ${result.high}, isolated ${result.isolated}, ` +
          `fetched ${megabytes} MB in ${files.length} responses)`,
      );
    }
    const trouble = [...problems.consoleErrors, ...problems.pageErrors, ...problems.failedRequests];
    if (trouble.length > 0) console.log(`  problems: ${trouble.join('; ')}`);
    // Switches to turn off (by test id, e.g. half-high) before the screenshot, with the keyboard.
    for (const testId of values['switch-off']?.split(',') ?? []) {
      const before = await page.evaluate(() =>
        (document.querySelector('[data-testid=reconstructions]') as HTMLCanvasElement).toDataURL(),
      );
      await page.locator(`[data-testid=${testId}]`).focus();
      await page.keyboard.press('Space');
      await page.waitForFunction(
        (previous) =>
          (
            document.querySelector('[data-testid=reconstructions]') as HTMLCanvasElement
          ).toDataURL() !== previous,
        before,
      );
    }
    if (values.screenshot) {
      mkdirSync(path.dirname(values.screenshot), { recursive: true });
      await page.screenshot({ path: values.screenshot, fullPage: true });
    }
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
