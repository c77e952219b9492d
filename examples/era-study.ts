// Studies of Expand-Route-Ablate beyond one run (docs/era.md, "Mechanism check" and "Scale study"):
//
//   npm run era:study -- mechanism                 ERA vs control, every token of every forget
//                                                  gloss routed fully, 100 % labels
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
      help: 'training steps, one point each\n(default: 300 for mechanism, 150,600,1200 for scale)',
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
  const steps = values.steps ?? (mode === 'mechanism' ? [300] : [150, 600, 1200]);
  const config: EraConfig = {
    ...base,
    methods: ['era', 'control'],
    labelFractions: [1],
    l1Reduction: values.l1 ?? base.l1Reduction,
    forgetTokens: values['forget-tokens'] ?? (mode === 'mechanism' ? 'all' : 'frequency'),
    // The study reads the contraction; one short attack keeps each point cheap.
    attack: { ...base.attack, seeds: 1, steps: 20, evalEvery: 10 },
    ...(values.forget !== undefined && { forget: values.forget }),
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

/** ERA's contraction effect beyond the control's, per point: the study's table and figure. */
async function report(dirs: readonly string[], out: string) {
  const points: Array<StudyPoint & { concept: string }> = [];
  for (const dir of dirs) {
    const read = JSON.parse(await readFile(path.join(dir, 'study.json'), 'utf8')) as StudyPoint[];
    for (const p of read) points.push({ ...p, concept: p.summary.config.forget.join(', ') });
  }
  points.sort((a, b) => a.concept.localeCompare(b.concept) || a.trainingTokens - b.trainingTokens);
  const rows = points.map((p) => {
    const era = p.contraction.era!;
    const control = p.contraction.control!;
    const extra = era.forget - control.forget;
    const cost = era.retain - control.retain;
    const shown = extra >= 0.05 && cost <= extra / 2;
    const localisation = p.summary.runs.find((r) => r.method === 'era')?.localisation;
    const ratio = localisation?.activations.map((a) => a.ratio.toFixed(2)).join(' / ') ?? 'n/a';
    return `| ${p.concept} | ${p.steps} | ${(p.trainingTokens / 1e6).toFixed(2)} M | ${signed(era.forget)} / ${signed(era.retain)} | ${signed(control.forget)} / ${signed(control.retain)} | ${signed(extra)} | ${signed(cost)} | ${ratio} | ${localisation?.routing.routedShare.toFixed(3) ?? 'n/a'} | ${shown ? 'yes' : 'no'} | ${p.seconds.toFixed(0)} s | \`${p.command}\` |`;
  });
  const table = [
    '| concept | steps | training tokens | ERA Δ forget / Δ retain | control Δ forget / Δ retain | ERA − control, forget | ERA − control, retain | ERA ratio per layer | routed share | ≥ 0.05 at ≤ half the retain cost | wall time | command |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|',
    ...rows,
  ].join('\n');
  console.log(table);
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'study.md'), `${table}\n`);
  const curves = [...new Set(points.map((p) => p.concept))].flatMap((concept) => {
    const mine = points.filter((p) => p.concept === concept);
    const steps = mine.map((p) => p.trainingTokens / 1e3);
    return [
      {
        name: `${concept}: ERA − control, forget`,
        steps,
        values: mine.map((p) => p.contraction.era!.forget - p.contraction.control!.forget),
      },
      {
        name: `${concept}: ERA − control, retain`,
        steps,
        values: mine.map((p) => p.contraction.era!.retain - p.contraction.control!.retain),
      },
    ];
  });
  await writeChartPng(
    path.join(out, 'study.png'),
    lineChartSpec({
      title: 'ERA: loss change at contraction beyond the control’s, by training length',
      stepTitle: 'training tokens (thousands)',
      valueTitle: 'Δ loss, ERA − control (nats/token)',
      seriesTitle: 'concept, loss',
      points: true,
      curves,
    }),
    { scale: 2 },
  );
}

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
    const pointCommand = `npm run era:study -- ${o.mode} --steps ${steps} --l1 ${config.l1Reduction} --forget-tokens ${config.forgetTokens} --forget ${config.forget.join(',')}`;
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
