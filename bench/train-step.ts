/**
 * `npm run bench`: training-step throughput of the paper's MNIST autoencoder on every available
 * backend, with and without gradient routing, and on wasm with stock tfjs kernels for comparison.
 * Prints measurements, not verdicts. `npm run bench -- --help` lists the options.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  type BackendName,
  countWebGpuWork,
  fastKernelsInstalled,
  installFastKernels,
  uninstallFastKernels,
  type WebGpuWorkCount,
} from 'gradient-routing';
import {
  defaultWasmThreads,
  nodeWebGpuAdapter,
  releaseNodeWebGpu,
  selectNodeBackend,
  wasmThreadsCount,
} from 'gradient-routing/node';
import {
  buildPaperModel,
  type DenseStyle,
  flopsPerExample,
  groupMask,
  type PaperModel,
} from './paper-model.js';

const HELP = `Usage: npm run bench -- [options]

  --backends LIST     comma-separated, from tensorflow,webgpu,wasm,cpu (default: all that load;
                      webgpu only on a real GPU unless named here, since a software adapter
                      takes seconds per step)
  --batches LIST      batch sizes (default: 256,2048; 256 with --quick)
  --steps N           timed steps per variant (default: 8 at batch <= 512, else 3; cpu 1)
  --warmup N          untimed steps first (default: 2 at batch <= 512, else 1; cpu 1)
  --stock-steps N     timed steps of the stock-wasm variant (default: 2; 0 skips it)
  --full              also run what is skipped by default for time: stock wasm and cpu at
                      batches > 512 (each step takes minutes)
  --quick             batch 256, 2 steps, 1 stock step, no cpu unless --backends names it
  --threads LIST      wasm thread counts, one row each (default: 1 and every core, e.g. 1,2)
  --dense STYLE       library (the library's dense op, as its models use it: one fused kernel
                      forward on WebGPU; default), plain (matMul + add + relu) or fused
                      (tf.fused.matMul + relu)
  --profile           after timing, where one routed step spends its time, per kernel
                      (on webgpu, GPU times need timestamp queries; the bench says when the
                      adapter has none)
  --submit-batch N    webgpu: programs per command buffer before tfjs submits it
                      (WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE; tfjs's default 15)
  --json              print one JSON object on stdout (progress goes to stderr)
  --help              this text
`;

type Variant = 'unrouted' | 'routed' | 'stock';

interface Result {
  backend: BackendName;
  /** wasm's thread count; null on the other backends. */
  threads: number | null;
  batch: number;
  variant: Variant;
  msPerStep: number;
  gflops: number;
}

/** WebGPU work of one step, counted from the backend (see countWebGpuWork). */
interface StepWork {
  step: WebGpuWorkCount;
  /** The same step split in two, with a host read in between: gradients, then the optimiser. */
  gradients: WebGpuWorkCount | null;
  optimiser: WebGpuWorkCount | null;
}

interface Row extends Result {
  work: StepWork | null;
  steps: number;
  warmup: number;
  cpuMsPerStep: number;
  minMs: number;
  maxMs: number;
}

