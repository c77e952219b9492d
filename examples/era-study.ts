// Studies of Expand-Route-Ablate beyond one run (docs/era.md, "Mechanism check" and "Scale study"):
//
//   npm run era:study -- mechanism                 ERA vs control, 600 steps, every token of
//                                                  every forget gloss routed fully, 100 % labels
//   npm run era:study -- scale --steps 150,600,1200 ERA vs control at increasing training length
//   npm run era:study -- report DIR [DIR...] --out F  one table and figure from the points' study.json
//
// Each point is one `runEraExperiment` (control and ERA at 100 % labels) with its full report
// (summary.json, table.md, figures) in its own folder under --out; the study's table and figure
// go in --out itself.
import { constants } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setMaskValidation } from 'gradient-routing';
import {
  type EraConfig,
  type EraPresetName,
  type EraSummary,
  eraPresets,
  formatEraTable,
  lineChartSpec,
  runEraExperiment,
  summarizeEra,
} from 'gradient-routing/experiments';
import {
  assertLexnames,
  loadWordNetGlosses,
  writeChartPng,
  writeEraReport,
} from 'gradient-routing/node';
import {
  backendOptions,
  checkDirectoryOption,
  checkOption,
  exitWithError,
  integer,
  listOf,
  oneOf,
  readCommandLine,
  startBackend,
  text,
  UsageError,
} from './cli-args.js';

const PROGRAM = 'era:study';

const STUDY_MODES = ['mechanism', 'scale', 'report'] as const;

const command = {
  program: PROGRAM,
  usage: 'npm run era:study -- mechanism|scale|report [DIR...] [options]',
  positionals: {
    MODE: {
      type: oneOf(STUDY_MODES),
      help:
        'mechanism: ERA vs control, every token of labelled forget glosses routed\n' +
        '  fully (no frequency rule), 100 % labels\n' +
        "scale: ERA vs control (100 % labels, the paper's frequency rule) at each\n" +
        '  number of training steps in --steps\n' +
        'report: the table (stdout, --out DIR/study.md) and figure (--out\n' +
        "  DIR/study.png) of every point in the DIRs' study.json files",
    },
    DIR: {
      each: text('DIR', 'a directory'),
      help: 'report only: the --out folders of mechanism or scale runs',
    },
  },
  options: {
    preset: {
      type: oneOf(Object.keys(eraPresets) as EraPresetName[]),
      help: 'base configuration (default quick)',
    },
    steps: {
      type: listOf(integer(1), 'integers >= 1', '150,600,1200'),
      help: 'training steps, one point each\n(default: 600 for mechanism, 150,600,1200 for scale)',
    },
    forget: {
      type: listOf(text('LABEL', 'a label'), 'labels', 'noun.plant,noun.animal'),
      help: "the concept (default the preset's, noun.plant)",
    },
    l1: {
      type: oneOf(['sum', 'mean'] as const),
      help: "the L1 term's reduction (default the preset's)",
    },
    'forget-tokens': {
      type: oneOf(['frequency', 'all'] as const),
      help:
        'which tokens of labelled forget glosses are routed (default: all for\n' +
        'mechanism, frequency for scale)',
    },
    seed: {
      type: integer(0),
      help: "seed of split, labels, weights and batch order (default the preset's, 0)",
    },
    ...backendOptions,
    out: {
      type: text('DIR', 'a directory'),
      help: 'where the points and the study go (default out/era-study-MODE)',
    },
  },
};

/** The study's configuration from the command line; exits 2 on a wrong one. */
function options() {
  const values = readCommandLine(command);
  const mode = values.MODE;
  if (mode === 'report' && values.DIR.length === 0) {
    throw new UsageError('report needs the folders of the points: report DIR [DIR...]');
  }
  if (mode !== 'report' && values.DIR.length > 0) {
    throw new UsageError(`unexpected argument '${values.DIR[0]}'; only report takes folders`);
  }
  const preset = values.preset ?? 'quick';
  const base: EraConfig = eraPresets[preset];
  const steps = values.steps ?? (mode === 'mechanism' ? [600] : [150, 600, 1200]);
  const config: EraConfig = {
    ...base,
    methods: ['era', 'control'],
    labelFractions: [1],
    l1Reduction: values.l1 ?? base.l1Reduction,
    forgetTokens: values['forget-tokens'] ?? (mode === 'mechanism' ? 'all' : 'frequency'),
    // The study reads the contraction; one short attack keeps each point cheap.
    attack: { ...base.attack, seeds: 1, steps: 20, evalEvery: 10 },
    ...(values.forget !== undefined && { forget: values.forget }),
    ...(values.seed !== undefined && { seed: values.seed }),
  };
  return {
    mode,
    reportDirs: values.DIR,
    preset,
    steps,
    config,
    backend: values.backend,
    threads: values.threads,
    out: values.out ?? `out/era-study-${mode}`,
  };
}

/**
 * Checks what needs the file system before any work: --out is not a file, the report's folders
 * hold a study.json, and (for a study) the forget labels are WordNet's.
 */
