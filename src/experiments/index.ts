/**
 * Experiment runners, presets, summaries, tables and chart specs of gradient-routing. Runs
 * anywhere TensorFlow.js runs, browser included; writing files is in `gradient-routing/node`.
 *
 * @packageDocumentation
 */
// Text and optimiser pieces the ERA experiment is built from, for reuse with other corpora.
export { buildWordTokenizer, type WordTokenizer } from '../core/data/tokenizer.js';
export { AdamW, type AdamWConfig, warmupCosine } from '../core/optim/adamw.js';

// Expand-Route-Ablate (the public API is listed in ./era/index.ts)
export * from './era/index.js';

// A GPU by default: the paper preset proposed with its measured training time
export {
  formatDuration,
  type PaperPresetProposal,
  type PaperPresetProposalInput,
  proposePaperPreset,
} from './gpu-proposal.js';

// Reports
export {
  type ChartOptions,
  type Curve,
  type CurveInput,
  type GroupedBarChartOptions,
  groupedBarChartSpec,
  type LineChartOptions,
  lineChartSpec,
  type VegaLiteSpec,
} from './reports/charts.js';
export {
  eraAttackChartSpec,
  eraCheckpointChartSpec,
  eraLossChartSpec,
  eraRunName,
} from './reports/era.js';
export {
  type GridRow,
  type ImageGridOptions,
  imageGrid,
  type NumericArray,
  type PixelBuffer,
} from './reports/grid.js';
export { toReportJson } from './reports/json.js';
export { pipelineCheckNote, withPipelineCheckNote } from './reports/pipeline-check.js';
export type { Label, Series, SeriesInput } from './reports/series.js';
export {
  formatSplitTable,
  groupKeys,
  type RunInfo,
  type SplitSummary,
  summarizeSplitExperiment,
} from './reports/split-summary.js';
export {
  type ColumnAlign,
  type FormatTableOptions,
  formatNumber,
  formatSeriesTable,
  formatTable,
  type SeriesRatio,
  type SeriesTable,
  type SeriesTableOptions,
  seriesTable,
  type TableCell,
} from './reports/table.js';
export {
  partitionRegions,
  runSplitExperiment,
  type SplitExperimentCallbacks,
  type SplitExperimentConfig,
  type SplitExperimentResult,
  type SplitPhase,
  type SplitPhaseProgress,
  type SplitPresetName,
  type StepTiming,
  splitPresets,
  type TimeSplitStepsOptions,
  timeSplitSteps,
} from './split.js';
