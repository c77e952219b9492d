/**
 * `npx tsx bench/transformer-step.ts`: the ERA transformer's routed training step (the quick
 * preset's model, expanded and routed as the ERA runner trains it, with AdamW), counted and timed
 * on one backend. On webgpu it counts, from the backend itself, the WebGPU programs dispatched
 * and the host-to-GPU uploads per step, split into forward + backward and the optimiser.
 * Prints measurements, not verdicts. `--help` lists the options.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { AdamW, eraPresets } from '../src/experiments/index.js';
import {
  createTransformer,
  expandRouteRows,
  expandTransformerMlps,
  forwardContext,
  installWebGpuKernels,
  MaskTable,
  tokenCrossEntropy,
  tokenRule,
  uninstallWebGpuKernels,
} from '../src/index.js';
import { releaseNodeWebGpu, selectNodeBackend } from '../src/node/index.js';

const HELP = `Usage: npx tsx bench/transformer-step.ts [options]

  --backend NAME    webgpu (default; a software adapter is accepted), wasm or cpu
  --steps N         timed steps (default 3)
  --warmup N        untimed steps first (default 2; the first compiles every shader)
  --stock           with webgpu: tfjs's stock kernels only (the library's WebGPU kernels removed)
  --by-program      with webgpu: the last step's programs by kind (tfjs's shader key)
  --help            this text
`;

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'webgpu' },
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    stock: { type: 'boolean', default: false },
    'by-program': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const backendName = args.backend as 'webgpu' | 'wasm' | 'cpu';
if (!['webgpu', 'wasm', 'cpu'].includes(backendName)) {
  throw new Error(`--backend is webgpu, wasm or cpu, got '${args.backend}'.`);
}
const steps = Number(args.steps);
const warmup = Number(args.warmup);

/** The parts of tfjs-backend-webgpu's backend that every program and upload goes through. */
interface CountedBackend {
  runWebGPUProgram(...args: unknown[]): unknown;
  uploadToGPU(dataId: object): void;
  tensorMap: { get(dataId: object): { values: unknown; resource: unknown } | undefined };
}

/** Counts programs and real uploads (host values copied to a new GPU buffer) on the backend. */
function countWebGpu(): { programs: number; uploads: number; kinds: Map<string, number> } {
  const counts = { programs: 0, uploads: 0, kinds: new Map<string, number>() };
  const backend = tf.backend() as unknown as CountedBackend;
  const run = backend.runWebGPUProgram.bind(backend);
  const upload = backend.uploadToGPU.bind(backend);
  backend.runWebGPUProgram = (...params: unknown[]) => {
    counts.programs += 1;
    // The shader key before shapes are appended names the kernel (e.g. 'binary_2', 'matMulPacked').
    const key = (params[0] as { shaderKey?: string }).shaderKey ?? '?';
    const kind = key.split('_').slice(0, 2).join('_');
    counts.kinds.set(kind, (counts.kinds.get(kind) ?? 0) + 1);
    return run(...params);
  };
  backend.uploadToGPU = (dataId: object) => {
    const data = backend.tensorMap.get(dataId);
    if (data !== undefined && data.resource == null && data.values != null) counts.uploads += 1;
    upload(dataId);
  };
  return counts;
}

await selectNodeBackend({ backend: backendName, onNotice: (line) => console.error(line) });
if (backendName === 'webgpu' && args.stock) uninstallWebGpuKernels();
if (backendName === 'webgpu' && !args.stock) installWebGpuKernels();
const counts = backendName === 'webgpu' ? countWebGpu() : null;

const preset = eraPresets.quick;
const base = createTransformer({ ...preset.model, seed: 0 });
const model = expandTransformerMlps(base, {
  layers: preset.expandLayers,
  units: preset.expandUnits,
  seed: 101,
});
base.dispose();
const layer = preset.expandLayers[0]!;
const region = model.mlpRegions(layer).find((r) => r.name === 'expanded')!;
const table = new MaskTable(
  expandRouteRows(model.mlpWidth(layer), region, preset.originalUnitWeight),
  { range: [Math.min(0, preset.originalUnitWeight), 1] },
);
const rule = tokenRule(table, { toward: 0 });
const hiddenPoints = preset.expandLayers.map((l) => `blocks.${l}.mlp.hidden`);
const plan = Object.fromEntries(hiddenPoints.map((p) => [p, rule] as const));
const variables = model.trainableVariables();
const optimizer = new AdamW({ weightDecay: preset.weightDecay });

