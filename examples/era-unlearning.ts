// Expand-Route-Ablate (Cloud et al., 2024, Section 4.2): unlearn a topic from a small
// transformer trained on WordNet glosses (or your own labelled corpus), beside its baselines.
//
//   npm run era                                   (the quick preset: minutes on a 2-core CPU)
//   npm run era -- --forget noun.animal --label-fractions 0.25,1
//   npm run era -- --data my-corpus.tsv --forget sports
//   npm run era -- --help
import { constants, rmdirSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { setMaskValidation } from 'gradient-routing';
import {
  ERA_METHODS,
  type EraConfig,
  type EraPresetName,
  type EraProgress,
  eraPresets,
  formatEraLocalisationTable,
  formatEraTable,
  pipelineCheckNote,
  runEraExperiment,
  summarizeEra,
  withPipelineCheckNote,
} from 'gradient-routing/experiments';
import {
  assertLexnames,
  type LabelledDocument,
  loadLabelledCorpus,
  loadWordNetGlosses,
  prepareOutputDirectory,
  writeEraReport,
} from 'gradient-routing/node';
import {
  backendOptions,
  checkDirectoryOption,
  checkOption,
  exitWithError,
  integer,
  listOf,
  numberIn,
  oneOf,
  readCommandLine,
  startBackend,
  text,
  UsageError,
} from './cli-args.js';
import { progressReporter } from './cli-progress.js';

const PROGRAM = 'era';

const command = {
  program: PROGRAM,
  usage: 'npm run era -- [options]',
  options: {
    preset: {
      type: oneOf(Object.keys(eraPresets) as EraPresetName[]),
      help:
        'configuration (default quick: <= 10 min on a 2-core CPU, a pipeline check\n' +
        "too small to show the effect; medium: quick's model, 2,400 steps, 100 % labels,\n" +
        'where the effect shows (ERA and control: ~1 h on 2 cores); gpu: the\n' +
        "paper's 5,000 steps on full's model, for a GPU backend; full: closest to the\n" +
        'paper, overnight on a workstation CPU; smoke: seconds, only checks the pipeline)',
    },
    forget: {
      type: listOf(text('LABEL', 'a label'), 'labels', 'noun.plant,noun.animal'),
      help:
        'the concept to unlearn (default noun.plant); with WordNet these are\n' +
        'lexicographer files (noun.plant, noun.animal, verb.motion, ...)',
    },
    data: {
      type: text('FILE', 'a file'),
      help:
        'your own corpus instead of WordNet: UTF-8, one document per line,\n' +
        "'LABEL<TAB>text'; blank lines and lines starting with # are skipped",
    },
    'label-fractions': {
      type: listOf(numberIn(0, 1), 'numbers in [0, 1]', '0.25,0.5,1'),
      help: "shares of forget documents that are labelled (default: the preset's)",
    },
    methods: {
      type: listOf(
        oneOf(ERA_METHODS, 'M'),
        `methods among ${ERA_METHODS.join(', ')}`,
        'era,filter',
      ),
      help: 'the methods to run (default all)',
    },
    steps: { type: integer(1), help: "training steps per method (default: the preset's)" },
    seed: { type: integer(0), help: 'seed of split, labels, weights and batch order' },
    'forget-tokens': {
      type: oneOf(['frequency', 'all'] as const),
      help:
        "route labelled forget tokens by the paper's frequency rule (default) or every one\n" +
        'fully (the mechanism check)',
    },
    l1: {
      type: oneOf(['sum', 'mean'] as const),
      help: "the L1 term summed over units (the paper's; full) or averaged (quick's default)",
    },
    ...backendOptions,
    out: {
      type: text('DIR', 'a directory'),
      help:
        'where summary.json, table.md, details.json and the figures go\n' +
        '(default out/era-PRESET)',
    },
  },
};

/** The run's configuration from the command line; exits 2 on a wrong one. */
function parseOptions() {
  const values = readCommandLine(command);
  const preset = values.preset ?? 'quick';
  const { forget, methods, steps, seed } = values;
  const fractions = values['label-fractions'];
  const forgetTokens = values['forget-tokens'];
  const { l1 } = values;
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
  return {
    preset,
    config,
    data: values.data,
    backend: values.backend,
    threads: values.threads,
    out: values.out ?? `out/era-${preset}`,
  };
}

/**
 * Checks the inputs that need the file system before any work: the corpus is readable, the
 * forget labels are WordNet's (without --data), and --out can take the report. Returns whether
 * --out was created here, so a failed run can remove it again.
 */
async function checkInputs(options: ReturnType<typeof parseOptions>): Promise<boolean> {
  const { data, out } = options;
  if (data !== undefined) {
    await access(data, constants.R_OK).catch(() => {
      throw new UsageError(`cannot read --data ${data}; pass a readable corpus file`);
    });
  } else {
    await checkOption('forget', async () => assertLexnames(options.config.forget));
  }
  await checkDirectoryOption('out', out);
  const existed = (await stat(out).catch(() => undefined)) !== undefined;
  await checkOption('out', () => prepareOutputDirectory(out));
  return !existed;
}

/**
 * Progress through every phase: a line when a run enters a phase and when it leaves one for the
 * evaluations between phases (which the step counts do not see), and the steps of each phase
 * (training, coherence fine-tune, attack, which evaluates every few steps) with an ETA over all
 * of them.
 */
function phaseProgress(config: EraConfig) {
  const progress = progressReporter(PROGRAM);
  // Steps seen per phase: training is interleaved with its checkpoints, so a phase can resume.
  const stepsSeen = new Map<string, number>();
  return (p: EraProgress) => {
    const [stage = '', ...words] = p.phase.split(' ');
    const run = words.join(' ');
    const stepsInPhase = (stepsSeen.get(p.phase) ?? 0) + 1;
    stepsSeen.set(p.phase, stepsInPhase);
    if (stepsInPhase === 1) {
      const starts: Record<string, string> = {
        train: `training ${run} (${config.steps} steps)…`,
        checkpoint: `checkpoints of ${run}: its losses with the expansion deleted, every 10 % of training…`,
        coherence: `coherence fine-tune of ${run} (up to ${config.coherence.steps} steps)…`,
        attack: `retraining attack on ${run}: ${config.attack.seeds} seed(s) of ${config.attack.steps} steps, evaluated every ${config.attack.evalEvery}…`,
      };
      progress.say(starts[stage] ?? `${p.phase}…`);
    }
    const loss = p.loss === undefined ? '' : ` loss ${p.loss.toFixed(3)}`;
    progress.update({
      done: p.done,
      total: p.total,
      label: `${p.done}/${p.total} ${p.phase}${loss}`,
    });
    // What runs next, between this phase's last step and the next phase's first.
    if (stage === 'train' && stepsInPhase === config.steps) {
      progress.say(
        run.startsWith('filter')
          ? `evaluating ${run} on ${config.evalDocuments} retain and forget documents…`
          : `evaluating ${run}, contracting it and evaluating again (${config.evalDocuments} documents)…`,
      );
    } else if (stage === 'coherence' && stepsInPhase === config.coherence.steps) {
      progress.say(`evaluating the fine-tuned ${run}…`);
    }
  };
}

async function main() {
  const options = parseOptions();
  const createdOut = await checkInputs(options);
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
  const started = performance.now();
  const backend = await startBackend(options);
  // NaN or out-of-range masks and labels are errors, not silently wrong gradients (the forget
  // rows declare their [-0.75, 1] range). Validation reads masks synchronously, which WebGPU in
  // Node cannot do, so it stays off there.
  setMaskValidation(backend.name !== 'webgpu');
  const documents: LabelledDocument[] =
    options.data === undefined
      ? await loadWordNetGlosses()
      : await loadLabelledCorpus(options.data);
  const { config } = options;
  console.error(
    `${PROGRAM}: preset ${options.preset}, backend ${backend.label}, ${documents.length} documents from ${options.data ?? 'WordNet 3.1 glosses'}, ` +
      `forget ${config.forget.join(', ')}, methods ${config.methods.join(', ')}, label fractions ${config.labelFractions.join(', ')}, ` +
      `${config.steps} steps of batch ${config.batchSize}`,
  );
  const note = pipelineCheckNote(options.preset);
  if (note !== undefined) console.error(`${PROGRAM}: ${note}.`);
  const result = await runEraExperiment(documents, config, { onProgress: phaseProgress(config) });
  const wallSeconds = (performance.now() - started) / 1000;
  // quick is too small for ERA's effect to appear (docs/era.md): its outputs say so.
  const preset =
    options.preset === 'quick'
      ? 'quick, a pipeline check: too small to show the effect'
      : options.preset;
  const summary = summarizeEra(result, { preset, backend: backend.name, wallSeconds });
  const files = await writeEraReport(options.out, summary, result);
  console.log(withPipelineCheckNote(options.preset, formatEraTable(summary)));
  console.log(
    `\nWhere the concept went (docs/era.md, "Localisation"):\n${formatEraLocalisationTable(summary)}`,
  );
  console.log(
    `\n${result.data.trainForget} forget / ${result.data.trainRetain} retain training documents, vocabulary ${result.data.vocabSize} words (${(100 * result.data.unknownTokenShare).toFixed(1)} % of tokens unknown)`,
  );
  console.log(`wall time ${wallSeconds.toFixed(1)} s, backend ${backend.label}`);
  console.log(
    `report in ${options.out}/: ${Object.values(files)
      .map((f) => path.basename(f))
      .join(', ')}`,
  );
}

main().catch((error: unknown) => exitWithError(PROGRAM, error));
