import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';

/** Debian's Chromium (`apt-get install -y chromium`); never a browser downloaded by Playwright. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Headless and off the network: no background requests, updates, sync or first-run pages. WebGL
 * runs on SwiftShader, Chromium's software GL, which headless Chromium without a GPU needs
 * explicitly allowed; `--enable-unsafe-webgpu` makes Chromium offer SwiftShader's (fallback)
 * WebGPU adapter too, so that the WebGPU backend is tested without a GPU.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install Debian's (apt-get install -y chromium) or set CHROMIUM_PATH.`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** What went wrong in a page while it ran: console errors, uncaught errors, failed requests. */
export interface PageProblems {
  consoleErrors: string[];
  pageErrors: string[];
  failedRequests: string[];
}

/** One response the page received: its address and its body's size as sent (compressed if so). */
export interface FetchedFile {
  url: string;
  bytes: number;
}

/**
 * Opens a page that records its problems and what it fetched, and refuses every request to
 * another host. Each page has its own browser context, so nothing comes from an earlier page's
 * cache: `fetched()` is what this page downloaded.
 */
export async function openPage(
  browser: Browser,
  viewport = { width: 1200, height: 900 },
): Promise<{ page: Page; problems: PageProblems; fetched: () => Promise<FetchedFile[]> }> {
  const page = await browser.newPage({ viewport });
  const responses: Promise<FetchedFile>[] = [];
  page.on('requestfinished', (request) =>
    responses.push(
      request.sizes().then(
        (sizes) => ({ url: request.url(), bytes: sizes.responseBodySize }),
        // The page closed before the size could be read (a request that finished as a test
        // ended): NaN bytes, so a total over it fails loudly instead of an unhandled rejection.
        () => ({ url: request.url(), bytes: Number.NaN }),
      ),
    ),
  );
  const problems: PageProblems = { consoleErrors: [], pageErrors: [], failedRequests: [] };
  page.on('console', (message) => {
    if (message.type() === 'error') problems.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => problems.pageErrors.push(error.message));
  page.on('requestfailed', (request) =>
    problems.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) {
      problems.failedRequests.push(`${response.url()}: HTTP ${response.status()}`);
    }
  });
  await page.route(/^(?!http:\/\/127\.0\.0\.1[:/])(?!data:)(?!blob:)/, (route) => {
    problems.failedRequests.push(`${route.request().url()}: a request to another host`);
    return route.abort();
  });
  return { page, problems, fetched: () => Promise.all(responses) };
}
