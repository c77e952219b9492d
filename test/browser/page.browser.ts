// The demo page in Chromium: the smoke preset trains to the end through the automation contract,
// the ablation switches change the reconstructions they control, and the page fits a phone.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Autoencoder, saveAutoencoder } from '../../src/index.js';
import { saveToDirectory, selectNodeBackend } from '../../src/node/index.js';
import { launchChromium, openPage, type PageProblems } from './chromium.js';

/** Where the screenshot of the finished page goes; the docs' figure is made with this set. */
const SCREENSHOT = process.env.BROWSER_SCREENSHOT ?? 'out/browser/browser-demo.png';

let browser: Browser;
let page: Page;
let problems: PageProblems;

beforeAll(async () => {
  browser = await launchChromium();
  ({ page, problems } = await openPage(browser, { width: 1200, height: 900 }));
  await page.goto(`${inject('baseUrl')}?preset=smoke&autostart=1`);
  await page.waitForFunction(
    () => ['done', 'error'].includes(document.body.dataset.state ?? ''),
    null,
    { timeout: 240_000, polling: 250 },
  );
});

afterAll(async () => {
  await browser?.close();
});

const text = async (testId: string) =>
  (await page.locator(`[data-testid=${testId}]`).textContent())?.trim() ?? '';

/** The canvas as a PNG data URL: equal URLs mean equal pixels. */
const canvasPixels = (testId: string) =>
  page.evaluate(
    (id) => (document.querySelector(`[data-testid=${id}]`) as HTMLCanvasElement).toDataURL(),
    testId,
  );

/** Presses Space on a switch (keyboard only) and waits until the reconstructions differ from `from`. */
async function toggleAndWait(testId: string, from: string, expectChange: boolean): Promise<string> {
  await page.locator(`[data-testid=${testId}]`).focus();
  await page.keyboard.press('Space');
  await page.waitForFunction(
    ([before, change]) => {
      const canvas = document.querySelector('[data-testid=reconstructions]') as HTMLCanvasElement;
      return (canvas.toDataURL() !== before) === change;
    },
    [from, expectChange] as const,
  );
  return canvasPixels('reconstructions');
}

