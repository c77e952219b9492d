/**
 * Node-only parts of gradient-routing: backend selection with tfjs-node and the installed wasm
 * files, IDX/MNIST data, saving models to directories and writing reports.
 *
 * @packageDocumentation
 */
// Registers the RouteGradients layer class, so that loadFromDirectory can load routed
// tfjs-layers models without the main entry being imported first.
import '../core/layers/route-gradients.js';

export type { GpuAdapterDescription } from '../core/backend/adapter.js';
export type { BackendChoice, BackendName, SelectBackendOptions } from '../core/backend/select.js';
export type { ImageDataset, ImageDatasetOptions, PixelRange } from '../core/data/dataset.js';
export { installedWasmDirectory, NODE_BACKEND_CHOICES, selectNodeBackend } from './backend.js';
export { type EraReportFiles, writeEraReport } from './era-report.js';
export { loadFromDirectory, saveToDirectory } from './files.js';
export {
  type LoadMnistOptions,
  loadMnist,
  type MnistSplit,
  mnistDataDirectory,
  readIdxFile,
} from './mnist.js';
export {
  encodePng,
  FIGURE_FONT_FAMILY,
  renderVegaLiteToSvg,
  type SvgToPngOptions,
  shippedFontFiles,
  svgToPng,
  writeChartPng,
  writeFileAtomic,
  writeJson,
  writePng,
} from './render.js';
export {
  prepareOutputDirectory,
  prepareSplitReport,
  type SplitReportFiles,
  type SplitReportOptions,
  type SplitReportResult,
  writeSplitReport,
} from './split-report.js';
export {
  defaultWasmThreads,
  useWasmThreads,
  type WasmThreadsOptions,
  wasmThreadsCount,
} from './wasm-threads.js';
export { type NodeWebGpuAdapter, nodeWebGpuAdapter, releaseNodeWebGpu } from './webgpu.js';
export {
  assertLexnames,
  installedWordNetDirectory,
  type LabelledDocument,
  loadLabelledCorpus,
  loadWordNetGlosses,
  parseLabelledCorpus,
  parseWordNetData,
  WORDNET_LEXNAMES,
  type WordNetOptions,
} from './wordnet.js';
