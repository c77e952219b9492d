import { GradientRoutingError } from '../../core/errors.js';
/**
 * Named series of numbers shared by the tables and charts, so that one MAE result can feed a
 * table, a chart and a JSON file without being reshaped three times.
 */

/** One named series of per-label values, e.g. a decoder's MAE per digit. */
export interface Series {
  /** Shown as the column, row or legend entry; must be unique among the series. */
  readonly name: string;
  /** One value per label, in label order. */
  readonly values: ArrayLike<number>;
}

/**
 * Several named series: either an object whose keys are the names (insertion order is kept,
 * except that JavaScript puts integer-like keys such as `'0'` first) or an array of
 * {@link Series}, whose order is always kept.
 */
export type SeriesInput = Readonly<Record<string, ArrayLike<number>>> | readonly Series[];

/** A label shown on an axis or in a table: a digit, a class name… */
export type Label = string | number;

/** @internal Series with their values copied into plain arrays. */
export interface NormalizedSeries {
  readonly name: string;
  readonly values: number[];
}

function isSeriesArray(input: SeriesInput): input is readonly Series[] {
  return Array.isArray(input);
}

/**
 * @internal Copies the series into plain arrays and checks names and lengths.
 * @param context - The public function's name, so errors say who rejected the input.
 */
export function normalizeSeries(input: SeriesInput, context: string): NormalizedSeries[] {
  const entries: [string, ArrayLike<number>][] = isSeriesArray(input)
    ? input.map((series) => [series.name, series.values])
    : Object.entries(input);
  if (entries.length === 0) {
    throw new GradientRoutingError(
      `gradient-routing: ${context} got no series; pass at least one, e.g. { decoder: [0.1, 0.2] }.`,
    );
  }
  const seen = new Set<string>();
  const result: NormalizedSeries[] = [];
  for (const [name, values] of entries) {
    if (typeof name !== 'string' || name.length === 0) {
      throw new GradientRoutingError(
        `gradient-routing: ${context} got a series without a name; name each one.`,
      );
    }
    if (seen.has(name)) {
      throw new GradientRoutingError(
        `gradient-routing: ${context} got two series named '${name}'; give each series its own name.`,
      );
    }
    seen.add(name);
    result.push({ name, values: Array.from(values) });
  }
  return result;
}

/**
 * @internal The labels as strings, checked against the series' length; default `0, 1, …`.
 * @param context - The public function's name, so errors say who rejected the input.
 */
export function resolveLabels(
  labels: readonly Label[] | undefined,
  series: readonly NormalizedSeries[],
  context: string,
): string[] {
  const first = series[0];
  const length = labels?.length ?? first?.values.length ?? 0;
  for (const { name, values } of series) {
    if (values.length !== length) {
      const expected = labels ? `the ${length} labels` : `series '${first?.name}' (${length})`;
      throw new GradientRoutingError(
        `gradient-routing: ${context}: series '${name}' has ${values.length} values but ${expected} need ${length}; give every series one value per label.`,
      );
    }
  }
  const strings = labels ? labels.map(String) : Array.from({ length }, (_, i) => String(i));
  if (new Set(strings).size !== strings.length) {
    throw new GradientRoutingError(
      `gradient-routing: ${context} got repeated labels (${strings.join(', ')}); make each label unique.`,
    );
  }
  return strings;
}

/** @internal Mean of the values; NaN when there are none, so an empty mean never looks like 0. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}
