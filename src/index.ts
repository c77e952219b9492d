/**
 * gradient-routing: gradient routing (Cloud et al., 2024) for TensorFlow.js.
 *
 * This entry point runs anywhere TensorFlow.js runs, browser included. Node-only helpers
 * (backend selection with tfjs-node, file I/O, datasets, PNG reports) live in
 * `gradient-routing/node`.
 *
 * @packageDocumentation
 */
// tfjs-layers registers every op's gradient with tfjs-core, which the routed models need.
import '@tensorflow/tfjs-layers';

export {
  fastKernelsInstalled,
  installFastKernels,
  uninstallFastKernels,
} from './backend/fast-kernels.js';
// Backend selection
export {
  type BackendChoice,
  type BackendLoader,
  type BackendName,
  type SelectBackendOptions,
  selectBackend,
} from './backend/select.js';
// Data
export {
  type ImageDataset,
  type ImageDatasetOptions,
  imageDatasetFromIdx,
  type PixelRange,
  toTensors,
} from './data/dataset.js';
export {
  encodeIdx,
  type IdxArrays,
  type IdxData,
  type IdxInput,
  type IdxType,
  type ParseIdxOptions,
  parseIdx,
} from './data/idx.js';
// Experiments
export {
  partitionRegions,
  runSplitExperiment,
  type SliceReport,
  type SplitExperimentCallbacks,
  type SplitExperimentConfig,
  type SplitExperimentResult,
  type SplitPresetName,
  splitPresets,
} from './experiments/split.js';
export {
  formatSplitTable,
  groupKeys,
  type RunInfo,
  type SplitSummary,
  summarizeSplitExperiment,
} from './experiments/summary.js';
// Layers and models
export { type DenseStackOptions, denseStack } from './layers/mlp.js';
export { RouteGradients, type RouteGradientsArgs } from './layers/route-gradients.js';
export {
  type PerLabelErrors,
  RoutedAutoencoder,
  type RoutedAutoencoderConfig,
  type RoutedLossTerms,
  type RoutedLossWeights,
  type RoutedStepOptions,
} from './layers/routed-autoencoder.js';
// Losses and optimisers
export { type CorrelationPenaltyOptions, correlationPenalty, latentL1 } from './losses/latent.js';
export {
  absWithTorchGrad,
  type GroupedMaeOptions,
  groupedMeanAbsoluteError,
  groupMeanAbsoluteErrors,
  meanAbsoluteError,
  perExampleMeanAbsoluteError,
} from './losses/mae.js';
// Mask builders
export {
  classBlockRoutes,
  compileLabelRoutes,
  type LabelRoute,
  type LabelRouteOptions,
  labelMask,
  labelMaskValues,
  labelRows,
  type RouteTableSpec,
  type UnroutedPolicy,
  validateRouteTableSpec,
} from './masks/labels.js';
export { applyOversight, applyOversightValues, sampleOversight } from './masks/partial.js';
export {
  type Region,
  regionMask,
  regionMaskValues,
  sliceRegions,
  validateRegions,
} from './masks/regions.js';
export {
  assertSoftMask,
  maskComplement,
  maskComplementValues,
  maskIntersection,
  maskIntersectionValues,
  maskUnion,
  maskUnionValues,
  softMask,
  softMaskValues,
  validateSoftValues,
} from './masks/soft.js';
export { labelRouteTable, type MasksForOptions, RouteTable } from './masks/table.js';
export {
  type NamedGradient,
  type TorchAdamConfig,
  TorchAdamOptimizer,
  torchAdam,
} from './optim/adam.js';
// Probing
export {
  mlpProbeDecoder,
  type ProbeDecoder,
  type ProbeDecoderFactory,
} from './probing/decoder.js';
export {
  type ProbeOptions,
  type ProbeProgress,
  type ProbeResult,
  probeLatentSlices,
  type SliceProbe,
} from './probing/probe.js';
export {
  type LabelPartition,
  perLabelMeans,
  type SplitRatio,
  splitRatio,
  splitRatios,
  validatePartition,
} from './probing/split.js';
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
  type GridRow,
  type ImageGridOptions,
  imageGrid,
  type NumericArray,
  type PixelBuffer,
} from './reports/grid.js';
export { toReportJson } from './reports/json.js';
export type { Label, Series, SeriesInput } from './reports/series.js';
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
// The routing op
export { ablate } from './routing/ablate.js';
export {
  exactMaskProduct,
  gateForward,
  type MaskInput,
  type NestedNumbers,
  routeGradients,
  stopGradient,
} from './routing/route.js';
// Training
export {
  type FitOptions,
  type FitProgress,
  type FitResult,
  fitRoutedAutoencoder,
  type LossPoint,
} from './training/fit.js';
export { seededPermutation, seededRandom } from './util/random.js';
