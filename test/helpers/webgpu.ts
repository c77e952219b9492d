import { selectNodeBackend } from '../../src/node/backend.js';

/**
 * Starts WebGPU in Node (llvmpipe on CI machines) for a suite. Resolves to null when it runs, or to
 * the reason it cannot, after a warning naming the skipped suite; in CI (or with
 * GRADIENT_ROUTING_REQUIRE_WEBGPU set) a WebGPU that cannot start fails the suite instead.
 */
export async function nodeWebGpuUnavailable(suite: string): Promise<string | null> {
  try {
    await selectNodeBackend({ backend: 'webgpu', onNotice: () => {} });
    return null;
  } catch (error) {
    if (process.env.CI || process.env.GRADIENT_ROUTING_REQUIRE_WEBGPU) throw error;
    const reason = (error as Error).message;
    console.warn(`${suite} skipped: ${reason}`);
    return reason;
  }
}
