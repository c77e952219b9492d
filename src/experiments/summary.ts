import { formatSeriesTable } from '../reports/table.js';
import type { SplitExperimentResult } from './split.js';

/** How the run was made, recorded beside its numbers. */
export interface RunInfo {
  preset: string;
  backend: string;
  wallSeconds: number;
}

/**
 * The JSON summary of a split experiment. With two label groups, `low` is the certificate on the
 * block routed for the first group and `high` the one for the second, as in the paper.
 */
export interface SplitSummary {
  preset: string;
  backend: string;
  wallSeconds: number;
  trainSeconds: number;
  routed: boolean;
  decoderMae: number;
  /** Split ratio per certificate, keyed `low`/`high` for two groups, else `group0`, `group1`, …. */
  splitRatio: Record<string, number>;
  perDigit: { decoder: number[] } & Record<string, number[]>;
  /** The post-hoc probes' ratios and per-label errors, keyed like `splitRatio` (empty when skipped). */
  probes: { splitRatio: Record<string, number>; perDigit: Record<string, number[]> };
  config: SplitExperimentResult['config'];
  steps: number;
  losses: SplitExperimentResult['losses'];
}

/** The keys of the label groups in summaries: `low`/`high` for two groups. */
export function groupKeys(groups: number): string[] {
  return groups === 2 ? ['low', 'high'] : Array.from({ length: groups }, (_, g) => `group${g}`);
}

/** Builds the JSON summary of a run. */
export function summarizeSplitExperiment(
  result: SplitExperimentResult,
  run: RunInfo,
): SplitSummary {
  const keys = groupKeys(result.config.partition.length);
  const byKey = <T>(items: readonly T[], value: (item: T) => number | number[]) =>
    Object.fromEntries(items.map((item, g) => [keys[g]!, value(item)]));
  return {
    preset: run.preset,
    backend: run.backend,
    wallSeconds: run.wallSeconds,
    trainSeconds: result.trainSeconds,
    routed: result.config.routed,
    decoderMae: result.decoderMae,
    splitRatio: byKey(result.certificates, (c) => c.ratio) as Record<string, number>,
    perDigit: {
      decoder: result.decoderPerLabel,
      ...(byKey(result.certificates, (c) => c.perLabelMae) as Record<string, number[]>),
    },
    probes: {
      splitRatio: byKey(result.probes, (p) => p.ratio) as Record<string, number>,
      perDigit: byKey(result.probes, (p) => p.perLabelMae) as Record<string, number[]>,
    },
    config: result.config,
    steps: result.steps,
    losses: result.losses,
  };
}

/**
 * The per-label table of a run: the decoder and each certificate (and probe, when run), with the
 * mean over labels and the split ratios below it, as Markdown that also reads on a console.
 */
export function formatSplitTable(summary: SplitSummary): string {
  const keys = groupKeys(summary.config.partition.length);
  const regionOf = (g: number) => {
    const width = summary.config.latentDim / keys.length;
    return `dims ${g * width}-${(g + 1) * width - 1}`;
  };
  const series = [
    { name: 'decoder', values: summary.perDigit.decoder },
    ...keys.map((key, g) => ({ name: `${key} (${regionOf(g)})`, values: summary.perDigit[key]! })),
    ...keys
      .filter((key) => summary.probes.perDigit[key] !== undefined)
      .map((key) => ({ name: `probe ${key}`, values: summary.probes.perDigit[key]! })),
  ];
  const table = formatSeriesTable({ series, cornerTitle: 'digit' });
  const ratios = keys
    .map((key, g) => {
      const probe = summary.probes.splitRatio[key];
      const probeText = probe === undefined ? '' : ` (post-hoc probe ${probe.toFixed(2)})`;
      return `- split ratio of ${key} (${regionOf(g)}): ${summary.splitRatio[key]!.toFixed(2)}${probeText}`;
    })
    .join('\n');
  return `${table}\n\n${ratios}\n- decoder MAE: ${summary.decoderMae.toFixed(4)}`;
}