async function checkInputs(o: ReturnType<typeof options>): Promise<void> {
  await checkDirectoryOption('out', o.out);
  if (o.mode === 'report') {
    for (const dir of o.reportDirs) {
      await access(path.join(dir, 'study.json'), constants.R_OK).catch(() => {
        throw new UsageError(`DIR ${dir} has no readable study.json; pass a study's --out folder`);
      });
    }
    return;
  }
  await checkOption('forget', async () => assertLexnames(o.config.forget));
}

/** One study point: the forget and retain change at contraction for each method. */
interface StudyPoint {
  readonly steps: number;
  readonly trainingTokens: number;
  readonly seconds: number;
  readonly command: string;
  readonly summary: EraSummary;
  /** Per method: contracted − trained, before the coherence fine-tune. */
  readonly contraction: Record<string, { forget: number; retain: number }>;
}

/** A run's loss change from its trained model, on the forget and retain sides. */
interface LossChange {
  readonly forget: number;
  readonly retain: number;
}

/**
 * The two readings of one point (docs/era.md, "Scale study"): at contraction (ERA − control
 * ≥ 0.05 nats on forget at no more than half that on retain) and the presets' (after the
 * coherence fine-tune, ERA's forget rise ≥ 0.05 and ≥ 2× its retain rise, the control's forget
 * change ≤ 0.05).
 */
function readPoint(p: StudyPoint) {
  const era = p.contraction.era!;
  const control = p.contraction.control!;
  const afterCoherence = (method: string): LossChange => {
    const run = p.summary.runs.find((r) => r.method === method)!;
    return {
      forget: run.forget.after - run.forget.before,
      retain: run.retain.after - run.retain.before,
    };
  };
  const eraAfter = afterCoherence('era');
  const controlAfter = afterCoherence('control');
  const extra = era.forget - control.forget;
  const cost = era.retain - control.retain;
  return {
    era,
    control,
    extra,
    cost,
    studyMet: extra >= 0.05 && cost <= extra / 2,
    eraAfter,
    controlAfter,
    presetMet:
      eraAfter.forget >= 0.05 &&
      eraAfter.forget >= 2 * eraAfter.retain &&
      Math.abs(controlAfter.forget) <= 0.05,
  };
}

/** Every preset trains at one seed; a point at another says so in its command and series. */
const otherSeed = (config: EraConfig) => config.seed !== eraPresets.quick.seed;

/**
 * The series a point belongs to: its concept, and its seed where that is not the presets' (a
 * second seed is its own series, not another training length).
 */
function seriesName(config: EraConfig): string {
  const concept = config.forget.join(', ');
  return otherSeed(config) ? `${concept}, seed ${config.seed}` : concept;
}

/** ERA's contraction effect beyond the control's, per point: the study's table and figures. */
async function report(dirs: readonly string[], out: string) {
  const points: Array<StudyPoint & { concept: string }> = [];
  for (const dir of dirs) {
    const read = JSON.parse(await readFile(path.join(dir, 'study.json'), 'utf8')) as StudyPoint[];
    for (const p of read) points.push({ ...p, concept: seriesName(p.summary.config) });
  }
  points.sort((a, b) => a.concept.localeCompare(b.concept) || a.trainingTokens - b.trainingTokens);
  const readings = new Map(points.map((p) => [p, readPoint(p)]));
  const rows = points.map((p) => {
    const r = readings.get(p)!;
    const localisation = p.summary.runs.find((run) => run.method === 'era')?.localisation;
    const ratio = localisation?.activations.map((a) => a.ratio.toFixed(2)).join(' / ') ?? 'n/a';
    return `| ${p.concept} | ${p.steps} | ${(p.trainingTokens / 1e6).toFixed(2)} M | ${pair(r.era)} | ${pair(r.control)} | ${signed(r.extra)} | ${signed(r.cost)} | ${r.studyMet ? 'yes' : 'no'} | ${pair(r.eraAfter)} | ${pair(r.controlAfter)} | ${r.presetMet ? 'yes' : 'no'} | ${ratio} | ${localisation?.routing.routedShare.toFixed(3) ?? 'n/a'} | ${localisation?.routing.routedTokensSeen ?? 'n/a'} | ${p.seconds.toFixed(0)} s | \`${p.command}\` |`;
  });
  const table = [
    '| concept | steps | training tokens | ERA Δ forget / Δ retain | control Δ forget / Δ retain | ERA − control, forget | ERA − control, retain | ≥ 0.05 at ≤ half the retain cost | after coherence: ERA Δ forget / Δ retain | after coherence: control | ERA ≥ 0.05 and ≥ 2× retain, control ≤ 0.05 | ERA ratio per layer | routed share | routed tokens seen | wall time | command |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---|',
    ...rows,
  ].join('\n');
  console.log(table);
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'study.md'), `${table}\n`);
  const concepts = [...new Set(points.map((p) => p.concept))];
  const curves = concepts.flatMap((concept) => {
    const mine = points.filter((p) => p.concept === concept);
    const steps = mine.map((p) => p.trainingTokens / 1e3);
    return [
      {
        name: `${concept}: forget`,
        steps,
        values: mine.map((p) => readings.get(p)!.extra),
      },
      {
        name: `${concept}: retain`,
        steps,
        values: mine.map((p) => readings.get(p)!.cost),
      },
    ];
  });
  await writeGapChart(
    path.join(out, 'study.png'),
    'ERA: loss change at contraction beyond the control’s, by training length',
    curves,
  );
  await writeGapChart(
    path.join(out, 'study-training.png'),
    'ERA: deleting the expansion during training, beyond the control (longest run)',
    concepts.flatMap((concept) => duringTraining(concept, points)),
  );
}

