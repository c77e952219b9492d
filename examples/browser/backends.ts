// Which backends this browser offers, and whether its "GPU" is a real one. Without a usable GPU,
// Chromium runs WebGL (and, when allowed, WebGPU) on SwiftShader, a CPU renderer: measured in
// headless Chromium on 2 cores, that trains the quick preset about 5× slower than WebAssembly
// (docs/browser.md). So the page's automatic choice takes a GPU backend only when it is hardware.
import type { BackendName } from 'gradient-routing';

/** What the page knows about one backend before trying it. */
export interface BackendSurvey {
  /** Why it cannot work here; undefined when it may. */
  unavailable?: string;
  /** True when it runs on a software renderer (a CPU pretending to be a GPU). */
  software?: boolean;
  /** The renderer or adapter, when the browser tells. */
  device?: string;
}

export type BrowserBackend = Exclude<BackendName, 'tensorflow'>;

/** Renderer names of software GL implementations. */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render/i;

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

async function surveyWebGpu(): Promise<BackendSurvey> {
  // Typed loosely: adapters of older browsers lack `info`.
  const gpu = (
    navigator as unknown as { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }
  ).gpu;
  if (gpu === undefined) return { unavailable: 'this browser does not offer WebGPU' };
  try {
    const adapter = await gpu.requestAdapter();
    if (adapter === null) return { unavailable: 'no WebGPU adapter (GPU) found' };
    const fallback = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
    const device = [adapter.info?.vendor, adapter.info?.architecture].filter(Boolean).join(' ');
    return {
      software: fallback || SOFTWARE_RENDERER.test(device),
      ...(device === '' ? {} : { device }),
    };
  } catch {
    return { unavailable: 'WebGPU failed to start' };
  }
}

function surveyWebGl(): BackendSurvey {
  const canvas = document.createElement('canvas');
  const gl = canvas.getContext('webgl2') ?? canvas.getContext('webgl');
  if (gl === null) return { unavailable: 'WebGL is switched off or missing' };
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  const device = String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return { software: SOFTWARE_RENDERER.test(device), device };
}

/** Surveys every backend the page can use. */
export async function surveyBackends(): Promise<Record<BrowserBackend, BackendSurvey>> {
  return {
    webgpu: await surveyWebGpu(),
    webgl: surveyWebGl(),
    wasm: typeof WebAssembly === 'object' ? {} : { unavailable: 'no WebAssembly in this browser' },
    cpu: {},
  };
}

/**
 * The order to try backends in for "fastest available": hardware WebGPU, hardware WebGL, wasm,
 * then the software GPU backends and cpu.
 */
export function automaticOrder(survey: Record<BrowserBackend, BackendSurvey>): BrowserBackend[] {
  const usable = (name: BrowserBackend) => survey[name].unavailable === undefined;
  const gpus: BrowserBackend[] = ['webgpu', 'webgl'];
  const hardware = gpus.filter((n) => usable(n) && !survey[n].software);
  const software = gpus.filter((n) => usable(n) && survey[n].software);
  const order: BrowserBackend[] = [...hardware, 'wasm', ...software, 'cpu'];
  return order.filter(usable);
}
