import type { EraResult, EraRun, EraSummary } from '../era/index.js';
import { groupedBarChartSpec, lineChartSpec, type VegaLiteSpec } from './charts.js';
import { pipelineCheckNote } from './pipeline-check.js';

/** `era 50 %`, `control`, `filter 100 %`: how a run is named in tables and charts. */
export function eraRunName(run: Pick<EraRun, 'method' | 'labelFraction'>): string {
  return run.method === 'control'
    ? 'control'
    : `${run.method} ${Math.round(run.labelFraction * 100)} %`;
}

/**
 * Forget and retain loss per method and label fraction, as changes from each run's trained
 * model (nats/token): retain after − before, forget after − before, forget after the attack −
 * before. ERA working means a tall forget bar, a short retain bar, and a forget-attacked bar
 * above the control's.
 */
export function eraLossChartSpec(summary: EraSummary): VegaLiteSpec {
  const runs = summary.runs;
  return groupedBarChartSpec({
    title: `ERA on ${summary.config.forget.join(', ')}: loss change from the trained model (${summary.preset})`,
    ...optionalSubtitle(pipelineCheckNote(summary.preset)),
    labels: runs.map(eraRunName),
    labelTitle: 'method, share of forget documents labelled',
    valueTitle: 'Δ loss (nats/token)',
    seriesTitle: 'loss',
    barWidth: 14,
    series: [
      { name: 'retain after', values: runs.map((r) => r.retain.after - r.retain.before) },
      { name: 'forget after', values: runs.map((r) => r.forget.after - r.forget.before) },
      { name: 'forget attacked', values: runs.map((r) => r.forget.attacked - r.forget.before) },
    ],
  });
}

/**
 * The retraining attack: per run, the lowest forget validation loss over the attack's seeds at
 * each evaluated step (the envelope whose minimum is reported as `attacked`). With the run's
 * `preset`, a smoke run's chart says that it only checks the pipeline.
 */
export function eraAttackChartSpec(
  result: EraResult,
  run: { readonly preset?: string } = {},
): VegaLiteSpec {
  return lineChartSpec({
    title: `Retraining attack: ${result.config.attack.documents} forget documents, ${result.config.attack.seeds} seeds (lowest per step)`,
    ...optionalSubtitle(run.preset === undefined ? undefined : pipelineCheckNote(run.preset)),
    stepTitle: 'attack step',
    valueTitle: 'forget loss (nats/token)',
    seriesTitle: 'run',
    width: 420,
    curves: result.details.map((d) => ({
      name: eraRunName(d),
      steps: d.attackSteps,
      values: d.attackSteps.map((_, i) => Math.min(...d.attackCurves.map((c) => c[i]!))),
    })),
  });
}

function optionalSubtitle(subtitle: string | undefined): { subtitle?: string } {
  return subtitle === undefined ? {} : { subtitle };
}

/**
 * The ablation effect during training: per expanded run, forget and retain loss with the
 * expansion deleted minus the whole model's, at each checkpoint (every 10 % of training). ERA
 * localising the concept shows as a forget curve that rises with training above the control's,
 * with the retain curve near 0.
 */
export function eraCheckpointChartSpec(summary: EraSummary): VegaLiteSpec {
  const expanded = summary.runs.filter((r) => r.localisation !== null);
  return lineChartSpec({
    title: `Deleting the expansion during training: loss change (${summary.preset})`,
    stepTitle: 'training step',
    valueTitle: 'Δ loss, expansion deleted (nats)',
    seriesTitle: 'run, loss',
    width: 420,
    curves: expanded.flatMap((r) => {
      const checkpoints = r.localisation!.checkpoints;
      const steps = checkpoints.map((c) => c.step);
      return [
        {
          name: `${eraRunName(r)} forget`,
          steps,
          values: checkpoints.map((c) => c.forgetAblated - c.forget),
        },
        {
          name: `${eraRunName(r)} retain`,
          steps,
          values: checkpoints.map((c) => c.retainAblated - c.retain),
        },
      ];
    }),
  });
}