/** ERA − control curves against training tokens, with the 0.05 criterion across their range. */
async function writeGapChart(
  file: string,
  title: string,
  curves: ReadonlyArray<{ name: string; steps: number[]; values: number[] }>,
) {
  const tokens = curves.flatMap((curve) => curve.steps);
  const criterion = {
    name: 'criterion: +0.05',
    steps: [Math.min(...tokens), Math.max(...tokens)],
    values: [0.05, 0.05],
  };
  await writeChartPng(
    file,
    lineChartSpec({
      title,
      stepTitle: 'training tokens (thousands)',
      valueTitle: 'ERA − control (nats/token)',
      seriesTitle: 'concept, loss',
      points: true,
      curves: [...curves, criterion],
    }),
    { scale: 2 },
  );
}

/**
 * The checkpoints of a concept's longest point: deleting the expansion every 10 % of training,
 * ERA's loss change minus the control's, on forget and retain.
 */
function duringTraining(concept: string, points: ReadonlyArray<StudyPoint & { concept: string }>) {
  const longest = points.filter((p) => p.concept === concept).at(-1)!;
  const checkpoints = (method: string) =>
    longest.summary.runs.find((r) => r.method === method)?.localisation?.checkpoints ?? [];
  const era = checkpoints('era');
  const control = checkpoints('control');
  const tokensPerStep = longest.trainingTokens / longest.steps / 1e3;
  const steps = era.map((c) => c.step * tokensPerStep);
  const gap = (side: 'forget' | 'retain') =>
    era.map((c, i) => {
      const base = control[i]!;
      const ablated = side === 'forget' ? 'forgetAblated' : 'retainAblated';
      return c[ablated] - c[side] - (base[ablated] - base[side]);
    });
  return [
    { name: `${concept}, ${longest.steps} steps: forget`, steps, values: gap('forget') },
    { name: `${concept}, ${longest.steps} steps: retain`, steps, values: gap('retain') },
  ];
}

const pair = (c: LossChange) => `${signed(c.forget)} / ${signed(c.retain)}`;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;

async function main() {
  const o = options();
  await checkInputs(o);
  if (o.mode === 'report') {
    await report(o.reportDirs, o.out);
    return;
  }
  const documents = await loadWordNetGlosses();
  const backend = await startBackend(o);
  setMaskValidation(backend.name !== 'webgpu');
  const points: StudyPoint[] = [];
  for (const steps of o.steps) {
    const config: EraConfig = {
      ...o.config,
      steps,
      warmupSteps: Math.min(o.config.warmupSteps, steps),
    };
    const started = performance.now();
    let lastPhase = '';
    const result = await runEraExperiment(documents, config, {
      onProgress: (p) => {
        if (p.phase !== lastPhase) {
          lastPhase = p.phase;
          console.error(
            `  ${p.phase} (${p.done}/${p.total}, ${((performance.now() - started) / 1000).toFixed(0)} s)`,
          );
        }
      },
    });
    const seconds = (performance.now() - started) / 1000;
    const summary = summarizeEra(result, {
      preset: `${o.preset}, ${o.mode} ${steps} steps`,
      backend: backend.name,
      wallSeconds: seconds,
    });
    const dir = path.join(o.out, `steps-${steps}`);
    await writeEraReport(dir, summary, result);
    const contraction: StudyPoint['contraction'] = {};
    result.details.forEach((d, i) => {
      const run = result.runs[i]!;
      if (d.contracted !== null) {
        contraction[d.method] = {
          forget: d.contracted.forget - run.forget.before,
          retain: d.contracted.retain - run.retain.before,
        };
      }
    });
    const pointCommand = `npm run era:study -- ${o.mode} --steps ${steps} --l1 ${config.l1Reduction} --forget-tokens ${config.forgetTokens} --forget ${config.forget.join(',')}${otherSeed(config) ? ` --seed ${config.seed}` : ''}`;
    points.push({
      steps,
      trainingTokens: steps * config.batchSize * config.model.contextLength,
      seconds,
      command: pointCommand,
      summary,
      contraction,
    });
    console.log(
      `\n${pointCommand} (${seconds.toFixed(0)} s, ${backend.label})\n${formatEraTable(summary)}`,
    );
    console.log(`contraction (before coherence): ${JSON.stringify(contraction)}`);
    await writeFile(path.join(o.out, 'study.json'), `${JSON.stringify(points, null, 2)}\n`);
  }
}

main().catch((error: unknown) => exitWithError(PROGRAM, error));