describe('the demo page, smoke preset', () => {
  it('trains to done with finite split ratios, no console errors and no failed requests', async () => {
    expect(await text('error')).toBe('');
    expect(await page.evaluate(() => document.body.dataset.state)).toBe('done');
    expect(['webgpu', 'webgl', 'wasm', 'cpu']).toContain(await text('backend'));
    for (const id of ['split-low', 'split-high']) {
      const value = Number(await text(id));
      expect(Number.isFinite(value), `${id} is '${await text(id)}'`).toBe(true);
      expect(value).toBeGreaterThan(0);
    }
    expect(problems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('turning a half off changes the reconstructions, and turning it on restores them', async () => {
    const originals = await canvasPixels('originals');
    const allOn = await canvasPixels('reconstructions');
    const withoutHigh = await toggleAndWait('half-high', allOn, true);
    expect(await page.locator('[data-testid=dim-20]').isChecked()).toBe(false);
    expect(await canvasPixels('originals')).toBe(originals);
    // Every switch of the half went off with it; pressing it again turns all back on.
    expect(await toggleAndWait('half-high', allOn, false)).toBe(allOn);
    expect(withoutHigh).not.toBe(allOn);
  });

  it('one dim switch changes the reconstructions on its own', async () => {
    const allOn = await canvasPixels('reconstructions');
    await toggleAndWait('dim-3', allOn, true);
    expect(await page.locator('[data-testid=half-low]').isChecked()).toBe(false);
    expect(await toggleAndWait('dim-3', allOn, false)).toBe(allOn);
    expect(problems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
  });

  it('fits a phone-width screen without sideways scrolling', async () => {
    await page.setViewportSize({ width: 360, height: 800 });
    // Every element that sticks out to the right, named, so that a failure says what to fix.
    const sticking = await page.evaluate(() => {
      const width = document.documentElement.clientWidth;
      return Array.from(document.querySelectorAll('body *'))
        .filter((e) => e.getBoundingClientRect().right > width + 0.5)
        .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`);
    });
    expect(sticking).toEqual([]);
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-phone.png'), fullPage: true });
  });
});

describe('the demo page, errors in plain words', () => {
  it('says which MNIST file is missing and how to get it', async () => {
    const { page: other } = await openPage(browser);
    await other.route('**/mnist/train-labels-idx1-ubyte', (route) =>
      route.fulfill({ status: 404, body: 'not found' }),
    );
    await other.goto(`${inject('baseUrl')}?preset=smoke&autostart=1`);
    await other.waitForFunction(() => document.body.dataset.state === 'error');
    const message = await other.locator('[data-testid=error]').textContent();
    expect(message).toContain('mnist/train-labels-idx1-ubyte is missing');
    expect(message).toContain('npm run demo:build');
    await other.close();
  });

  it('says so when the address asks for an unknown preset', async () => {
    const { page: other, problems: otherProblems } = await openPage(browser);
    await other.goto(`${inject('baseUrl')}?preset=huge&autostart=1`);
    await other.waitForFunction(() => document.body.dataset.state === 'error');
    expect(await other.locator('[data-testid=error]').textContent()).toContain(
      'use smoke, quick or paper',
    );
    expect(otherProblems.failedRequests).toEqual([]);
    await other.close();
  });
});

describe('the demo page, loading a saved model', () => {
  let modelDir: string;

  beforeAll(async () => {
    // A model saved exactly as `npm run mnist-split -- --save-model DIR` saves one:
    // saveAutoencoder through saveToDirectory (model.json + weights.bin). Untrained: the page
    // must load and measure it, not judge it.
    modelDir = mkdtempSync(path.join(tmpdir(), 'gr-browser-model-'));
    await selectNodeBackend({ backend: 'cpu' });
    const model = new Autoencoder({
      inputDim: 784,
      hidden: [32],
      latentDim: 32,
      certificates: [
        [0, 16],
        [16, 32],
      ],
      seed: 3,
    });
    await saveAutoencoder(model, saveToDirectory(modelDir));
    model.dispose();
  });

  afterAll(() => rmSync(modelDir, { recursive: true, force: true }));

  it('loads model.json + weights.bin picked with the keyboard-reachable file input', async () => {
    const { page: other, problems: otherProblems } = await openPage(browser);
    await other.goto(inject('baseUrl'));
    await other.waitForFunction(() => document.body.dataset.state === 'ready');
    await other
      .locator('#model-files')
      .setInputFiles([path.join(modelDir, 'model.json'), path.join(modelDir, 'weights.bin')]);
    await other.waitForFunction(() =>
      ['done', 'error'].includes(document.body.dataset.state ?? ''),
    );
    expect(await other.locator('[data-testid=error]').textContent()).toBe('');
    for (const id of ['split-low', 'split-high']) {
      expect(
        Number.isFinite(Number(await other.locator(`[data-testid=${id}]`).textContent())),
      ).toBe(true);
    }
    // The switches follow the loaded model's latent: 32 dims.
    expect(await other.locator('[data-testid^=dim-]').count()).toBe(32);
    expect(otherProblems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
    await other.close();
  });

  it('says which file is missing when only model.json is picked', async () => {
    const { page: other } = await openPage(browser);
    await other.goto(inject('baseUrl'));
    await other.waitForFunction(() => document.body.dataset.state === 'ready');
    await other.locator('#model-files').setInputFiles([path.join(modelDir, 'model.json')]);
    await other.waitForFunction(() => document.body.dataset.state === 'error');
    expect(await other.locator('[data-testid=error]').textContent()).toContain(
      'model.json and weights.bin',
    );
    await other.close();
  });
});

describe('the demo page on a plain static host (not cross-origin isolated)', () => {
  it('trains the smoke preset on single-threaded wasm', async () => {
    const { page: other, problems: otherProblems } = await openPage(browser);
    await other.goto(`${inject('plainUrl')}?preset=smoke&backend=wasm&autostart=1`);
    await other.waitForFunction(
      () => ['done', 'error'].includes(document.body.dataset.state ?? ''),
      null,
      { timeout: 240_000, polling: 250 },
    );
    expect(await other.locator('[data-testid=error]').textContent()).toBe('');
    expect(await other.evaluate(() => crossOriginIsolated)).toBe(false);
    expect(await other.locator('[data-testid=backend]').textContent()).toBe('wasm');
    expect(
      Number.isFinite(Number(await other.locator('[data-testid=split-low]').textContent())),
    ).toBe(true);
    expect(otherProblems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
    await other.close();
  });
});

describe('the demo page, stopping', () => {
  it('moves keyboard focus to Stop while training, and Enter there stops it', async () => {
    const { page: other, problems: otherProblems } = await openPage(browser);
    await other.goto(`${inject('baseUrl')}?preset=quick&backend=wasm&train=12800&autostart=1`);
    await other.waitForFunction(() => document.body.dataset.state === 'training', null, {
      timeout: 120_000,
    });
    expect(await other.evaluate(() => document.activeElement?.id)).toBe('stop');
    await other.keyboard.press('Enter');
    await other.waitForFunction(() => document.body.dataset.state === 'ready', null, {
      timeout: 120_000,
    });
    expect(await other.locator('#status').textContent()).toContain('Training stopped');
    // Focus returns to Train, so that Enter starts again.
    expect(await other.evaluate(() => document.activeElement?.id)).toBe('train');
    expect(otherProblems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
    await other.close();
  });
});
