/**
 * Node-only parts of gradient-routing: backend selection with tfjs-node and the installed wasm
 * files, IDX/MNIST data, saving models to directories and writing reports.
 *
 * @packageDocumentation
 */
export {
  useWasmThreads,
  type WasmThreadsOptions,
  wasmThreadsCount,
} from './backend/fast-kernels-node.js';
export { installedWasmDirectory, selectBackend } from './backend/node.js';
export type { BackendChoice, BackendName, SelectBackendOptions } from './backend/select.js';
export type { ImageDataset, ImageDatasetOptions, PixelRange } from './data/dataset.js';
export {
  type LoadMnistOptions,
  loadMnist,
  type MnistSplit,
  mnistDataDirectory,
  readIdxFile,
} from './data/mnist.js';
export { loadFromDirectory, saveToDirectory } from './io/file-system.js';
export {
  encodePng,
  renderVegaLiteToSvg,
  type SvgToPngOptions,
  svgToPng,
  writeChartPng,
  writeFileAtomic,
  writeJson,
  writePng,
} from './reports/render.js';
export {
  type SplitReportFiles,
  type SplitReportOptions,
  writeSplitReport,
} from './reports/split-report.js';
