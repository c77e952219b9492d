import { GradientRoutingError } from '../../core/errors.js';
import {
  type Label,
  mean,
  type NormalizedSeries,
  normalizeSeries,
  resolveLabels,
  type SeriesInput,
} from './series.js';

/** How a table column is aligned. */
export type ColumnAlign = 'left' | 'right' | 'center';

/** A table cell: numbers are formatted with {@link FormatTableOptions.digits} or `format`. */
export type TableCell = string | number;

/** Options of {@link formatTable}. */
export interface FormatTableOptions {
  /**
   * One alignment for every column, or one per column (missing entries use the default).
   * Default: right for columns whose cells are all numbers, so decimals line up; left otherwise.
   */
  readonly align?: ColumnAlign | readonly (ColumnAlign | undefined)[];
  /** Digits after the decimal point for number cells. Default 4. */
  readonly digits?: number;
  /** Formats number cells instead of `digits`, e.g. `(v) => v.toExponential(2)`. */
  readonly format?: (value: number) => string;
}

const MIN_WIDTH = 3;

function checkDigits(digits: number, context: string): void {
  if (!Number.isInteger(digits) || digits < 0 || digits > 100) {
    throw new GradientRoutingError(
      `gradient-routing: ${context} got digits ${digits}; pass a whole number from 0 to 100.`,
    );
  }
}

function cellText(cell: TableCell, format: (value: number) => string): string {
  const text = typeof cell === 'number' ? format(cell) : cell;
  // A pipe would end the cell and a line break the row in Markdown.
  return text.replace(/\r\n|\r|\n/g, ' ').replace(/\|/g, '\\|');
}

// Code points rather than UTF-16 units, so 'μ' or '∞' count as one column.
function textWidth(text: string): number {
  return [...text].length;
}

function pad(text: string, width: number, align: ColumnAlign): string {
  const gap = width - textWidth(text);
  if (align === 'right') return ' '.repeat(gap) + text;
  if (align === 'center') {
    const left = Math.floor(gap / 2);
    return ' '.repeat(left) + text + ' '.repeat(gap - left);
  }
  return text + ' '.repeat(gap);
}

function delimiter(width: number, align: ColumnAlign): string {
  if (align === 'right') return `${'-'.repeat(width - 1)}:`;
  if (align === 'center') return `:${'-'.repeat(width - 2)}:`;
  return `:${'-'.repeat(width - 1)}`;
}

/**
 * Formats a GitHub-flavoured Markdown table whose columns are padded to equal width, so the
 * same text renders as a table on GitHub and reads as one when printed to a console.
 *
 * @param headers - Column titles.
 * @param rows - Body rows; a short row is padded with empty cells.
 * @param options - Alignment and number formatting.
 * @returns The table, one line per row, without a trailing newline.
 *
 * @example
 * ```ts
 * formatTable(['digit', 'MAE'], [['0', 0.1234], ['1', 0.5]]);
 * // | digit |    MAE |
 * // | :---- | -----: |
 * // | 0     | 0.1234 |
 * // | 1     | 0.5000 |
 * ```
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly TableCell[])[],
  options: FormatTableOptions = {},
): string {
  const digits = options.digits ?? 4;
  checkDigits(digits, 'formatTable');
  const format = options.format ?? ((value: number) => formatNumber(value, digits));
  if (headers.length === 0) {
    throw new GradientRoutingError(
      'gradient-routing: formatTable got no headers; pass one title per column.',
    );
  }
  rows.forEach((row, index) => {
    if (row.length > headers.length) {
      throw new GradientRoutingError(
        `gradient-routing: formatTable row ${index} has ${row.length} cells but there are ${headers.length} headers; add headers or shorten the row.`,
      );
    }
  });
  const { align } = options;
  if (Array.isArray(align) && align.length > headers.length) {
    throw new GradientRoutingError(
      `gradient-routing: formatTable got ${align.length} alignments for ${headers.length} columns; pass at most one per column.`,
    );
  }
  const aligns = headers.map((_, column): ColumnAlign => {
    const given = typeof align === 'string' ? align : align?.[column];
    if (given !== undefined) return given;
    const numeric = rows.length > 0 && rows.every((row) => typeof row[column] === 'number');
    return numeric ? 'right' : 'left';
  });
  const header = headers.map((title) => cellText(title, format));
  const body = rows.map((row) => headers.map((_, column) => cellText(row[column] ?? '', format)));
  const widths = headers.map((_, column) =>
    Math.max(MIN_WIDTH, ...[header, ...body].map((line) => textWidth(line[column] ?? ''))),
  );
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, column) => pad(cell, widths[column] ?? 0, aligns[column] ?? 'left')).join(' | ')} |`;
  const rule = `| ${widths.map((width, column) => delimiter(width, aligns[column] ?? 'left')).join(' | ')} |`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

/**
 * Formats a number with a fixed number of decimals; NaN and infinities as `NaN`, `Infinity`
 * and `-Infinity`, so a diverged run is visible instead of hidden as a large number.
 *
 * @param value - The number.
 * @param digits - Digits after the decimal point. Default 4.
 */
export function formatNumber(value: number, digits = 4): string {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value);
}

