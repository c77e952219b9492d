// Expand-Route-Ablate (Cloud et al., 2024, Section 4.2): unlearn a topic from a small
// transformer trained on WordNet glosses (or your own labelled corpus), beside its baselines.
//
//   npm run era                                   (the quick preset: minutes on a 2-core CPU)
//   npm run era -- --forget noun.animal --label-fractions 0.25,1
//   npm run era -- --data my-corpus.tsv --forget sports
//   npm run era -- --help
import { constants, rmdirSync } from 'node:fs';
import { access, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setMaskValidation } from 'gradient-routing';
import {
  ERA_METHODS,
  type EraConfig,
  type EraMethod,
  type EraPresetName,
  type EraProgress,
  eraPresets,
  formatEraLocalisationTable,
  formatEraTable,
  runEraExperiment,
  summarizeEra,
} from 'gradient-routing/experiments';
import {
  assertLexnames,
  type BackendChoice,
  type LabelledDocument,
  loadLabelledCorpus,
  loadWordNetGlosses,
  selectNodeBackend,
  writeEraReport,
} from 'gradient-routing/node';

const HELP = `Usage: npm run era -- [options]

  --preset quick|gpu|full|smoke  configuration (default quick: <= 10 min on a 2-core CPU, a
                               pipeline check too small to show the effect; gpu: the paper's
                               5,000 steps on full's model, for a GPU backend; full: closest to
                               the paper, overnight on a workstation CPU)
  --forget LABEL[,LABEL...]    the concept to unlearn (default noun.plant); with WordNet these are
                               lexicographer files (noun.plant, noun.animal, verb.motion, ...)
  --data FILE                  your own corpus instead of WordNet: UTF-8, one document per line,
                               'LABEL<TAB>text'; blank lines and lines starting with # are skipped
  --label-fractions F[,F...]   shares of forget documents that are labelled, each in [0, 1]
  --methods M[,M...]           era, control, filter (default all)
  --steps N                    training steps per method
  --seed N                     seed of split, labels, weights and batch order
  --forget-tokens frequency|all  route labelled forget tokens by the paper's frequency rule
                               (default) or every one fully (the mechanism check)
  --l1 sum|mean                the L1 term summed over units (the paper's; full) or averaged
                               (quick's default)
  --backend auto|tensorflow|wasm|cpu   (default auto)
  --out DIR                    where summary.json, table.md, details.json and the figures go
                               (default out/era-PRESET)
  --help                       this text`;

function fail(message: string): never {
  console.error(`era: ${message}\n\nRun 'npm run era -- --help' for the options.`);
  process.exit(2);
}

