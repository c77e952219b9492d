import type * as tf from '@tensorflow/tfjs-core';
import {
  FLAT_WORKGROUP_SIZE,
  flatLaunch,
  programClass,
  type ScalarUniform,
  scalarUniforms,
  type WebGpuBackend,
} from './tfjs-webgpu.js';

/*
 * Element-wise WGSL programs that update several tensors in one dispatch, run through
 * tfjs-backend-webgpu's own `runWebGPUProgram` (so its batching, submit, disposal tracking and
 * profiling all apply, and the dispatch is counted like any other).
 *
 * tfjs generates a shader whose inputs are read-only and whose only writable binding is the
 * output. An optimiser step writes three tensors (the variable and its two moments), so these
 * programs bring their own shader, with the same bindings in the same order (binding 0 the
 * output, then the inputs, then tfjs's uniform block), some inputs declared `read_write`. The
 * shader is handed to tfjs as a ready pipeline in its pipeline cache under the key tfjs computes
 * for the program, which it sets on `program.shaderKey` just before it looks the cache up.
 *
 * tfjs's uniform block starts with NaN, Infinity, then the shape and strides of every input and
 * of the output, then the program's own uniforms. Every tensor is passed flat (1-D), so each of
 * those is one 4-byte scalar and the layout below is a plain run of scalars.
 */

/** One buffer of a program: the first is the output; `writable` inputs are updated in place. */
export interface InPlaceBinding {
  readonly name: string;
  readonly info: tf.TensorInfo;
  readonly writable: boolean;
}

/** The largest value below 2³¹ a flat index can take; beyond it `i32` indexing would wrap. */
const MAX_ELEMENTS = 2 ** 31 - 1;

function shader(
  bindings: readonly InPlaceBinding[],
  uniforms: readonly ScalarUniform[],
  body: string,
) {
  const header = bindings.flatMap(({ name }) => [`${name}Shape : i32,`, `${name}Strides : i32,`]);
  // tfjs lists the inputs' shapes first and the output's last; bindings[0] is the output.
  const shapes = [...header.slice(2), ...header.slice(0, 2)];
  const declarations = bindings.map(
    ({ name, writable }, i) =>
      `@group(0) @binding(${i}) var<storage, ${i === 0 || writable ? 'read_write' : 'read'}> ${name} : array<f32>;`,
  );
  return `
struct Uniforms {
  nanValue : f32,
  infinityValue : f32,
  ${shapes.join('\n  ')}
  ${scalarUniforms(uniforms).declaration}
};
${declarations.join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> uniforms : Uniforms;

@compute @workgroup_size(${FLAT_WORKGROUP_SIZE}, 1, 1)
fn main(@builtin(local_invocation_index) localIndex : u32,
        @builtin(workgroup_id) workgroupId : vec3<u32>,
        @builtin(num_workgroups) numWorkgroups : vec3<u32>) {
  // tfjs spreads a long dispatch over y and z when x exceeds the device's limit.
  let flat = (workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x
      + workgroupId.x) * ${FLAT_WORKGROUP_SIZE}u + localIndex;
  let i = i32(flat);
  // Every binding is used, so that the pipeline's automatic layout has the bindings tfjs binds.
  if (i >= uniforms.${bindings[0]!.name}Shape) { return; }
  ${body}
}
`;
}

/**
 * Whether `info` may be written in place: its buffer belongs to no other tensor (a clone shares
 * it) and it is float32.
 */
export function ownsBuffer(backend: WebGpuBackend, info: tf.TensorInfo): boolean {
  return info.dtype === 'float32' && backend.tensorMap.get(info.dataId).refCount === 1;
}

/**
 * Runs one element-wise dispatch over `bindings` (all of the output's size, flat), with `body`
 * the WGSL that handles element `i`. Bindings marked writable, and the output, are updated in
 * place; their values cached on the host by an earlier read are dropped, since they are stale.
 */
export function runInPlace(
  backend: WebGpuBackend,
  key: string,
  bindings: readonly InPlaceBinding[],
  uniforms: readonly ScalarUniform[],
  body: string,
): void {
  const [output, ...inputs] = bindings;
  const size = output!.info.shape.reduce((n, d) => n * d, 1);
  if (size > MAX_ELEMENTS) throw new Error(`${key}: ${size} elements exceed i32 indexing`);
  const flat = (info: tf.TensorInfo): tf.TensorInfo => ({ ...info, shape: [size] });
  const baseKey = `GradientRouting_${key}_${inputs.map((b) => (b.writable ? 'w' : 'r')).join('')}`;
  let fullKey = baseKey;
  const program = {
    constructor: programClass(key),
    variableNames: inputs.map((b) => b.name),
    outputShape: [size],
    ...flatLaunch([size]),
    get shaderKey(): string {
      return fullKey;
    },
    set shaderKey(computed: string) {
      fullKey = computed;
      if (!(computed in backend.pipelineCache)) {
        const module = backend.device.createShaderModule({
          code: shader(bindings, uniforms, body),
          label: baseKey,
        });
        backend.pipelineCache[computed] = backend.device.createComputePipeline({
          layout: 'auto',
          compute: { module, entryPoint: 'main' },
          label: baseKey,
        });
      }
    },
    // Never called: the pipeline above is in the cache before tfjs would compile this.
    getUserCode: () => '',
  };
  backend.runWebGPUProgram(
    program,
    inputs.map((b) => flat(b.info)),
    'float32',
    scalarUniforms(uniforms).values,
    flat(output!.info),
  );
  for (const binding of [output!, ...inputs.filter((b) => b.writable)]) {
    const data = backend.tensorMap.get(binding.info.dataId);
    if (data.resource != null) data.values = null;
  }
}