/** The median: one step slowed down by another process must not move the figure. */
function median(list: number[]): number {
  const sorted = [...list].sort((p, q) => p - q);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const { values: args } = parseArgs({
  options: {
    backends: { type: 'string' },
    batches: { type: 'string' },
    steps: { type: 'string' },
    warmup: { type: 'string' },
    'stock-steps': { type: 'string' },
    full: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    dense: { type: 'string', default: 'library' },
    threads: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'submit-batch': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function integers(option: string, text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const list = text.split(',').map((part) => Number(part.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new Error(
      `gradient-routing bench: --${option} takes non-negative integers, got '${text}'; e.g. --${option} 2.`,
    );
  }
  return list;
}

const ALL_BACKENDS: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
const requestedBackends = args.backends?.split(',').map((b) => b.trim() as BackendName);
for (const name of requestedBackends ?? []) {
  if (!ALL_BACKENDS.includes(name)) {
    throw new Error(
      `gradient-routing bench: unknown backend '${name}'; use --backends with ${ALL_BACKENDS.join(', ')}.`,
    );
  }
}
if (args.dense !== 'plain' && args.dense !== 'fused' && args.dense !== 'library') {
  throw new Error(
    `gradient-routing bench: --dense is plain, fused or library, got '${args.dense}'.`,
  );
}
const dense = args.dense as DenseStyle;
const batches = integers('batches', args.batches) ?? (args.quick ? [256] : [256, 2048]);
const stepsOption = integers('steps', args.steps)?.[0];
const warmupOption = integers('warmup', args.warmup)?.[0];
const defaultThreads = defaultWasmThreads();
const threadCounts = integers('threads', args.threads) ?? [...new Set([1, defaultThreads])];
if (threadCounts.some((n) => n < 1 || n > 8)) {
  throw new Error(
    `gradient-routing bench: --threads takes counts from 1 to 8, got '${args.threads}'; e.g. --threads 1,2.`,
  );
}
const submitBatch = integers('submit-batch', args['submit-batch'])?.[0];
if (submitBatch !== undefined && submitBatch < 1) {
  throw new Error('gradient-routing bench: --submit-batch takes a count >= 1.');
}
const stockSteps = integers('stock-steps', args['stock-steps'])?.[0] ?? (args.quick ? 1 : 2);

// Exact per-kernel GPU times on WebGPU: timestamp queries without Dawn's 100 µs quantisation.
// Read by selectNodeBackend when it creates the device (see GRADIENT_ROUTING_DAWN_TOGGLES).
if (args.profile) {
  const toggles = process.env.GRADIENT_ROUTING_DAWN_TOGGLES;
  process.env.GRADIENT_ROUTING_DAWN_TOGGLES = [
    toggles,
    'allow_unsafe_apis',
    '-timestamp_quantization',
  ]
    .filter((part) => part !== undefined && part !== '')
    .join(',');
}

const log = (line = '') => process.stderr.write(`${line}\n`);
const out = (line = '') => (args.json ? log(line) : process.stdout.write(`${line}\n`));
const skipped: string[] = [];

const FLOPS_PER_EXAMPLE = flopsPerExample();
const gflops = (batch: number, ms: number) => (FLOPS_PER_EXAMPLE * batch) / (ms * 1e6);

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

/**
 * The backend's plain matMul rate for 256×784×2048 (the largest layer), single-threaded unless
 * --threads: the same weights every time, so XNNPACK's packing is cached as in inference. The
 * best of many short runs, since one busy moment of another process must not lower it.
 */
async function ceiling(): Promise<number> {
  const [a, b] = [tf.randomNormal([256, 784]), tf.randomNormal([784, 2048])];
  const runs = tf.getBackend() === 'cpu' ? 3 : 20;
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i <= runs; i++) {
    const start = performance.now();
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
    if (i > 0) best = Math.min(best, performance.now() - start);
  }
  tf.dispose([a, b]);
  return (2 * 256 * 784 * 2048) / (best * 1e6);
}

async function timedStep(model: PaperModel, x: tf.Tensor2D, mask: tf.Tensor2D | null) {
  const start = performance.now();
  const cpu = process.cpuUsage();
  const loss = model.step(x, mask);
  // The one host sync per step: reading the loss, as a training loop that logs it would.
  await loss.data();
  loss.dispose();
  return { ms: performance.now() - start, cpuMs: cpuMs(cpu) };
}

/**
 * Counts the WebGPU work of one step as the timed steps run it, and with `split` of one more
 * step in two phases (gradients, then the optimiser) to show where the work is.
 */
async function countStep(
  model: PaperModel,
  x: tf.Tensor2D,
  mask: tf.Tensor2D | null,
  split: boolean,
): Promise<StepWork> {
  const { counts: step } = await countWebGpuWork(() => timedStep(model, x, mask));
  if (!split) return { step, gradients: null, optimiser: null };
  const { result, counts: gradients } = await countWebGpuWork(async () => {
    const pass = model.gradients(x, mask);
    await pass.loss.data();
    return pass;
  });
  result.loss.dispose();
  const { counts: optimiser } = await countWebGpuWork(async () => {
    model.apply(result.grads);
    await model.variables[0]!.data();
  });
  return { step, gradients, optimiser };
}

function summarise(
  { backend, threads }: Target,
  batch: number,
  variant: Variant,
  warmup: number,
  times: Array<{ ms: number; cpuMs: number }>,
  work: StepWork | null = null,
): Row {
  const msPerStep = median(times.map((t) => t.ms));
  const cpuMsPerStep = median(times.map((t) => t.cpuMs));
  return {
    minMs: Math.min(...times.map((t) => t.ms)),
    maxMs: Math.max(...times.map((t) => t.ms)),
    backend,
    threads,
    batch,
    variant,
    msPerStep,
    gflops: gflops(batch, msPerStep),
    steps: times.length,
    warmup,
    cpuMsPerStep,
    work,
  };
}

async function profileStep(model: PaperModel, x: tf.Tensor2D, mask: tf.Tensor2D): Promise<void> {
  const phases = { 'forward + backward': 0, adam: 0 };
  const info = await tf.profile(async () => {
    let start = performance.now();
    const { loss, grads } = model.gradients(x, mask);
    await loss.data();
    phases['forward + backward'] = performance.now() - start;
    start = performance.now();
    model.apply(grads);
    await model.variables[0]!.data();
    phases.adam = performance.now() - start;
    loss.dispose();
  });
  out(
    `  phases (wall, profiling on): forward + backward ${phases['forward + backward'].toFixed(0)} ms, Adam ${phases.adam.toFixed(0)} ms`,
  );
  const adapter = tf.getBackend() === 'webgpu' ? nodeWebGpuAdapter() : null;
  if (adapter !== null && !adapter.timestampQueries) {
    out(
      `  kernel GPU times: not available, the WebGPU device has no timestamp queries (${adapter.dawnBackend === 'opengles' ? "Dawn's OpenGL ES backend, as on llvmpipe, never has them" : 'the adapter does not offer them'}); tfjs would report 0 ms for every kernel`,
    );
    return;
  }
  const byKernel = new Map<string, number>();
  for (const kernel of info.kernels) {
    const ms = typeof kernel.kernelTimeMs === 'number' ? kernel.kernelTimeMs : 0;
    byKernel.set(kernel.name, (byKernel.get(kernel.name) ?? 0) + ms);
  }
  const total = [...byKernel.values()].reduce((s, ms) => s + ms, 0);
  const category = (name: string) =>
    ['BatchMatMul', '_FusedMatMul'].includes(name)
      ? 'matmul'
      : ['Sum', 'Mean', 'Max', 'Min'].includes(name)
        ? 'reductions'
        : name === 'Transpose'
          ? 'transpose'
          : name === 'GradientRoutingAdam'
            ? 'optimiser (fused)'
            : 'elementwise and other';
  const byCategory = new Map<string, number>();
  for (const [name, ms] of byKernel) {
    byCategory.set(category(name), (byCategory.get(category(name)) ?? 0) + ms);
  }
  out(`  kernel time ${total.toFixed(0)} ms by category:`);
  for (const [name, ms] of [...byCategory].sort((p, q) => q[1] - p[1])) {
    out(`    ${name.padEnd(24)} ${ms.toFixed(1).padStart(8)} ms  ${pct(ms / total)}`);
  }
  out('  top kernels:');
  for (const [name, ms] of [...byKernel].sort((p, q) => q[1] - p[1]).slice(0, 8)) {
    out(`    ${name.padEnd(24)} ${ms.toFixed(1).padStart(8)} ms  ${pct(ms / total)}`);
  }
}

const pct = (ratio: number) => `${(100 * ratio).toFixed(1)}%`;

/** One row group of the bench: a backend, and for wasm its thread count. */
interface Target {
  backend: BackendName;
  threads: number | null;
}

const targetName = (t: Target) => (t.threads === null ? t.backend : `${t.backend}×${t.threads}`);
const sameTarget = (a: Target, b: Target) => a.backend === b.backend && a.threads === b.threads;

/** Backends whose steps take seconds: cpu, and WebGPU on a software adapter. */
function isSlow(backend: BackendName): boolean {
  return backend === 'cpu' || (backend === 'webgpu' && nodeWebGpuAdapter()?.software === true);
}

async function benchTarget(target: Target, rows: Row[]): Promise<number | null> {
  const { backend } = target;
  try {
    // WebGPU is measured only when it was named, or on a real GPU (auto would pick it).
    const forced = requestedBackends?.includes(backend) === true;
    if (backend === 'webgpu' && !forced) {
      if ((await selectNodeBackend({ onNotice: () => {} })) !== 'webgpu') {
        throw new Error('no real GPU (a software adapter is measured only with --backends webgpu)');
      }
    } else {
      await selectNodeBackend({
        backend,
        ...(target.threads === null ? {} : { threads: target.threads }),
      });
    }
  } catch (error) {
    skipped.push(`${targetName(target)}: not available (${(error as Error).message})`);
    return null;
  }
  if (backend === 'wasm' && !fastKernelsInstalled()) {
    throw new Error(
      'gradient-routing bench: selecting wasm did not install the fast kernels; check selectFrom in src/core/backend/select.ts.',
    );
  }
  if (backend === 'wasm' && wasmThreadsCount() !== target.threads) {
    skipped.push(
      `${targetName(target)}: wasm started with ${wasmThreadsCount()} thread(s) instead (see the notice above)`,
    );
    return null;
  }
  // tfjs-backend-webgpu registers the flag when it is imported, i.e. by the selection above.
  if (backend === 'webgpu' && submitBatch !== undefined) {
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', submitBatch);
  }
  const threadsNote =
    backend === 'wasm'
      ? `, ${wasmThreadsCount()} thread(s)`
      : backend === 'webgpu'
        ? `, submit batch ${tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')}, Dawn toggles '${process.env.GRADIENT_ROUTING_DAWN_TOGGLES ?? ''}'`
        : '';
  const slow = isSlow(backend);
  log(`[${backend}${threadsNote}] measuring the matMul ceiling…`);
  const rate = await ceiling();
  for (const batch of batches) {
    if (slow && batch > 512 && !args.full) {
      skipped.push(`${targetName(target)} batch ${batch}: minutes per step (use --full)`);
      continue;
    }
    const warmup = warmupOption ?? (slow || batch > 512 ? 1 : 2);
    const steps = stepsOption ?? (args.quick ? 2 : slow ? 1 : batch > 512 ? 3 : 8);
    const model = buildPaperModel(dense);
    const x = tf.randomUniform([batch, 784], -1, 1) as tf.Tensor2D;
    const labels = Array.from({ length: batch }, () => Math.floor(Math.random() * 10));
    const mask = groupMask(labels);
    log(
      `[${targetName(target)}] batch ${batch}: ${warmup} warm-up + ${steps} timed steps per variant…`,
    );
    for (let i = 0; i < warmup; i++) {
      await timedStep(model, x, null);
      await timedStep(model, x, mask);
    }
    // Interleaved, so that drift in machine load hits both variants alike.
    const unrouted: Array<{ ms: number; cpuMs: number }> = [];
    const routed: Array<{ ms: number; cpuMs: number }> = [];
    for (let i = 0; i < steps; i++) {
      unrouted.push(await timedStep(model, x, null));
      routed.push(await timedStep(model, x, mask));
    }
    const counted = backend === 'webgpu';
    if (counted) log(`[${targetName(target)}] batch ${batch}: counting the WebGPU work of a step…`);
    const unroutedWork = counted ? await countStep(model, x, null, false) : null;
    const routedWork = counted ? await countStep(model, x, mask, true) : null;
    rows.push(summarise(target, batch, 'unrouted', warmup, unrouted, unroutedWork));
    rows.push(summarise(target, batch, 'routed', warmup, routed, routedWork));

    if (backend === 'wasm') {
      const tooLong = batch > 512 && !args.full;
      if (stockSteps === 0 || tooLong) {
        skipped.push(
          `${targetName(target)} batch ${batch} stock: ${tooLong ? 'about 100 s per step (use --full)' : '--stock-steps 0'}`,
        );
      } else {
        // A stock step of this size takes seconds to minutes; its warm-up is not worth the wait.
        const stockWarmup = batch > 512 ? 0 : 1;
        log(
          `[${targetName(target)}] batch ${batch}: stock kernels, ${stockWarmup} warm-up + ${stockSteps} steps…`,
        );
        uninstallFastKernels();
        try {
          for (let i = 0; i < stockWarmup; i++) await timedStep(model, x, mask);
          const stock: Array<{ ms: number; cpuMs: number }> = [];
          for (let i = 0; i < stockSteps; i++) stock.push(await timedStep(model, x, mask));
          rows.push(summarise(target, batch, 'stock', stockWarmup, stock));
        } finally {
          installFastKernels();
        }
      }
    } else {
      skipped.push(`${backend} batch ${batch} stock: not applicable (fast kernels are wasm-only)`);
    }

    if (args.profile) {
      out(`profile: ${targetName(target)}, batch ${batch}, routed step`);
      await profileStep(model, x, mask);
    }
    model.dispose();
    tf.dispose([x, mask]);
  }
  // Measured again at the end: the higher of the two is the less disturbed.
  const best = Math.max(rate, await ceiling());
  if (backend === 'webgpu') releaseNodeWebGpu();
  return best;
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  const cpus = os.cpus();
  out(
    `gradient-routing bench: tfjs ${tf.version_core}, node ${process.version}, ${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}`,
  );
  out(
    `model 784-2048-512-32 / 32-512-2048-784 / 2 × 16-512-2048-784, ${(FLOPS_PER_EXAMPLE / 1e6).toFixed(1)} MFLOP per example per step, Adam, dense ${dense}`,
  );
  const rows: Row[] = [];
  const ceilings: Array<Target & { gflops: number }> = [];
  const backends = requestedBackends ?? ALL_BACKENDS.filter((b) => !(args.quick && b === 'cpu'));
  if (backends.includes('wasm')) {
    out(
      `wasm threads: ${threadCounts.join(' and ')} (default ${defaultThreads}: every logical core, at most 8)`,
    );
  }
  if (args.quick && requestedBackends === undefined) skipped.push('cpu: skipped by --quick');
  const targets: Target[] = backends.flatMap((backend): Target[] =>
    backend === 'wasm'
      ? threadCounts.map((threads) => ({ backend, threads }))
      : [{ backend, threads: null }],
  );
  for (const target of targets) {
    const rate = await benchTarget(target, rows);
    if (rate !== null) ceilings.push({ ...target, gflops: rate });
  }
  const loadAfter = os.loadavg()[0]!;

  out();
  out(
    'backend    threads  batch  variant   warm+steps   ms/step      (min–max)   cpu ms/step   examples/s   GFLOP/s   of ceiling',
  );
  const ceilingOf = (t: Target) => ceilings.find((c) => sameTarget(c, t))?.gflops ?? Number.NaN;
  for (const r of rows) {
    out(
      `${r.backend.padEnd(10)} ${String(r.threads ?? '–').padStart(7)} ${String(r.batch).padStart(6)}  ${r.variant.padEnd(9)} ${`${r.warmup}+${r.steps}`.padStart(10)} ${r.msPerStep.toFixed(0).padStart(9)} ${`(${r.minMs.toFixed(0)}–${r.maxMs.toFixed(0)})`.padStart(15)} ${r.cpuMsPerStep.toFixed(0).padStart(13)} ${((1000 * r.batch) / r.msPerStep).toFixed(0).padStart(12)} ${r.gflops.toFixed(2).padStart(9)} ${pct(r.gflops / ceilingOf(r)).padStart(12)}`,
    );
  }
  const counted = rows.filter((r) => r.work !== null);
  if (counted.length > 0) {
    out();
    out(
      `WebGPU work per step, counted from the backend (programs = compute dispatches; submit batch ${tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')}, Dawn toggles '${process.env.GRADIENT_ROUTING_DAWN_TOGGLES ?? ''}'):`,
    );
    out(
      'backend    batch  variant      ms/step   programs/step   uploads/step   submits/step   upload kB/step',
    );
    for (const r of counted) {
      const { step } = r.work!;
      out(
        `${r.backend.padEnd(10)} ${String(r.batch).padStart(5)}  ${r.variant.padEnd(9)} ${r.msPerStep.toFixed(0).padStart(10)} ${String(step.programs).padStart(15)} ${String(step.uploads).padStart(14)} ${String(step.submits).padStart(14)} ${(step.uploadedBytes / 1024).toFixed(1).padStart(16)}`,
      );
    }
    for (const r of counted) {
      const { gradients, optimiser } = r.work!;
      if (gradients === null || optimiser === null) continue;
      const top = Object.entries(r.work!.step.programsByName)
        .sort((p, q) => q[1] - p[1])
        .slice(0, 6)
        .map(([name, n]) => `${name} ${n}`)
        .join(', ');
      out(
        `${r.backend} batch ${r.batch} ${r.variant}: forward + backward ${gradients.programs} programs / ${gradients.uploads} uploads, optimiser (torchAdam) ${optimiser.programs} programs / ${optimiser.uploads} uploads; most dispatched: ${top}`,
      );
    }
  }
  out();
  for (const c of ceilings) {
    out(
      `ceiling ${targetName(c)}: plain matMul 256×784×2048, ${c.gflops.toFixed(2)} GFLOP/s (best of the runs before and after the steps)`,
    );
  }
  out();
  const measured = ceilings.filter((c) => rows.some((r) => sameTarget(r, c)));
  const find = (t: Target, batch: number, variant: Variant) =>
    rows.find((r) => sameTarget(r, t) && r.batch === batch && r.variant === variant);
  for (const target of measured) {
    for (const batch of batches) {
      const [unrouted, routed, stock] = (['unrouted', 'routed', 'stock'] as const).map((v) =>
        find(target, batch, v),
      );
      if (unrouted === undefined || routed === undefined) continue;
      const oneThread =
        target.backend === 'wasm' && target.threads !== 1
          ? find({ backend: 'wasm', threads: 1 }, batch, 'routed')
          : undefined;
      const parts = [
        `routed/unrouted ${routed.msPerStep > unrouted.msPerStep ? '+' : ''}${pct(routed.msPerStep / unrouted.msPerStep - 1)}`,
        stock === undefined
          ? null
          : `library vs stock ${(stock.msPerStep / routed.msPerStep).toFixed(1)}× faster`,
        oneThread === undefined
          ? null
          : `${target.threads} threads vs 1: ${(oneThread.msPerStep / routed.msPerStep).toFixed(2)}× faster (routed)`,
        `routed step/ceiling ${pct(routed.gflops / ceilingOf(target))}`,
      ].filter((p) => p !== null);
      out(`${targetName(target)} batch ${batch}: ${parts.join(', ')}`);
    }
  }
  out();
  for (const line of skipped) out(`skipped: ${line}`);
  out(
    `notes: ms/step is the median wall time of the timed steps (unrouted and routed interleaved), each ending with one host sync (reading the loss); cpu ms/step is this process's CPU time over the same steps, close to ms/step when nothing else competed for the cores; 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after.`,
  );

  if (args.json) {
    const json = {
      results: rows.map(({ backend, threads, batch, variant, msPerStep, gflops: g, work }) => ({
        backend,
        threads,
        batch,
        variant,
        msPerStep,
        gflops: g,
        ...(work === null ? {} : { work }),
      })),
      ceiling: ceilings,
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }
}

await main();