function list(text: string | undefined): string[] | undefined {
  return text
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function parseOptions() {
  const parse = () =>
    parseArgs({
      options: {
        preset: { type: 'string', default: 'quick' },
        forget: { type: 'string' },
        data: { type: 'string' },
        'label-fractions': { type: 'string' },
        methods: { type: 'string' },
        steps: { type: 'string' },
        seed: { type: 'string' },
        'forget-tokens': { type: 'string' },
        l1: { type: 'string' },
        backend: { type: 'string', default: 'auto' },
        out: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    });
  let values: ReturnType<typeof parse>['values'];
  try {
    ({ values } = parse());
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  if (!(values.preset in eraPresets)) {
    fail(`unknown preset '${values.preset}'; use ${Object.keys(eraPresets).join(', ')}`);
  }
  const preset = values.preset as EraPresetName;
  const fractions = list(values['label-fractions'])?.map((text) => {
    const f = Number(text);
    if (!(text !== '' && f >= 0 && f <= 1)) {
      fail(`--label-fractions needs numbers in [0, 1], got '${text}' (e.g. 0.25,0.5,1)`);
    }
    return f;
  });
  const methods = list(values.methods)?.map((m) => {
    if (!ERA_METHODS.includes(m as EraMethod)) {
      fail(`unknown method '${m}' in --methods; use ${ERA_METHODS.join(', ')}`);
    }
    return m as EraMethod;
  });
  const integer = (name: string, text: string | undefined, min: number) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!(Number.isInteger(n) && n >= min))
      fail(`--${name} needs an integer >= ${min}, got '${text}'`);
    return n;
  };
  const steps = integer('steps', values.steps, 1);
  const seed = integer('seed', values.seed, 0);
  const forgetTokens = values['forget-tokens'];
  if (forgetTokens !== undefined && forgetTokens !== 'frequency' && forgetTokens !== 'all') {
    fail(`--forget-tokens is frequency or all, got '${forgetTokens}'`);
  }
  const l1 = values.l1;
  if (l1 !== undefined && l1 !== 'sum' && l1 !== 'mean') fail(`--l1 is sum or mean, got '${l1}'`);
  const forget = list(values.forget);
  if (forget !== undefined && forget.length === 0) fail('--forget needs at least one label');
  const base: EraConfig = eraPresets[preset];
  const config: EraConfig = {
    ...base,
    ...(forget && { forget }),
    ...(fractions && { labelFractions: fractions }),
    ...(methods && { methods }),
    ...(steps !== undefined && { steps, warmupSteps: Math.min(base.warmupSteps, steps) }),
    ...(seed !== undefined && { seed }),
    ...(forgetTokens !== undefined && { forgetTokens }),
    ...(l1 !== undefined && { l1Reduction: l1 }),
  };
  if (values.data === undefined) {
    try {
      assertLexnames(config.forget);
    } catch (error) {
      fail(`--forget: ${(error as Error).message.replace('gradient-routing: ', '')}`);
    }
  }
  return {
    preset,
    config,
    data: values.data,
    backend: values.backend as BackendChoice,
    out: values.out ?? `out/era-${preset}`,
  };
}

/**
 * Fails now, not after training, if `out` cannot take the report. Returns whether the directory
 * was created here, so a failed run can remove it again.
 */
async function checkOutputDirectory(out: string): Promise<boolean> {
  const existing = await stat(out).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    fail(`--out ${out} is a file; pass a directory (it is created if missing)`);
  }
  try {
    await mkdir(out, { recursive: true });
    const probe = path.join(out, `.era-write-check-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe);
  } catch (error) {
    fail(`cannot write to --out ${out}: ${(error as Error).message}`);
  }
  return existing === undefined;
}

/** A redrawn bar on a terminal; in a file or pipe, a plain line every 5 s. */
function progressBar(started: number) {
  const interactive = process.stderr.isTTY === true;
  const every = interactive ? 250 : 5000;
  let lastDraw = Number.NEGATIVE_INFINITY;
  return (p: EraProgress) => {
    const now = performance.now();
    if (now - lastDraw < every && p.done !== p.total) return;
    lastDraw = now;
    const elapsed = (now - started) / 1000;
    const eta = (elapsed / p.done) * (p.total - p.done);
    const width = 24;
    const filled = Math.round((p.done / p.total) * width);
    const loss = p.loss === undefined ? '' : ` loss ${p.loss.toFixed(3)}`;
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total} ${p.phase}${loss} ETA ${eta.toFixed(0)}s`;
    process.stderr.write(interactive ? `\r${line.padEnd(90)}` : `${line}\n`);
    if (p.done === p.total && interactive) process.stderr.write('\n');
  };
}

async function main() {
  const options = parseOptions();
  const started = performance.now();
  let documents: LabelledDocument[];
  if (options.data !== undefined) {
    await access(options.data, constants.R_OK).catch(() =>
      fail(`cannot read --data ${options.data}; check the path`),
    );
    documents = await loadLabelledCorpus(options.data);
  } else {
    documents = await loadWordNetGlosses();
  }
  const createdOut = await checkOutputDirectory(options.out);
  // A run that fails leaves no trace: the report is written only at the end, and a directory
  // made for it is removed again (only if still empty).
  process.on('exit', (code) => {
    if (code !== 0 && createdOut) {
      try {
        rmdirSync(options.out);
      } catch {
        // Not empty or already gone: leave it.
      }
    }
  });
  const backend = await selectNodeBackend({ backend: options.backend });
  // NaN or out-of-range masks and labels are errors, not silently wrong gradients (the forget
  // rows declare their [-0.75, 1] range). Validation reads masks synchronously, which WebGPU in
  // Node cannot do, so it stays off there.
  setMaskValidation(backend !== 'webgpu');
  const { config } = options;
  console.error(
    `era: preset ${options.preset}, backend ${backend}, ${documents.length} documents from ${options.data ?? 'WordNet 3.1 glosses'}, ` +
      `forget ${config.forget.join(', ')}, methods ${config.methods.join(', ')}, label fractions ${config.labelFractions.join(', ')}, ` +
      `${config.steps} steps of batch ${config.batchSize}`,
  );
  const result = await runEraExperiment(documents, config, {
    onProgress: progressBar(performance.now()),
  });
  const wallSeconds = (performance.now() - started) / 1000;
  // quick is too small for ERA's effect to appear (docs/era.md): its outputs say so.
  const preset =
    options.preset === 'quick'
      ? 'quick, a pipeline check: too small to show the effect'
      : options.preset;
  const summary = summarizeEra(result, { preset, backend, wallSeconds });
  const files = await writeEraReport(options.out, summary, result);
  console.log(formatEraTable(summary));
  console.log(
    `\nWhere the concept went (docs/era.md, "Localisation"):\n${formatEraLocalisationTable(summary)}`,
  );
  console.log(
    `\n${result.data.trainForget} forget / ${result.data.trainRetain} retain training documents, vocabulary ${result.data.vocabSize} words (${(100 * result.data.unknownTokenShare).toFixed(1)} % of tokens unknown)`,
  );
  console.log(`wall time ${wallSeconds.toFixed(1)} s, backend ${backend}`);
  console.log(
    `report in ${options.out}/: ${Object.values(files)
      .map((f) => path.basename(f))
      .join(', ')}`,
  );
}

main().catch((error: unknown) => {
  console.error(`era: ${(error as Error).message.replace('gradient-routing: ', '')}`);
  process.exit(1);
});
