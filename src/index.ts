/**
 * gradient-routing: gradient routing (Cloud et al., 2024) for TensorFlow.js.
 *
 * The vocabulary: a **routing point** is a named place in a model where gradients can be routed
 * (`latent`, `blocks.0.mlp.hidden`); a **rule** maps a batch to masks, usually rows of a **mask
 * table**; a **plan** maps points to rules. `routeGradients` is the op underneath.
 *
 * This entry point runs anywhere TensorFlow.js runs, browser included. Experiment runners and
 * reports are in `gradient-routing/experiments`; files, datasets and Node backends in
 * `gradient-routing/node`.
 *
 * @packageDocumentation
 */
// tfjs-layers registers every op's gradient with tfjs-core, which training needs.
import '@tensorflow/tfjs-layers';

/** @group Backends */
export {
  fastKernelsInstalled,
  installFastKernels,
  uninstallFastKernels,
} from './core/backend/fast-kernels.js';
/** @group Backends */
export {
  type BackendChoice,
  type BackendName,
  MAX_WASM_THREADS,
  type SelectBackendOptions,
  selectBackend,
} from './core/backend/select.js';
/** @group Backends */
export {
  countWebGpuWork,
  startWebGpuCounter,
  type WebGpuCounter,
  type WebGpuWorkCount,
} from './core/backend/webgpu/counter.js';
/** @group Backends */
export {
  checkGpuErrors,
  maxTensorBytes,
  type WebGpuDeviceLike,
  watchGpuErrors,
} from './core/backend/webgpu/device.js';
/** @group Backends */
export {
  installWebGpuKernels,
  uninstallWebGpuKernels,
  webGpuKernelsInstalled,
} from './core/backend/webgpu/install.js';
/** @group Data */
export {
  type ImageDataset,
  type ImageDatasetOptions,
  imageDatasetFromIdx,
  type PixelRange,
  toChunkedTensors,
} from './core/data/dataset.js';
/** @group Data */
export {
  type IdxArrays,
  type IdxData,
  type IdxType,
  type ParseIdxOptions,
  parseIdx,
} from './core/data/idx.js';
/** @group Data */
export { ChunkedRows, type ChunkedRowsOptions, type Rows } from './core/data/rows.js';
/** @group Errors */
export { GradientRoutingError, type GradientRoutingErrorCode } from './core/errors.js';
/** @group Layers */
export { type DenseActivation, dense } from './core/layers/dense.js';
/** @group Layers and models */
export {
  RouteGradients,
  type RouteGradientsArgs,
  routeGradientsLayer,
} from './core/layers/route-gradients.js';
/** @group Losses */
export { meanAbsoluteError } from './core/losses/mae.js';
/** @group Routing */
export { ablate } from './core/masks/ablate.js';
/** @group Masks */
export {
  classBlockRoutes,
  type LabelRoute,
  type LabelRouteOptions,
  type RouteTableSpec,
  type UnroutedPolicy,
} from './core/masks/labels.js';
/** @group Masks */
export { type DisposableRule, oversightRule, sampleOversight } from './core/masks/partial.js';
/** @group Masks */
export { type Region, regionMask, sliceRegions } from './core/masks/regions.js';
/** @group Masks */
export {
  type LabelRule,
  labelRule,
  MaskTable,
  type MaskTableOptions,
  type TableRule,
} from './core/masks/table.js';
/** @group Masks */
export {
  type DisposableTableRule,
  expandRouteRows,
  type TokenFrequencyRuleOptions,
  type TokenRuleOptions,
  tokenFrequencyWeights,
  tokenRule,
} from './core/masks/tokens.js';
/** @group Layers and models */
export { Autoencoder, type AutoencoderConfig } from './core/models/autoencoder.js';
/** @group Layers and models */
export {
  contractDensePair,
  contractMlpWeights,
  contractTransformerMlps,
  type ExpandOptions,
  type ExpandTransformerOptions,
  expandDensePair,
  expandMlpWeights,
  expandTransformerMlps,
} from './core/models/expand.js';
/** @group Layers and models */
export { loadAutoencoder, saveAutoencoder } from './core/models/io.js';
/** @group Layers and models */
export {
  type SplitLossTerms,
  type SplitLossWeights,
  type SplitObjective,
  type SplitObjectiveOptions,
  splitObjective,
} from './core/models/split-objective.js';
/** @group Layers and models */
export {
  createTransformer,
  type MlpWeights,
  type TinyTransformer,
  type TransformerConfig,
  tokenCrossEntropy,
  type UnitRegion,
} from './core/models/transformer.js';
/** @group Training */
export { type TorchAdamConfig, type TorchAdamOptimizer, torchAdam } from './core/optim/adam.js';
/** @group Probing */
export type { ProbeDecoder, ProbeDecoderFactory } from './core/probing/decoder.js';
/** @group Probing */
export {
  type PerLabelErrors,
  type PerLabelErrorsOptions,
  perLabelErrors,
} from './core/probing/evaluate.js';
/** @group Probing */
export {
  type ProbeOptions,
  type ProbeProgress,
  type ProbeResult,
  type ProbeStepProgress,
  probeLatentSlices,
  type SliceReport,
} from './core/probing/probe.js';
/** @group Probing */
export {
  type LabelPartition,
  type SplitRatio,
  splitRatio,
} from './core/probing/split.js';
/** @group Routing */
export {
  type ForwardContext,
  type ForwardContextOptions,
  forwardContext,
  type HasRoutingPoints,
  type PointEdit,
  type RoutingBatch,
  type RoutingPlan,
  type RoutingRule,
} from './core/routing/points.js';
/** @group Routing */
export {
  gateForward,
  type MaskInput,
  type MaskRange,
  type NestedNumbers,
  type RouteOptions,
  routeGradients,
  setMaskValidation,
  stopGradient,
} from './core/routing/route.js';
/** @group Training */
export {
  countStepsPerEpoch,
  type FitOptions,
  type FitProgress,
  type FitResult,
  fit,
  type LossPoint,
  type TrainingBatch,
  type TrainingData,
} from './core/training/fit.js';