// A fixed seeded batch, the ERA runner's shapes: half the documents labelled (routed).
const B = preset.batchSize;
const T = preset.model.contextLength;
const V = preset.model.vocabSize;
let seed = 7;
const next = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const ids = Int32Array.from({ length: B * (T + 1) }, () => Math.floor(next() * V));
const inputs = tf.tensor2d(
  Int32Array.from({ length: B * T }, (_, i) => ids[Math.floor(i / T) * (T + 1) + (i % T)]!),
  [B, T],
  'int32',
);
const targets = tf.tensor2d(
  Int32Array.from({ length: B * T }, (_, i) => ids[Math.floor(i / T) * (T + 1) + (i % T) + 1]!),
  [B, T],
  'int32',
);
const weights = tf.ones([B, T]) as tf.Tensor2D;
const labels = tf.tensor2d(
  Int32Array.from({ length: B * T }, (_, i) => (Math.floor(i / T) % 2 === 0 ? 1 : 0)),
  [B, T],
  'int32',
);
const soft = tf.tensor2d(
  Float32Array.from({ length: B * T }, (_, i) => (Math.floor(i / T) % 2 === 0 ? 0.25 : 1)),
  [B, T],
);

interface PhaseCounts {
  programs: number;
  uploads: number;
  /** Programs by kind. */
  kinds: Map<string, number>;
}

interface StepCounts {
  forwardBackward: PhaseCounts;
  optimiser: PhaseCounts;
  loss: number;
  ms: number;
  /** CPU time of the whole process (llvmpipe's threads included), a steadier figure under load. */
  cpuMs: number;
}

async function step(learningRate: number): Promise<StepCounts> {
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  const before = { ...(counts ?? { programs: 0, uploads: 0 }) };
  if (counts !== null) counts.kinds = new Map();
  const { value, grads } = tf.variableGrads(() => {
    const context = forwardContext(model, {
      plan,
      batch: { labels, weights: soft },
      capture: hiddenPoints,
    });
    const logits = model.forward(inputs, context);
    const ce = tokenCrossEntropy(logits, targets, weights);
    const penalties = [...context.captured.values()].map((h) => tf.mean(tf.abs(h)));
    return tf.add(ce, tf.mul(tf.addN(penalties), preset.l1Coefficient)) as tf.Scalar;
  }, variables);
  const middle = { ...(counts ?? { programs: 0, uploads: 0 }) };
  const forwardBackwardKinds = counts?.kinds ?? new Map<string, number>();
  if (counts !== null) counts.kinds = new Map();
  optimizer.step(variables, grads, learningRate);
  const after = { ...(counts ?? { programs: 0, uploads: 0 }) };
  const loss = (await value.data())[0]!;
  tf.dispose([value, grads]);
  return {
    forwardBackward: {
      programs: middle.programs - before.programs,
      uploads: middle.uploads - before.uploads,
      kinds: forwardBackwardKinds,
    },
    optimiser: {
      programs: after.programs - middle.programs,
      uploads: after.uploads - middle.uploads,
      kinds: counts?.kinds ?? new Map<string, number>(),
    },
    loss,
    ms: performance.now() - start,
    cpuMs: (() => {
      const used = process.cpuUsage(cpuStart);
      return (used.user + used.system) / 1000;
    })(),
  };
}

const tensorsBefore = tf.memory().numTensors;
const results: StepCounts[] = [];
for (let i = 0; i < warmup + steps; i++) {
  const result = await step(1e-3);
  if (i >= warmup) results.push(result);
  console.error(`step ${i + 1}: loss ${result.loss.toFixed(6)}, ${result.ms.toFixed(0)} ms`);
}
const last = results[results.length - 1]!;
const median = (list: number[]) => [...list].sort((a, b) => a - b)[list.length >> 1]!;
const kernels = backendName === 'webgpu' ? (args.stock ? ' (stock tfjs kernels)' : '') : '';
console.log(
  `ERA quick transformer, routed step with AdamW, batch ${B}, ${T} tokens, on ${backendName}${kernels}`,
);
if (counts !== null) {
  const fb = last.forwardBackward;
  const opt = last.optimiser;
  console.log(`forward + backward: ${fb.programs} programs, ${fb.uploads} uploads`);
  console.log(`AdamW:              ${opt.programs} programs, ${opt.uploads} uploads`);
  console.log(
    `whole step:         ${fb.programs + opt.programs} programs, ${fb.uploads + opt.uploads} uploads`,
  );
}
if (counts !== null && args['by-program']) {
  for (const [phase, { kinds }] of [
    ['forward + backward', last.forwardBackward],
    ['AdamW', last.optimiser],
  ] as const) {
    console.log(`${phase}, programs by kind:`);
    const sorted = [...kinds].sort((a, b) => b[1] - a[1]);
    for (const [kind, n] of sorted) console.log(`  ${String(n).padStart(5)}  ${kind}`);
  }
}
console.log(
  `${median(results.map((r) => r.ms)).toFixed(0)} ms/step wall, ` +
    `${median(results.map((r) => r.cpuMs)).toFixed(0)} ms/step CPU (medians of ${steps}), ` +
    `loss ${last.loss.toFixed(6)}`,
);
console.log(`tensors left over: ${tf.memory().numTensors - tensorsBefore}`);

optimizer.dispose();
rule.dispose();
model.dispose();
tf.dispose([inputs, targets, weights, labels, soft]);
if (backendName === 'webgpu') releaseNodeWebGpu();
