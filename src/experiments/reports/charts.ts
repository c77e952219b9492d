import { GradientRoutingError } from '../../core/errors.js';
import { type Label, normalizeSeries, resolveLabels, type SeriesInput } from './series.js';

/**
 * A Vega-Lite specification as plain JSON. Typed loosely so that this entry point does not
 * need vega-lite's types; `renderVegaLiteToSvg` from `gradient-routing/node` (or vega-embed
 * in a browser) validates it.
 */
export type VegaLiteSpec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/** Options shared by the chart builders. */
export interface ChartOptions {
  /** Title above the chart. */
  readonly title?: string;
  /** A second, smaller line under the title, e.g. that a run only checks the pipeline. */
  readonly subtitle?: string;
  /** Title of the value (y) axis. */
  readonly valueTitle?: string;
  /** Title of the legend. Default `'series'`. */
  readonly seriesTitle?: string;
  /**
   * Colours of the series in order, any CSS colour. Default: Vega's `tableau10`, or `tableau20`
   * beyond ten series (`tableau10` would repeat its colours).
   */
  readonly colors?: readonly string[];
  /** Height of the plot area in pixels. Default 200. */
  readonly height?: number;
}

/** Options of {@link groupedBarChartSpec}. */
export interface GroupedBarChartOptions extends ChartOptions {
  /** The series, e.g. `{ decoder: mae, 'bottom half': maeBottom, 'top half': maeTop }`. */
  readonly series: SeriesInput;
  /** One label per value, shown along x in this order. Default `0, 1, …`. */
  readonly labels?: readonly Label[];
  /** Title of the label (x) axis. Default `'label'`. */
  readonly labelTitle?: string;
  /** Width of one bar in pixels; a label's group is as wide as its bars plus a gap. Default 10. */
  readonly barWidth?: number;
}

/** One curve of a line chart: values at steps. */
export interface Curve {
  /** Legend entry; unique among the curves. */
  readonly name: string;
  /** The values, e.g. losses. */
  readonly values: ArrayLike<number>;
  /** The step of each value. Default `0, 1, …`; give them for curves logged every n steps. */
  readonly steps?: ArrayLike<number>;
}

/** Several curves: an object of value arrays keyed by name (steps `0, 1, …`) or {@link Curve}s. */
export type CurveInput = Readonly<Record<string, ArrayLike<number>>> | readonly Curve[];

/** Options of {@link lineChartSpec}. */
export interface LineChartOptions extends ChartOptions {
  /** The curves, e.g. `{ train: trainLosses, test: { … } }` or `[{ name, values, steps }]`. */
  readonly curves: CurveInput;
  /** Title of the step (x) axis. Default `'step'`. */
  readonly stepTitle?: string;
  /** Log-scaled value axis, for losses that fall by orders of magnitude. Default false. */
  readonly logScale?: boolean;
  /** Width of the plot area in pixels. Default 400. */
  readonly width?: number;
  /** Mark each point; default only when every curve has at most 30, where lines hide them. */
  readonly points?: boolean;
}

function checkSize(value: number | undefined, name: string, context: string): void {
  if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
    throw new GradientRoutingError(
      `gradient-routing: ${context} got ${name} ${value}; pass a positive number of pixels.`,
    );
  }
}

// JSON has no NaN or Infinity, and Vega-Lite skips null values instead of drawing them at 0.
function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

// One colour per series, in the given order, shared by the bars or lines and the legend.
function seriesColor(names: readonly string[], options: ChartOptions): Record<string, unknown> {
  const { colors } = options;
  return {
    field: 'series',
    type: 'nominal',
    sort: names,
    title: options.seriesTitle ?? 'series',
    // Vega-Lite cuts legend labels at 160 px by default ("low half (certific…").
    legend: { labelLimit: 0 },
    scale: colors
      ? { domain: names, range: colors }
      : { domain: names, ...(names.length > 10 && { scheme: 'tableau20' }) },
  };
}

function header(options: ChartOptions, context: string): VegaLiteSpec {
  checkSize(options.height, 'height', context);
  return {
    $schema: SCHEMA,
    ...(options.subtitle === undefined
      ? options.title === undefined
        ? {}
        : { title: options.title }
      : { title: { text: options.title ?? '', subtitle: options.subtitle } }),
    height: options.height ?? 200,
  };
}