/** A derived series: `numerator / denominator` label by label, e.g. high-half MAE / low-half. */
export interface SeriesRatio {
  /** Name of the series divided. */
  readonly numerator: string;
  /** Name of the series divided by. */
  readonly denominator: string;
  /** Title of the derived column or row. Default `numerator/denominator`. */
  readonly name?: string;
}

/** Options of {@link seriesTable} and {@link formatSeriesTable}. */
export interface SeriesTableOptions {
  /** The series, e.g. `{ decoder: mae, 'low half': maeLow, 'high half': maeHigh }`. */
  readonly series: SeriesInput;
  /** One label per value, e.g. the digits. Default `0, 1, …`. */
  readonly labels?: readonly Label[];
  /**
   * `'rows'` (default): one row per label, one column per series, a `mean` row last.
   * `'columns'`: one column per label, one row per series, a `mean` column last; wide, but it
   * puts ten digits side by side.
   */
  readonly labelsAs?: 'rows' | 'columns';
  /** Title of the label column (labels as rows) or of the series column. Default `'label'` / `'series'`. */
  readonly cornerTitle?: string;
  /** Whether to add the mean over labels. Default true. */
  readonly mean?: boolean;
  /**
   * Derived ratio series. In the mean row or column a ratio shows the ratio of the two means,
   * not the mean of the ratios, so one label with a tiny denominator cannot dominate it.
   */
  readonly ratios?: readonly SeriesRatio[];
  /** Digits after the decimal point. Default 4. */
  readonly digits?: number;
}

/** The cells of a series table, ready for {@link formatTable} or JSON. */
export interface SeriesTable {
  /** Column titles. */
  readonly headers: string[];
  /** Body rows: a title cell, then numbers. */
  readonly rows: TableCell[][];
}

function withRatios(
  series: readonly NormalizedSeries[],
  ratios: readonly SeriesRatio[],
): { name: string; values: number[]; mean: number }[] {
  const byName = new Map(series.map((s) => [s.name, s]));
  const find = (name: string): NormalizedSeries => {
    const found = byName.get(name);
    if (!found) {
      throw new GradientRoutingError(
        `gradient-routing: seriesTable ratio refers to series '${name}', which is not among ${[...byName.keys()].map((n) => `'${n}'`).join(', ')}; use one of those names.`,
      );
    }
    return found;
  };
  const plain = series.map((s) => ({ name: s.name, values: s.values, mean: mean(s.values) }));
  const derived = ratios.map((ratio) => {
    const top = find(ratio.numerator);
    const bottom = find(ratio.denominator);
    return {
      name: ratio.name ?? `${ratio.numerator}/${ratio.denominator}`,
      values: top.values.map((value, i) => value / (bottom.values[i] ?? Number.NaN)),
      mean: mean(top.values) / mean(bottom.values),
    };
  });
  const all = [...plain, ...derived];
  const names = all.map((s) => s.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) {
    throw new GradientRoutingError(
      `gradient-routing: seriesTable has two columns named '${repeated}'; give the ratio another name.`,
    );
  }
  return all;
}

/**
 * Lays out per-label values of several named series (e.g. per-digit MAE of the decoder and of
 * its halves) as table cells, with a mean and optional ratios.
 *
 * @param options - Series, labels, orientation, mean and ratios.
 * @returns Headers and rows; pass them to {@link formatTable} or store them as JSON.
 */
export function seriesTable(options: SeriesTableOptions): SeriesTable {
  const series = normalizeSeries(options.series, 'seriesTable');
  const labels = resolveLabels(options.labels, series, 'seriesTable');
  const columns = withRatios(series, options.ratios ?? []);
  const withMean = options.mean ?? true;
  if ((options.labelsAs ?? 'rows') === 'rows') {
    const headers = [options.cornerTitle ?? 'label', ...columns.map((c) => c.name)];
    const rows: TableCell[][] = labels.map((label, i) => [
      label,
      ...columns.map((c) => c.values[i] ?? Number.NaN),
    ]);
    if (withMean) rows.push(['mean', ...columns.map((c) => c.mean)]);
    return { headers, rows };
  }
  const headers = [options.cornerTitle ?? 'series', ...labels, ...(withMean ? ['mean'] : [])];
  const rows = columns.map((c): TableCell[] => [
    c.name,
    ...c.values,
    ...(withMean ? [c.mean] : []),
  ]);
  return { headers, rows };
}

/**
 * Formats per-label values of several named series as a Markdown/console table, see
 * {@link seriesTable} for the layout.
 *
 * @example
 * ```ts
 * console.log(formatSeriesTable({
 *   series: { decoder: mae, 'bottom half': maeBottom, 'top half': maeTop },
 *   ratios: [{ numerator: 'top half', denominator: 'bottom half' }],
 *   cornerTitle: 'digit',
 * }));
 * ```
 */
export function formatSeriesTable(options: SeriesTableOptions): string {
  const { headers, rows } = seriesTable(options);
  const digits = options.digits ?? 4;
  checkDigits(digits, 'formatSeriesTable');
  // Labels such as digits are numbers but read as names, so the title column stays left.
  const align: ColumnAlign[] = headers.map((_, column) => (column === 0 ? 'left' : 'right'));
  return formatTable(headers, rows, { align, digits });
}
