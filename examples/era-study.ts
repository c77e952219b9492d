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
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
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
  type BackendChoice,
  loadWordNetGlosses,
  selectNodeBackend,
  writeChartPng,
  writeEraReport,
} from 'gradient-routing/node';

const HELP = `Usage: npm run era:study -- mechanism|scale [options]

  mechanism                 ERA vs control with every token of labelled forget glosses routed
                            fully (no frequency rule), 100 % labels
  scale                     ERA vs control (100 % labels, the paper's frequency rule) at each
                            number of training steps in --steps
  report DIR [DIR...]       the table (stdout, --out DIR/study.md) and figure (--out
                            DIR/study.png) of every point in the DIRs' study.json files
  --preset NAME             base configuration (default quick)
  --steps N[,N...]          training steps (mechanism: one value, default 300;
                            scale: the points, default 150,600,1200)
  --forget LABEL[,LABEL...] the concept (default the preset's, noun.plant)
  --l1 sum|mean             the L1 term's reduction (default the preset's)
  --forget-tokens frequency|all   which tokens of labelled forget glosses are routed
                            (default: all for mechanism, frequency for scale)
  --backend auto|tensorflow|wasm|cpu   (default auto)
  --out DIR                 (default out/era-study-MODE)
  --help                    this text`;

function fail(message: string): never {
  console.error(`era:study: ${message}\n\n${HELP}`);
  process.exit(2);
}

function options() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      preset: { type: 'string', default: 'quick' },
      steps: { type: 'string' },
      forget: { type: 'string' },
      l1: { type: 'string' },
      'forget-tokens': { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const mode = positionals[0];
  if (mode !== 'mechanism' && mode !== 'scale' && mode !== 'report') {
    fail('give a study: mechanism, scale or report');
  }
  if (!(values.preset in eraPresets)) fail(`unknown preset '${values.preset}'`);
  const base: EraConfig = eraPresets[values.preset as EraPresetName];
  const steps = (values.steps ?? (mode === 'mechanism' ? '300' : '150,600,1200'))
    .split(',')
    .map((text) => {
      const n = Number(text);
      if (!(Number.isInteger(n) && n > 0)) fail(`--steps needs positive integers, got '${text}'`);
      return n;
    });
  const l1 = values.l1 ?? base.l1Reduction;
  if (l1 !== 'sum' && l1 !== 'mean') fail(`--l1 is sum or mean, got '${l1}'`);
  const forgetTokens = values['forget-tokens'] ?? (mode === 'mechanism' ? 'all' : 'frequency');
  if (forgetTokens !== 'all' && forgetTokens !== 'frequency') {
    fail(`--forget-tokens is frequency or all, got '${forgetTokens}'`);
  }
  const config: EraConfig = {
    ...base,
    methods: ['era', 'control'],
    labelFractions: [1],
    l1Reduction: l1,
    forgetTokens,
    // The study reads the contraction; one short attack keeps each point cheap.
    attack: { ...base.attack, seeds: 1, steps: 20, evalEvery: 10 },
    ...(values.forget !== undefined && { forget: values.forget.split(',') }),
  };
  return {
    mode,
    reportDirs: positionals.slice(1),
    preset: values.preset as EraPresetName,
    steps,
    config,
    backend: values.backend as BackendChoice,
    out: values.out ?? `out/era-study-${mode}`,
  };
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
  if (o.mode === 'report') {
    if (o.reportDirs.length === 0) fail('report needs the folders of the points');
    await report(o.reportDirs, o.out);
    return;
  }
  const documents = await loadWordNetGlosses();
  const backend = await selectNodeBackend({ backend: o.backend });
  setMaskValidation(backend !== 'webgpu');
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
      backend,
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
    const command = `npm run era:study -- ${o.mode} --steps ${steps} --l1 ${config.l1Reduction} --forget-tokens ${config.forgetTokens} --forget ${config.forget.join(',')}`;
    points.push({
      steps,
      trainingTokens: steps * config.batchSize * config.model.contextLength,
      seconds,
      command,
      summary,
      contraction,
    });
    console.log(`\n${command} (${seconds.toFixed(0)} s, ${backend})\n${formatEraTable(summary)}`);
    console.log(`contraction (before coherence): ${JSON.stringify(contraction)}`);
    await writeFile(path.join(o.out, 'study.json'), `${JSON.stringify(points, null, 2)}\n`);
  }
}

main().catch((error: unknown) => {
  console.error(`era:study: ${(error as Error).message}`);
  process.exit(1);
});
