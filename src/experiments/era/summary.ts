/** ERA's `summary.json` and its Markdown table. */
import type { EraConfig, EraResult, EraRun } from './config.js';

/** The `summary.json` of an ERA run. */
export interface EraSummary {
  readonly preset: string;
  readonly backend: string;
  readonly wallSeconds: number;
  readonly config: EraConfig;
  readonly runs: EraRun[];
}

/** The JSON summary of an ERA experiment (what `summary.json` holds). */
export function summarizeEra(
  result: EraResult,
  meta: { preset: string; backend: string; wallSeconds: number },
): EraSummary {
  return {
    preset: meta.preset,
    backend: meta.backend,
    wallSeconds: meta.wallSeconds,
    config: result.config,
    runs: result.runs,
  };
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const signed = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(3)}` : 'n/a');

/**
 * The summary as a Markdown table: per method and label fraction, retain and forget loss
 * (nats/token) before and after contraction, their change, and the forget loss after the attack.
 */
export function formatEraTable(summary: EraSummary): string {
  const header =
    '| method | labels | retain before | retain after | Δ retain | forget before | forget after | Δ forget | forget attacked | Δ forget attacked |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = summary.runs.map((r) => {
    const labels = r.method === 'control' ? '–' : `${Math.round(r.labelFraction * 100)} %`;
    return `| ${r.method} | ${labels} | ${f3(r.retain.before)} | ${f3(r.retain.after)} | ${signed(r.retain.after - r.retain.before)} | ${f3(r.forget.before)} | ${f3(r.forget.after)} | ${signed(r.forget.after - r.forget.before)} | ${f3(r.forget.attacked)} | ${signed(r.forget.attacked - r.forget.before)} |`;
  });
  return [header, rule, ...rows].join('\n');
}

/**
 * The localisation figures of the summary's expanded runs as a Markdown table, one row per run
 * and expanded layer: the routed share of forget tokens and how many routed tokens training saw,
 * the localisation ratios (activation and output), the routed gradient's component along the
 * unrouted one (original units, expansion), and the ablation effect at the trained model.
 */
export function formatEraLocalisationTable(summary: EraSummary): string {
  const header =
    '| method | labels | routed share | routed tokens seen | layer | ratio (activation) | ratio (output) | gradient along plain: original | expansion | ablation Δ forget | ablation Δ retain |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = summary.runs.flatMap((r) => {
    const l = r.localisation;
    if (l === null) return [];
    const labels = r.method === 'control' ? '–' : `${Math.round(r.labelFraction * 100)} %`;
    const last = l.checkpoints.at(-1);
    return l.activations.map((a, i) => {
      const g = l.gradients[i];
      return `| ${r.method} | ${labels} | ${f3(l.routing.routedShare)} | ${l.routing.routedTokensSeen} | ${a.layer} | ${f3(a.ratio)} | ${f3(a.outputRatio)} | ${f3(g?.originalAlongPlain ?? Number.NaN)} | ${f3(g?.expandedAlongPlain ?? Number.NaN)} | ${last === undefined ? 'n/a' : signed(last.forgetAblated - last.forget)} | ${last === undefined ? 'n/a' : signed(last.retainAblated - last.retain)} |`;
    });
  });
  return [header, rule, ...rows].join('\n');
}
