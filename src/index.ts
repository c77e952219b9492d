/**
 * gradient-routing: gradient routing (Cloud et al., 2024) for TensorFlow.js.
 *
 * This entry point runs anywhere TensorFlow.js runs, browser included. Node-only helpers
 * (file I/O, datasets, PNG reports) live in `gradient-routing/node`.
 *
 * @packageDocumentation
 */
// tfjs-layers registers every op's gradient with tfjs-core, which the routed models need.
import '@tensorflow/tfjs-layers';

export {
  type BackendChoice,
  type BackendName,
  type SelectBackendOptions,
  selectBackend,
} from './backend/select.js';
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
export { type Region, regionMask, regionMaskValues, validateRegions } from './masks/regions.js';
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
export { ablate } from './routing/ablate.js';
export {
  exactMaskProduct,
  gateForward,
  type MaskInput,
  type NestedNumbers,
  routeGradients,
  stopGradient,
} from './routing/route.js';
