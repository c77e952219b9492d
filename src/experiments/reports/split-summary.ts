import type { SplitExperimentResult } from '../split.js';
import { withPipelineCheckNote } from './pipeline-check.js';
import { formatSeriesTable } from './table.js';

/** How the run was made, recorded beside its numbers. */
export interface RunInfo {
  preset: string;
  backend: string;
  wallSeconds: number;
}

/** Per-label errors and split ratios of a set of half-decoders, keyed like {@link groupKeys}. */
export interface HalfDecoderReport {
  splitRatio: Record<string, number>;
  perDigit: Record<string, number[]>;
}

/**
 * The JSON summary of a split experiment. With two label groups, `low` is the half-decoder on the
 * block routed for the first group and `high` the one for the second, as in the paper. The
 * headline `splitRatio` and `perDigit` come from the concurrent certificates when the run had
 * them, else from the post-hoc probes (`halfDecoders` says which).
 */
export interface SplitSummary {
  preset: string;
  backend: string;
  wallSeconds: number;
  trainSeconds: number;
  routed: boolean;
  decoderMae: number;
  /** Which half-decoders the headline numbers come from. */
  halfDecoders: 'certificates' | 'probes';
  /** Split ratio per half-decoder, keyed `low`/`high` for two groups, else `group0`, `group1`, …. */
  splitRatio: Record<string, number>;
  perDigit: { decoder: number[] } & Record<string, number[]>;
  /** The concurrent certificates (empty when the run had none). */
  certificates: HalfDecoderReport;
  /** The post-hoc probes on the frozen encoder (empty when skipped). */
  probes: HalfDecoderReport;
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
  const report = (
    slices: readonly { ratio: number; perLabelMae: number[] }[],
  ): HalfDecoderReport => ({
    splitRatio: Object.fromEntries(slices.map((slice, g) => [keys[g]!, slice.ratio])),
    perDigit: Object.fromEntries(slices.map((slice, g) => [keys[g]!, slice.perLabelMae])),
  });
  const certificates = report(result.certificates);
  const probes = report(result.probes);
  const halfDecoders = result.certificates.length > 0 ? 'certificates' : 'probes';
  const headline = halfDecoders === 'certificates' ? certificates : probes;
  return {
    preset: run.preset,
    backend: run.backend,
    wallSeconds: run.wallSeconds,
    trainSeconds: result.trainSeconds,
    routed: result.config.objective.routed,
    decoderMae: result.decoderMae,
    halfDecoders,
    splitRatio: headline.splitRatio,
    perDigit: { ...headline.perDigit, decoder: result.decoderPerLabel },
    certificates,
    probes,
    config: result.config,
    steps: result.steps,
    losses: result.losses,
  };
}

/**
 * The per-label table of a run: the decoder and each certificate (and probe, when run), with the
 * mean over labels and the split ratios below it, as Markdown that also reads on a console. A
 * smoke run's table says first that it only checks the pipeline.
 */
export function formatSplitTable(summary: SplitSummary): string {
  const keys = groupKeys(summary.config.partition.length);
  const regionOf = (g: number) => {
    const width = summary.config.model.latentDim / keys.length;
    return `dims ${g * width}-${(g + 1) * width - 1}`;
  };
  const sources = [
    { name: 'certificate', report: summary.certificates },
    { name: 'probe', report: summary.probes },
  ];
  const series = [
    { name: 'decoder', values: summary.perDigit.decoder },
    ...sources.flatMap(({ name, report }) =>
      keys
        .filter((key) => report.perDigit[key] !== undefined)
        .map((key, g) => ({
          name: `${name} ${key} (${regionOf(g)})`,
          values: report.perDigit[key]!,
        })),
    ),
  ];
  const table = formatSeriesTable({ series, cornerTitle: 'digit' });
  const ratios = keys
    .map((key, g) => {
      const parts = sources
        .filter(({ report }) => report.splitRatio[key] !== undefined)
        .map(({ name, report }) => `${report.splitRatio[key]!.toFixed(2)} (${name})`);
      return `- split ratio of ${key} (${regionOf(g)}): ${parts.join(', ')}`;
    })
    .join('\n');
  return withPipelineCheckNote(
    summary.preset,
    `${table}\n\n${ratios}\n- decoder MAE: ${summary.decoderMae.toFixed(4)}`,
  );
}
