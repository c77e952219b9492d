/** The fields of WebGPU's `GPUAdapterInfo` this library reads (all optional: browsers differ). */
export interface GpuAdapterDescription {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
  /** True for an adapter the implementation itself calls a fallback (a CPU implementation). */
  readonly isFallbackAdapter?: boolean;
}

/**
 * Renderers that run on the CPU. WebGPU's `isFallbackAdapter` does not catch them all: Dawn's
 * OpenGL ES backend reports Mesa's llvmpipe as a normal adapter (only its `device` string,
 * `llvmpipe-…`, tells), and Vulkan's lavapipe and Direct3D's WARP look like drivers too.
 */
const SOFTWARE_RENDERERS = /llvmpipe|lavapipe|softpipe|swiftshader|basic render driver|\bwarp\b/i;

/**
 * Whether a WebGPU adapter computes on the CPU (a fallback or software renderer) rather than on
 * a GPU. Such adapters are correct but slower than the wasm backend for this library's models,
 * so automatic backend selection skips them.
 */
export function isSoftwareAdapter(info: GpuAdapterDescription): boolean {
  if (info.isFallbackAdapter === true) return true;
  return [info.vendor, info.architecture, info.device, info.description].some(
    (field) => typeof field === 'string' && SOFTWARE_RENDERERS.test(field),
  );
}

/** A short human-readable name of an adapter, for notices: its non-empty info fields. */
export function describeAdapter(info: GpuAdapterDescription): string {
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(
    (field): field is string => typeof field === 'string' && field.trim() !== '',
  );
  return parts.length > 0 ? parts.join(', ') : 'an unnamed adapter';
}
