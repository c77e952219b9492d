import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EraConfig,
  type EraDocument,
  type EraProgress,
  eraPresets,
  eraTotalSteps,
  formatEraLocalisationTable,
  formatEraTable,
  runEraExperiment,
  summarizeEra,
} from '../src/experiments/index.js';
import { writeEraReport } from '../src/node/index.js';
import { useBackend } from './helpers/backends.js';
import { lcgUniform } from './helpers/random.js';

const run = promisify(execFile);
const scratch = mkdtempSync(path.join(tmpdir(), 'gr-era-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A tiny two-topic corpus: plant sentences and household sentences, seeded. */
function tinyCorpus(): EraDocument[] {
  const random = lcgUniform(12345);
  const pick = (words: string[]) => words[Math.floor(random() * words.length)]!;
  const plant = ['oak', 'fern', 'leaves', 'root', 'flower', 'genus', 'shrub', 'seed'];
  const house = ['room', 'chair', 'table', 'door', 'lamp', 'kitchen', 'roof', 'wall'];
  const common = ['the', 'a', 'of', 'with', 'and', 'small', 'large'];
  const doc = (topic: string[]) =>
    Array.from({ length: 4 + Math.floor(random() * 5) }, (_, i) =>
      i % 2 === 0 ? pick(common) : pick(topic),
    ).join(' ');
  const docs: EraDocument[] = [];
  for (let i = 0; i < 180; i++) {
    docs.push(
      i % 3 === 0 ? { label: 'plant', text: doc(plant) } : { label: 'house', text: doc(house) },
    );
  }
  return docs;
}

const tiny: EraConfig = {
  ...eraPresets.smoke,
  forget: ['plant'],
  labelFractions: [0.5, 1],
  model: { ...eraPresets.smoke.model, vocabSize: 30, contextLength: 9 },
  steps: 8,
};

describe('ERA experiment', () => {
  beforeAll(() => useBackend('cpu'));

  it('runs every method end to end on a tiny corpus, with the summary shape of the issue', async () => {
    const progress: EraProgress[] = [];
    const before = tf.memory().numTensors;
    const result = await runEraExperiment(tinyCorpus(), tiny, {
      onProgress: (p) => progress.push(p),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(progress.at(-1)!.done).toBe(eraTotalSteps(tiny));
    expect(progress.at(-1)!.done).toBe(progress.at(-1)!.total);

    const summary = summarizeEra(result, { preset: 'test', backend: 'cpu', wallSeconds: 1.5 });
    expect(Object.keys(summary)).toEqual(['preset', 'backend', 'wallSeconds', 'config', 'runs']);
    expect(summary.runs.map((r) => [r.method, r.labelFraction])).toEqual([
      ['control', 0],
      ['era', 0.5],
      ['filter', 0.5],
      ['era', 1],
      ['filter', 1],
    ]);
    for (const r of summary.runs) {
      expect(Object.keys(r)).toEqual([
        'method',
        'labelFraction',
        'retain',
        'forget',
        'localisation',
      ]);
      // Localisation figures for the expanded runs (ERA, control), none for filtering.
      expect(r.localisation === null).toBe(r.method === 'filter');
      if (r.localisation !== null) {
        expect(Object.keys(r.localisation)).toEqual([
          'routing',
          'activations',
          'gradients',
          'checkpoints',
        ]);
        expect(r.localisation.activations.map((a) => a.layer)).toEqual(tiny.expandLayers);
        expect(r.localisation.checkpoints.at(-1)!.step).toBe(tiny.steps);
      }
      for (const side of [r.retain, r.forget]) {
        expect(Object.keys(side)).toEqual(['before', 'after', 'attacked']);
        for (const v of Object.values(side)) expect(v).toBeGreaterThan(0);
      }
      // The attack's minimum includes its starting point.
      expect(r.forget.attacked).toBeLessThanOrEqual(r.forget.after);
    }
    const filter = summary.runs.find((r) => r.method === 'filter')!;
    expect(filter.forget.after).toBe(filter.forget.before);
    // Routing is wired: ERA trains differently from the unrouted control.
    const era = summary.runs.find((r) => r.method === 'era' && r.labelFraction === 1)!;
    expect(era.forget.before).not.toBe(summary.runs[0]!.forget.before);
    // Filtering at 100 % trains on retain documents only.
    const filter1 = result.details.find((d) => d.method === 'filter' && d.labelFraction === 1)!;
    expect(filter1.trainDocuments).toBe(result.data.trainRetain);
    expect(filter1.labelledForget).toBe(result.data.trainForget);

    const table = formatEraTable(summary);
    expect(table.split('\n')).toHaveLength(2 + 5);
    expect(table).toContain('| era | 50 % |');
    // One localisation row per expanded run and layer (control, ERA 50 %, ERA 100 %; layer 0).
    const localisation = formatEraLocalisationTable(summary).split('\n');
    expect(localisation).toHaveLength(2 + 3);
    expect(localisation[2]).toMatch(/^\| control \| – \| 0\.000 \| 0 \| 0 \| /);

    const out = path.join(scratch, 'report');
    const files = await writeEraReport(out, summary, result);
    expect(JSON.parse(readFileSync(files.summary, 'utf8'))).toEqual(
      JSON.parse(JSON.stringify(summary)),
    );
    expect(readdirSync(out).sort()).toEqual(
      [
        'attack.png',
        'details.json',
        'localisation.png',
        'losses.png',
        'summary.json',
        'table.md',
      ].sort(),
    );
    expect(readFileSync(files.table, 'utf8')).toContain(localisation.join('\n'));
  });

  it('is deterministic for a seed', async () => {
    const config: EraConfig = { ...tiny, methods: ['era'], labelFractions: [1], steps: 3 };
    const a = await runEraExperiment(tinyCorpus(), config);
    const b = await runEraExperiment(tinyCorpus(), config);
    expect(b.runs).toEqual(a.runs);
  });

  it('gives each run the same numbers whichever other methods run beside it', async () => {
    // The scale study runs ERA and the control alone; the presets' tables add filtering and
    // more label fractions, and quote the study's pair.
    const config: EraConfig = { ...tiny, labelFractions: [1], steps: 3 };
    const pair = await runEraExperiment(tinyCorpus(), { ...config, methods: ['era', 'control'] });
    const all = await runEraExperiment(tinyCorpus(), {
      ...config,
      methods: ['filter', 'era', 'control'],
      labelFractions: [0.5, 1],
    });
    for (const run of pair.runs) {
      const same = all.runs.find(
        (r) => r.method === run.method && r.labelFraction === run.labelFraction,
      );
      expect(same).toEqual(run);
    }
    expect(pair.runs.map((r) => r.method)).toEqual(['control', 'era']);
  });

  it('names a forget concept with no documents, listing labels that exist', async () => {
    await expect(runEraExperiment(tinyCorpus(), { ...tiny, forget: ['animal'] })).rejects.toThrow(
      /no document has a forget label \(animal\).*house \(120\), plant \(60\)/,
    );
  });

  it('rejects label fractions outside [0, 1] and unknown methods', async () => {
    await expect(
      runEraExperiment(tinyCorpus(), { ...tiny, labelFractions: [0.5, 1.5] }),
    ).rejects.toThrow(/label fraction 1.5 is outside \[0, 1\]/);
    await expect(
      runEraExperiment(tinyCorpus(), { ...tiny, methods: ['rmu' as 'era'] }),
    ).rejects.toThrow(/unknown ERA method 'rmu'/);
  });

  it('says how many forget documents it needs when there are too few', async () => {
    const few = tinyCorpus().filter((d, i) => d.label === 'house' || i < 30);
    await expect(runEraExperiment(few, tiny)).rejects.toThrow(/has 10 documents; ERA holds out 16/);
  });
});

describe('npm run era: input checks before training', () => {
  const cli = (args: string[]) =>
    run('npx', ['tsx', 'examples/era-unlearning.ts', ...args], { cwd: path.resolve('.') }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );

  it('runs the smoke preset on one wasm thread, saying it only checks the pipeline', async () => {
    const out = path.join(scratch, 'cli-smoke');
    const { code, stdout, stderr } = await cli([
      '--preset',
      'smoke',
      '--backend',
      'wasm',
      '--threads',
      '1',
      '--out',
      out,
    ]);
    expect({ code, stderr }).toMatchObject({ code: 0 });
    expect(stderr).toMatch(/^era: preset smoke, backend wasm, 1 thread\(s\)/m);
    expect(stderr).toMatch(/^era: smoke run: checks the pipeline only/m);
    expect(stdout).toMatch(
      /^\*\*smoke run: checks the pipeline only; its numbers mean nothing\*\*\n\n\| method/,
    );
    expect(readFileSync(path.join(out, 'table.md'), 'utf8')).toMatch(/^\*\*smoke run: checks/);
    // A line for every phase, the evaluations between them included, in order for each run.
    const phases = stderr
      .split('\n')
      .filter((line) => /^era: (training|evaluating|coherence|retraining)/.test(line));
    const attack = (run: string) =>
      `era: retraining attack on ${run}: 2 seed(s) of 4 steps, evaluated every 2…`;
    expect(phases).toEqual([
      ...['control', 'era 1'].flatMap((run) => [
        `era: training ${run} (6 steps)…`,
        `era: evaluating ${run}, contracting it and evaluating again (8 documents)…`,
        `era: coherence fine-tune of ${run} (up to 2 steps)…`,
        `era: evaluating the fine-tuned ${run}…`,
        attack(run),
      ]),
      'era: training filter 1 (6 steps)…',
      'era: evaluating filter 1 on 8 retain and forget documents…',
      attack('filter 1'),
    ]);
    // Every unit of work counted (eraTotalSteps): training, checkpoints, coherence, evaluation, attack.
    expect(stderr).toMatch(/^era: 59\/59 attack filter 1$/m);
  });

  it('refuses bad fractions, unknown lexicographer files and malformed corpora, writing nothing', async () => {
    const out = path.join(scratch, 'never');
    const fractions = await cli(['--label-fractions', '0.5,2', '--out', out]);
    expect(fractions.code).toBe(2);
    expect(fractions.stderr).toMatch(
      /--label-fractions needs numbers in \[0, 1\] .*, got '2' in '0.5,2'/,
    );
    const lexfile = await cli(['--forget', 'noun.plnt', '--out', out]);
    expect(lexfile.code).toBe(2);
    expect(lexfile.stderr).toMatch(/unknown WordNet lexicographer file 'noun.plnt'/);
    const corpus = path.join(scratch, 'bad.tsv');
    writeFileSync(corpus, 'plant\tan oak\nplant, a fern\n');
    const data = await cli(['--data', corpus, '--forget', 'plant', '--out', out]);
    expect(data.code).toBe(1);
    expect(data.stderr).toMatch(/bad.tsv line 2 has no tab/);
    expect(existsSync(out)).toBe(false);
    const file = path.join(scratch, 'a-file');
    writeFileSync(file, 'not a directory');
    const outFile = await cli(['--out', file]);
    expect(outFile.code).toBe(2);
    expect(outFile.stderr).toMatch(/--out .*a-file is a file; pass a directory/);
  });
});
