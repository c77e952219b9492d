// The routing op's core properties, checked in Chromium on every backend the page offers:
// forward bit-identity, gradient exactly mask · dy, and exactly +0 where the mask is 0 even when
// the upstream gradient there is NaN or ±Infinity.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BackendName } from '../../src/index.js';
import type { RoutingCheckInput, RoutingCheckResult } from './checks/protocol.js';
import { launchChromium, openPage } from './chromium.js';

const shape = [3, 4];
// Special values everywhere: -0, NaN, ±Infinity, the largest float32, a subnormal.
const x = [1.5, -0, Number.NaN, Infinity, -Infinity, 3.4e38, 1e-40, -2.25, 0.1, 7, -3, 1e-7];
const mask = [1, 0, 0.5, 0, 0, 1, 0, 0.25, 0, 0, 1, 1];
// Non-finite upstream gradients exactly where the mask is 0.
const dy = [
  2,
  Number.NaN,
  -3,
  Infinity,
  -Infinity,
  0.75,
  Number.NaN,
  1e30,
  -Infinity,
  Infinity,
  -0.1,
  5,
];

function float32Bits(values: readonly number[]): number[] {
  return Array.from(new Uint32Array(Float32Array.from(values).buffer));
}

/** mask · dy as float32 arithmetic gives it, with +0 (bits 0) wherever the mask is 0. */
const expectedGradient = mask.map((m, i) =>
  m === 0 ? 0 : float32Bits([Math.fround(Math.fround(m) * Math.fround(dy[i]!))])[0]!,
);

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

async function check(backend: BackendName): Promise<RoutingCheckResult> {
  const { page, problems } = await openPage(browser);
  try {
    await page.goto(`${inject('baseUrl')}checks/index.html`);
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    const input: RoutingCheckInput = { backend, shape, x, mask, dy };
    const result = await page.evaluate(
      (arg) =>
        (
          window as unknown as {
            routingChecks: (i: RoutingCheckInput) => Promise<RoutingCheckResult>;
          }
        ).routingChecks(arg),
      input,
    );
    expect(problems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
    return result;
  } finally {
    await page.close();
  }
}

describe.each(['cpu', 'wasm', 'webgl', 'webgpu'] as const)('routeGradients on %s', (backend) => {
  it('forwards bit for bit, routes mask · dy, and gives +0 where the mask is 0', async (context) => {
    const result = await check(backend);
    if (!result.available) {
      console.log(`routeGradients on ${backend}: skipped, ${result.reason}`);
      context.skip(result.reason);
      return;
    }
    expect(result.backend).toBe(backend);
    expect(result.activeBackend).toBe(backend);
    expect(result.forward).toEqual(float32Bits(x));
    expect(result.forwardOnDevice).toEqual(result.onDevice);
    expect(result.gradient).toEqual(expectedGradient);
    expect(result.tensorsAfter).toBe(result.tensorsBefore);
  });
});
