// The library's WebGPU matMul kernels in Chromium (SwiftShader's adapter without a GPU): products
// with every transpose and odd shapes, fused bias and ReLU, and the gradients of a small
// autoencoder (its dense layers take the fused path there), compared with tfjs's cpu backend in
// Node. Skipped, with the reason, where the browser offers no WebGPU adapter.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Autoencoder } from '../../src/index.js';
import type { MatMulCheckInput, MatMulCheckProduct, MatMulCheckResult } from './checks/protocol.js';
import { launchChromium, openPage } from './chromium.js';

function seeded(count: number, seed: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

function product(
  [m, k, n]: [number, number, number],
  transposeA: boolean,
  transposeB: boolean,
  epilogue: Pick<MatMulCheckProduct, 'activation'> & { bias?: boolean } = {},
): MatMulCheckProduct {
  return {
    a: seeded(m * k, m + k),
    aShape: transposeA ? [k, m] : [m, k],
    b: seeded(k * n, k + n + 1),
    bShape: transposeB ? [n, k] : [k, n],
    transposeA,
    transposeB,
    ...(epilogue.bias ? { bias: seeded(n, n) } : {}),
    ...(epilogue.activation ? { activation: epilogue.activation } : {}),
  };
}

const input: MatMulCheckInput = {
  products: [
    product([7, 33, 65], false, false),
    product([33, 65, 7], false, true),
    product([65, 7, 33], true, false),
    product([1, 1000, 33], true, true),
    product([33, 1000, 7], false, false, { bias: true, activation: 'relu' }),
    product([64, 128, 64], false, false, { bias: true, activation: 'linear' }),
  ],
  autoencoderInput: seeded(9 * 12, 3),
};

/** The same products and gradients on tfjs's cpu backend, in Node. */
async function onCpu(): Promise<{ products: number[][]; loss: number; gradients: number[][] }> {
  await tf.setBackend('cpu');
  const products = input.products.map((p) =>
    tf.tidy(() =>
      Array.from(
        tf.fused
          .matMul({
            a: tf.tensor(p.a, p.aShape),
            b: tf.tensor(p.b, p.bShape),
            transposeA: p.transposeA,
            transposeB: p.transposeB,
            bias: p.bias === undefined ? undefined : tf.tensor1d(p.bias),
            activation: p.activation ?? 'linear',
          })
          .dataSync(),
      ),
    ),
  );
  const model = new Autoencoder({ inputDim: 12, hidden: [33], latentDim: 7, seed: 1 });
  const x = tf.tensor2d(input.autoencoderInput, [9, 12]);
  const { value, grads } = tf.variableGrads(
    () => tf.mean(tf.abs(tf.sub(model.reconstruct(x), x))) as tf.Scalar,
    model.trainableVariables,
  );
  const gradients = model.trainableVariables.map((v) => Array.from(grads[v.name]!.dataSync()));
  const loss = value.dataSync()[0]!;
  tf.dispose([x, value, ...Object.values(grads)]);
  model.dispose();
  return { products, loss, gradients };
}

function maxAbsDifference(a: readonly number[], b: readonly number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((worst, value, i) => Math.max(worst, Math.abs(value - b[i]!)), 0);
}

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describe('WebGPU matMul kernels in Chromium', () => {
  it('match cpu: every transpose, odd shapes, fused bias and relu, an autoencoder gradient', async (context) => {
    const { page, problems } = await openPage(browser);
    let result: MatMulCheckResult;
    try {
      await page.goto(`${inject('baseUrl')}checks/index.html`);
      await page.waitForFunction(() => document.body.dataset.state === 'ready');
      result = await page.evaluate(
        (arg) =>
          (
            window as unknown as {
              matMulChecks: (i: MatMulCheckInput) => Promise<MatMulCheckResult>;
            }
          ).matMulChecks(arg),
        input,
      );
      expect(problems).toEqual({ consoleErrors: [], pageErrors: [], failedRequests: [] });
    } finally {
      await page.close();
    }
    if (!result.available) {
      console.log(`WebGPU matMul in Chromium: skipped, ${result.reason}`);
      context.skip(result.reason);
      return;
    }
    expect(result.kernelsInstalled).toBe(true);
    expect(result.tensorsAfter).toBe(result.tensorsBefore);
    const reference = await onCpu();
    expect(result.products).toHaveLength(reference.products.length);
    result.products.forEach((values, i) => {
      // Sums of up to 1000 products of values in [-1, 1), in another order.
      expect(maxAbsDifference(values, reference.products[i]!)).toBeLessThanOrEqual(2e-3);
    });
    expect(result.products[4]!.some((v) => v === 0)).toBe(true); // relu did clamp
    expect(Math.abs(result.loss - reference.loss)).toBeLessThanOrEqual(1e-5);
    expect(result.gradients).toHaveLength(reference.gradients.length);
    result.gradients.forEach((values, i) => {
      expect(maxAbsDifference(values, reference.gradients[i]!)).toBeLessThanOrEqual(1e-5);
    });
  });
});
