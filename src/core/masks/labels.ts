import { GradientRoutingError } from '../errors.js';
import { type Region, regionMaskValues } from './regions.js';
import { validateMaskValues } from './soft.js';

/**
 * What happens to an example whose label is in no route: `'error'` throws naming the label,
 * `'full'` lets its gradient reach every dim, `'none'` blocks all of it. A label is "in no route"
 * only below `numClasses` (see {@link LabelRouteOptions.numClasses}); above it, it is an error.
 */
export type UnroutedPolicy = 'error' | 'full' | 'none';

/** A group of labels whose examples may only update `region` (one `[start, end)` or several). */
export interface LabelRoute {
  /** Class labels (non-negative integers); each label may appear in one route only. */
  readonly labels: readonly number[];
  /** Where these examples' gradients may go: one region, or several disjoint ones. */
  readonly region: Region | readonly Region[];
}

/** Options of {@link labelRule} and the routes it compiles. */
export interface LabelRouteOptions {
  /** Policy for labels in no route; `'error'` by default, so a forgotten label is loud. */
  unrouted?: UnroutedPolicy;
  /**
   * Labels are integers in `[0, numClasses)`; anything else is an error. Defaults to the largest
   * routed label + 1, so `unrouted: 'full'` or `'none'` only reaches the labels below that: pass
   * the real class count when some classes are deliberately left to the `unrouted` policy, e.g.
   * `{ unrouted: 'full', numClasses: 10 }`.
   */
  numClasses?: number;
}

/**
 * The lookup-table form of a set of mask rules (the paper's masklib): one mask row per rule, and
 * for each label the row it selects. A batch's masks are then a single gather of rows.
 */
export interface RouteTableSpec {
  /** The mask rows, all of the same length `D`, weights in `[0, 1]`. */
  readonly rows: readonly Float32Array[];
  /** For each label in `[0, numClasses)`, its row in `rows`, or -1 for labels in no route. */
  readonly rowOfLabel: Int32Array;
  /** The row used for labels in no route (and, on device, for invalid labels). */
  readonly unroutedRow: number;
  /** Whether a label in no route is an error or takes {@link RouteTableSpec.unroutedRow}. */
  readonly unrouted: UnroutedPolicy;
}

function assertPolicy(policy: string): asserts policy is UnroutedPolicy {
  if (policy !== 'error' && policy !== 'full' && policy !== 'none') {
    throw new GradientRoutingError(
      `gradient-routing: unrouted must be 'error', 'full' or 'none', got '${policy}'.`,
    );
  }
}

function assertCount(value: number, what: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new GradientRoutingError(
      `gradient-routing: ${what} must be a positive integer, got ${value}.`,
    );
  }
}

/**
 * Compiles label routes into their table form. Pure: no tensors are created.
 * Regions within a route must be disjoint; routes may share dims (e.g. a shared region).
 * The last row is the unrouted row: all ones for `'full'`, all zeros otherwise.
 *
 * @param size - The feature size `D` of the masks.
 * @throws On a label in two routes, a non-integer or negative label, a label outside
 *   `numClasses`, regions out of bounds or overlapping within a route, or an unknown policy.
 */
export function compileLabelRoutes(
  size: number,
  routes: readonly LabelRoute[],
  options: LabelRouteOptions = {},
): RouteTableSpec {
  const unrouted = options.unrouted ?? 'error';
  assertPolicy(unrouted);
  if (routes.length === 0) {
    throw new GradientRoutingError('gradient-routing: give at least one route { labels, region }.');
  }
  const routeOf = new Map<number, number>();
  routes.forEach((route, index) => {
    for (const label of route.labels) {
      if (!Number.isInteger(label) || label < 0) {
        throw new GradientRoutingError(
          `gradient-routing: route ${index} has label ${label}; labels are non-negative integers, fix or remove it.`,
        );
      }
      const previous = routeOf.get(label);
      if (previous !== undefined) {
        throw new GradientRoutingError(
          `gradient-routing: label ${label} is in routes ${previous} and ${index}; ` +
            'put each label in at most one route (use a region list to give it several regions).',
        );
      }
      routeOf.set(label, index);
    }
  });
  if (routeOf.size === 0 && options.numClasses === undefined) {
    throw new GradientRoutingError(
      'gradient-routing: every route has an empty label list; give each route the labels whose ' +
        'examples it routes, e.g. { labels: [0, 1], region: [0, 16] }.',
    );
  }
  const numClasses = options.numClasses ?? Math.max(-1, ...routeOf.keys()) + 1;
  assertCount(numClasses, 'numClasses');
  const rowOfLabel = new Int32Array(numClasses).fill(-1);
  for (const [label, index] of routeOf) {
    if (label >= numClasses) {
      throw new GradientRoutingError(
        `gradient-routing: route ${index} has label ${label}, but numClasses is ${numClasses}; ` +
          `raise numClasses to at least ${label + 1} or drop the label.`,
      );
    }
    rowOfLabel[label] = index;
  }
  const rows = routes.map((route, index) => {
    try {
      return regionMaskValues(size, route.region);
    } catch (error) {
      // validateRegions cannot know which route it checks; with many routes that is the clue.
      const reason = (error as Error).message.replace('gradient-routing: ', '');
      throw new GradientRoutingError(`gradient-routing: route ${index}: ${reason}`);
    }
  });
  rows.push(new Float32Array(size).fill(unrouted === 'full' ? 1 : 0));
  return { rows, rowOfLabel, unroutedRow: routes.length, unrouted };
}

