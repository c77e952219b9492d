import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  type EraResult,
  type EraSummary,
  formatEraLocalisationTable,
  formatEraTable,
} from '../experiments/era/index.js';
import {
  eraAttackChartSpec,
  eraCheckpointChartSpec,
  eraLossChartSpec,
} from '../experiments/reports/era.js';
import { withPipelineCheckNote } from '../experiments/reports/pipeline-check.js';
import { writeChartPng, writeFileAtomic, writeJson } from './render.js';

/** The files {@link writeEraReport} wrote, by role. */
export interface EraReportFiles {
  readonly summary: string;
  readonly table: string;
  readonly details: string;
  readonly lossChart: string;
  readonly attackChart: string;
  /** The ablation effect at the checkpoints of training; null when no run was expanded (filter only). */
  readonly localisationChart: string | null;
}

/**
 * Writes an ERA run's report into `outDir` (created if missing): `table.md`, `details.json`
 * (training curves, losses right after contraction, attack curves, data sizes), `losses.png`,
 * `attack.png`, `localisation.png`, and `summary.json` last. Every file is written atomically, so a reader never
 * sees half a file and a summary.json always comes with its figures.
 */
export async function writeEraReport(
  outDir: string,
  summary: EraSummary,
  result: EraResult,
): Promise<EraReportFiles> {
  await mkdir(outDir, { recursive: true });
  const files: EraReportFiles = {
    summary: path.join(outDir, 'summary.json'),
    table: path.join(outDir, 'table.md'),
    details: path.join(outDir, 'details.json'),
    lossChart: path.join(outDir, 'losses.png'),
    attackChart: path.join(outDir, 'attack.png'),
    localisationChart: summary.runs.some((r) => r.localisation !== null)
      ? path.join(outDir, 'localisation.png')
      : null,
  };
  // Render first: a missing optional package fails before any file is replaced.
  await writeChartPng(files.lossChart, eraLossChartSpec(summary), { scale: 2 });
  await writeChartPng(files.attackChart, eraAttackChartSpec(result, summary), { scale: 2 });
  if (files.localisationChart !== null) {
    await writeChartPng(files.localisationChart, eraCheckpointChartSpec(summary), { scale: 2 });
  }
  await writeFileAtomic(
    files.table,
    `${withPipelineCheckNote(summary.preset, formatEraTable(summary))}\n\nWhere the concept went (docs/era.md, "Localisation"):\n\n${formatEraLocalisationTable(summary)}\n`,
  );
  await writeJson(files.details, { data: result.data, runs: result.details });
  await writeJson(files.summary, summary);
  return files;
}