/**
 * Builds a grouped bar chart of per-label values for several named series: one group of bars
 * per label, one colour per series, e.g. the per-digit MAE of the decoder and of its halves.
 *
 * @param options - Series, labels, titles and sizes.
 * @returns A Vega-Lite spec with the data inline.
 *
 * @example
 * ```ts
 * const spec = groupedBarChartSpec({
 *   series: { 'bottom half': maeBottom, 'top half': maeTop },
 *   labelTitle: 'digit',
 *   valueTitle: 'MAE',
 * });
 * ```
 */
export function groupedBarChartSpec(options: GroupedBarChartOptions): VegaLiteSpec {
  const context = 'groupedBarChartSpec';
  const series = normalizeSeries(options.series, context);
  const labels = resolveLabels(options.labels, series, context);
  checkSize(options.barWidth, 'barWidth', context);
  const names = series.map((s) => s.name);
  const barWidth = options.barWidth ?? 10;
  const values = labels.flatMap((label, i) =>
    series.map((s) => ({ label, series: s.name, value: finiteOrNull(s.values[i] ?? Number.NaN) })),
  );
  return {
    ...header(options, context),
    // The step is one label's group; without `for` Vega-Lite applies it to every bar.
    width: { step: barWidth * names.length + Math.max(4, barWidth), for: 'position' },
    data: { values },
    mark: { type: 'bar' },
    encoding: {
      x: {
        field: 'label',
        type: 'nominal',
        sort: labels,
        title: options.labelTitle ?? 'label',
        axis: { labelAngle: 0 },
      },
      xOffset: { field: 'series', type: 'nominal', sort: names },
      y: { field: 'value', type: 'quantitative', title: options.valueTitle ?? 'value' },
      color: seriesColor(names, options),
      tooltip: [
        { field: 'label', type: 'nominal' },
        { field: 'series', type: 'nominal' },
        { field: 'value', type: 'quantitative', format: '.4f' },
      ],
    },
  };
}

function normalizeCurves(input: CurveInput): Curve[] {
  const curves: Curve[] = Array.isArray(input)
    ? [...(input as readonly Curve[])]
    : Object.entries(input).map(([name, values]) => ({ name, values }));
  // The names and values follow the same rules as bar series.
  normalizeSeries(curves, 'lineChartSpec');
  for (const curve of curves) {
    if (curve.steps !== undefined && curve.steps.length !== curve.values.length) {
      throw new GradientRoutingError(
        `gradient-routing: lineChartSpec curve '${curve.name}' has ${curve.values.length} values but ${curve.steps.length} steps; give one step per value.`,
      );
    }
  }
  return curves;
}

/**
 * Builds a line chart of curves such as training and test losses, one colour per curve.
 * Non-finite values (and, on a log scale, values ≤ 0) are left out rather than drawn.
 *
 * @param options - Curves, titles, scale and sizes.
 * @returns A Vega-Lite spec with the data inline.
 *
 * @example
 * ```ts
 * const spec = lineChartSpec({
 *   curves: [{ name: 'train', values: losses }, { name: 'test', values: testLosses, steps: evalSteps }],
 *   valueTitle: 'loss',
 *   logScale: true,
 * });
 * ```
 */
export function lineChartSpec(options: LineChartOptions): VegaLiteSpec {
  const context = 'lineChartSpec';
  const curves = normalizeCurves(options.curves);
  checkSize(options.width, 'width', context);
  const logScale = options.logScale ?? false;
  const names = curves.map((c) => c.name);
  const values = curves.flatMap((curve) =>
    Array.from(curve.values, (value, i) => ({
      step: curve.steps?.[i] ?? i,
      series: curve.name,
      value: logScale && value <= 0 ? null : finiteOrNull(value),
    })),
  );
  const longest = Math.max(...curves.map((c) => c.values.length));
  const points = options.points ?? longest <= 30;
  return {
    ...header(options, context),
    width: options.width ?? 400,
    data: { values },
    mark: { type: 'line', point: points, interpolate: 'linear' },
    encoding: {
      x: {
        field: 'step',
        type: 'quantitative',
        title: options.stepTitle ?? 'step',
        // Steps are whole numbers: no "10.0, 10.5, 11.0" ticks on a short run.
        axis: { tickMinStep: 1, format: 'd' },
      },
      y: {
        field: 'value',
        type: 'quantitative',
        title: options.valueTitle ?? 'value',
        scale: logScale ? { type: 'log' } : { zero: false },
      },
      color: seriesColor(names, options),
      tooltip: [
        { field: 'series', type: 'nominal' },
        { field: 'step', type: 'quantitative' },
        { field: 'value', type: 'quantitative', format: '.4g' },
      ],
    },
  };
}