/**
 * Checks a hand-made {@link RouteTableSpec} (rows of equal length with weights in [0, 1], row
 * indices in range) and returns the mask size `D`.
 */
export function validateRouteTableSpec(
  spec: RouteTableSpec,
  range: readonly [min: number, max: number] = [0, 1],
): number {
  assertPolicy(spec.unrouted);
  const size = spec.rows[0]?.length ?? 0;
  assertCount(size, 'the length of the table rows');
  spec.rows.forEach((row, i) => {
    if (row.length !== size) {
      throw new GradientRoutingError(
        `gradient-routing: table row ${i} has length ${row.length}, row 0 has ${size}; ` +
          'give every row the same length.',
      );
    }
    validateMaskValues(row, `table row ${i}`, range);
  });
  assertCount(spec.rowOfLabel.length, 'numClasses (the length of rowOfLabel)');
  const rowCount = spec.rows.length;
  const checkRow = (row: number, what: string, allowNoRoute: boolean): void => {
    if (!Number.isInteger(row) || row < (allowNoRoute ? -1 : 0) || row >= rowCount) {
      throw new GradientRoutingError(
        `gradient-routing: ${what} selects row ${row}, but the table has rows 0..${rowCount - 1}` +
          `${allowNoRoute ? ' (or -1 for no route)' : ''}; fix the index.`,
      );
    }
  };
  spec.rowOfLabel.forEach((row, label) => {
    checkRow(row, `label ${label}`, true);
  });
  checkRow(spec.unroutedRow, 'unroutedRow', false);
  return size;
}

/** Where flat label `index` sits: `example 3` for `[B]` labels, `example 3, token 5` for `[B, T]`. */
function labelPosition(index: number, shape: readonly number[] | undefined): string {
  if (shape === undefined || shape.length < 2) return `example ${index}`;
  const perExample = shape.slice(1).reduce((a, b) => a * b, 1);
  return `example ${Math.floor(index / perExample)}, token ${index % perExample}`;
}

/**
 * The fix for a label outside `[0, numClasses)`. A whole label at or above numClasses is most
 * often a class left out of the routes on purpose: numClasses defaults to the largest routed
 * label + 1, so the `unrouted` policy only reaches labels below it and the message says both.
 */
function outOfRangeFix(spec: RouteTableSpec, label: number): string {
  if (!Number.isInteger(label) || label < spec.rowOfLabel.length) {
    return 'fix the label or pass a larger numClasses.';
  }
  const policy =
    spec.unrouted === 'error'
      ? "with unrouted: 'full' or 'none' to say what the examples of classes in no route may update"
      : `so that labels in no route follow unrouted: '${spec.unrouted}'`;
  return (
    `fix the label, or pass numClasses: ${label + 1} (or the real class count) ${policy}; ` +
    'numClasses defaults to the largest routed label + 1.'
  );
}

/**
 * Maps host labels to table rows, validating each one. Pure: no tensors are created.
 * @param shape - The labels' shape, when they came from a tensor (names tokens in messages).
 * @throws {@link GradientRoutingError} (`invalid-label`, the label as `value`) on a non-integer
 *   label, one outside `[0, numClasses)`, or (policy `'error'`) one in no route; the message names
 *   the example, the label and the fix.
 */
export function labelRows(
  spec: RouteTableSpec,
  labels: ArrayLike<number>,
  shape?: readonly number[],
): Int32Array {
  const numClasses = spec.rowOfLabel.length;
  return Int32Array.from({ length: labels.length }, (_, example) => {
    const label = labels[example]!;
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new GradientRoutingError(
        `gradient-routing: ${labelPosition(example, shape)} has label ${label}, but labels must be integers in ` +
          `[0, ${numClasses}); ${outOfRangeFix(spec, label)}`,
        'invalid-label',
        label,
      );
    }
    const row = spec.rowOfLabel[label]!;
    if (row >= 0) return row;
    if (spec.unrouted === 'error') {
      throw new GradientRoutingError(
        `gradient-routing: label ${label} (${labelPosition(example, shape)}) is in no route; add it to a ` +
          "route's labels, or pass unrouted: 'full' or 'none' to say what its examples may update.",
        'invalid-label',
        label,
      );
    }
    return spec.unroutedRow;
  });
}

/** Row-major values of the rows `picks` of `rows`, each of length `size`. */
export function stackRows(
  rows: readonly Float32Array[],
  picks: ArrayLike<number>,
  size: number,
): Float32Array {
  const values = new Float32Array(picks.length * size);
  for (let i = 0; i < picks.length; i++) values.set(rows[picks[i]!]!, i * size);
  return values;
}

/**
 * One block of `blockSize` dims per class: class `c` routes to `[c * blockSize, (c+1) * blockSize)`,
 * so the masks need `size >= numClasses * blockSize`.
 *
 * @example
 * ```ts
 * const rule = labelRule(10 * 4, classBlockRoutes(10, 4)); // digit c owns dims 4c..4c+3
 * ```
 */
export function classBlockRoutes(numClasses: number, blockSize: number): LabelRoute[] {
  assertCount(numClasses, 'numClasses');
  assertCount(blockSize, 'blockSize');
  return Array.from({ length: numClasses }, (_, c) => ({
    labels: [c],
    region: [c * blockSize, (c + 1) * blockSize] as const,
  }));
}
