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
} from './core/backend/fast-kernels.js';
// Backend selection
export {
  type BackendChoice,
  type BackendLoader,
  type BackendName,
  type SelectBackendOptions,
  selectBackend,
} from './core/backend/select.js';
// Data
export {
  type ImageDataset,
  type ImageDatasetOptions,
  imageDatasetFromIdx,
  type PixelRange,
  toTensors,
} from './core/data/dataset.js';
export {
  encodeIdx,
  type IdxArrays,
  type IdxData,
  type IdxInput,
  type IdxType,
  type ParseIdxOptions,
  parseIdx,
} from './core/data/idx.js';
// Layers and models
export { type DenseStackOptions, denseStack } from './core/layers/dense-stack.js';
export { RouteGradients, type RouteGradientsArgs } from './core/layers/route-gradients.js';
// Losses and optimisers
export {
  type CorrelationPenaltyOptions,
  correlationPenalty,
  latentL1,
} from './core/losses/latent.js';
export {
  absWithTorchGrad,
  type GroupedMaeOptions,
  groupedMeanAbsoluteError,
  groupMeanAbsoluteErrors,
  meanAbsoluteError,
  perExampleMeanAbsoluteError,
} from './core/losses/mae.js';
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
} from './core/masks/labels.js';
export { applyOversight, applyOversightValues, sampleOversight } from './core/masks/partial.js';
export {
  type Region,
  regionMask,
  regionMaskValues,
  sliceRegions,
  validateRegions,
} from './core/masks/regions.js';
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
} from './core/masks/soft.js';
export { labelRouteTable, type MasksForOptions, RouteTable } from './core/masks/table.js';
export {
  type PerLabelErrors,
  RoutedAutoencoder,
  type RoutedAutoencoderConfig,
  type RoutedLossTerms,
  type RoutedLossWeights,
  type RoutedStepOptions,
} from './core/models/autoencoder.js';
export {
  type NamedGradient,
  type TorchAdamConfig,
  TorchAdamOptimizer,
  torchAdam,
} from './core/optim/adam.js';
// Probing
export {
  mlpProbeDecoder,
  type ProbeDecoder,
  type ProbeDecoderFactory,
} from './core/probing/decoder.js';
export {
  type ProbeOptions,
  type ProbeProgress,
  type ProbeResult,
  probeLatentSlices,
  type SliceProbe,
} from './core/probing/probe.js';
export {
  type LabelPartition,
  perLabelMeans,
  type SplitRatio,
  splitRatio,
  splitRatios,
  validatePartition,
} from './core/probing/split.js';
// The routing op
export { ablate } from './core/routing/ablate.js';
export {
  exactMaskProduct,
  gateForward,
  type MaskInput,
  type NestedNumbers,
  routeGradients,
  stopGradient,
} from './core/routing/route.js';
// Training
export {
  type FitOptions,
  type FitProgress,
  type FitResult,
  fitRoutedAutoencoder,
  type LossPoint,
} from './core/training/fit.js';
export { seededPermutation, seededRandom } from './core/util/random.js';
