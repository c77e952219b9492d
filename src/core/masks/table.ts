import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { RoutingBatch, RoutingRule } from '../routing/points.js';
import { maskValidationEnabled } from '../routing/route.js';
import { readSync } from '../util/read.js';
import {
  compileLabelRoutes,
  type LabelRoute,
  type LabelRouteOptions,
  labelRows,
  type RouteTableSpec,
  stackRows,
  validateRouteTableSpec,
} from './labels.js';
import { validateMaskValues } from './soft.js';

/** Options of {@link MaskTable}. */
export interface MaskTableOptions {
  /**
   * The range mask values must lie in, `[0, 1]` by default. Widen it only on purpose: ERA's
   * forget rows use −0.75 on the original units, which reverses their gradient.
   */
  range?: readonly [min: number, max: number];
}

/**
 * Rows of masks resident on the backend: row `r` is the mask a rule selects with index `r`.
 * Looking a batch's masks up is then one gather on device, with no host sync. Build it once,
 * {@link MaskTable.dispose} it when done.
 *
 * @example
 * ```ts
 * const table = new MaskTable([[1, 1, 0, 0], [0, 0, 1, 1]]);
 * const masks = table.gather(tf.tensor1d([0, 1, 1], 'int32')); // [3, 4]
 * ```
 */
export class MaskTable {
  /** The rows, `[numRows, size]`. Owned by the table; do not dispose them yourself. */
  readonly rows: tf.Tensor2D;
  /** The length of each mask row. */
  readonly size: number;
  /** The host copy of the rows, for inspection and host-side masks. */
  readonly values: readonly Float32Array[];
  /** The range every value lies in (checked at construction). */
  readonly range: readonly [min: number, max: number];
  private disposed = false;

  /**
   * @param rows - Mask rows of equal length, as arrays or typed arrays.
   * @throws {@link GradientRoutingError} on no rows, rows of unequal length, or values that are
   *   NaN or outside the range.
   */
  constructor(rows: readonly ArrayLike<number>[], options: MaskTableOptions = {}) {
    const range = options.range ?? [0, 1];
    if (!(range[0] <= range[1])) {
      throw new GradientRoutingError(
        `a mask table's range must be [min, max] with min <= max, got [${range.join(', ')}].`,
      );
    }
    this.range = [range[0], range[1]];
    const size = rows[0]?.length ?? 0;
    // No rows gives size 0 too.
    if (size === 0) {
      throw new GradientRoutingError(
        'a mask table needs at least one row of length >= 1; pass e.g. [[1, 0], [0, 1]].',
      );
    }
    this.values = rows.map((row, i) => {
      if (row.length !== size) {
        throw new GradientRoutingError(
          `mask table row ${i} has length ${row.length}, row 0 has ${size}; give every row the same length.`,
        );
      }
      validateMaskValues(row, `mask table row ${i}`, range);
      return Float32Array.from(row);
    });
    this.size = size;
    const flat = stackRows(this.values, Array.from(this.values.keys()), size);
    // Kept, so that a table built inside a caller's tf.tidy outlives it.
    this.rows = tf.keep(tf.tensor2d(flat, [rows.length, size], 'float32'));
  }

  /** How many rows the table has. */
  get numRows(): number {
    return this.values.length;
  }

  /**
   * The masks of the given row indices: shape `[...indices.shape, size]`, e.g. `[B, D]` for one
   * row per example or `[B, T, D]` for one per token.
   */
  gather(indices: tf.Tensor): tf.Tensor {
    this.assertLive();
    return tf.gather(this.rows, indices);
  }

  /** Throws a clear error when the table was disposed. */
  assertLive(): void {
    if (this.disposed) {
      throw new GradientRoutingError(
        'this mask table (or the rule that owns it) was disposed; build a new one.',
        'disposed',
      );
    }
  }

  /** Frees the rows. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.rows.dispose();
  }
}

/** A rule whose masks are rows of a {@link MaskTable}, selected per example or per token. */
export interface TableRule extends RoutingRule {
  /** The table the rule selects rows of. */
  readonly table: MaskTable;
  /** The row index of each example or token of a batch, int32, on device. */
  rowsOf(batch: RoutingBatch): tf.Tensor;
  /** Frees the rule's tensors (its table included). Safe to call twice. */
  dispose(): void;
}

function assertLiveLabels(labels: tf.Tensor): void {
  if (labels.isDisposed) {
    throw new GradientRoutingError(
      'the labels tensor was disposed before use; keep it alive until the masks are built.',
      'disposed',
    );
  }
}

function labelsOf(batch: RoutingBatch, description: string): tf.Tensor {
  if (batch.labels === undefined) {
    throw new GradientRoutingError(
      `the rule '${description}' reads batch.labels, which is missing; pass { labels } in the batch.`,
    );
  }
  return batch.labels;
}

/**
 * Routes by label: a label's examples (or tokens) may update only its route's regions. Build it
 * with {@link labelRule}.
 */
export class LabelRule implements TableRule {
  readonly description: string;
  readonly table: MaskTable;
  readonly range: readonly [min: number, max: number];
  /** The compiled routes: the rows and each label's row. */
  readonly spec: RouteTableSpec;
  /** Labels are integers in `[0, numClasses)`. */
  readonly numClasses: number;
  /**
   * `int32 [numClasses + 2]`: entry `label + 1` is the label's row; both ends hold the unrouted
   * row, so that clamping `label + 1` sends every out-of-range label there without a branch.
   */
  private readonly lookup: tf.Tensor1D;

  /** @throws {@link GradientRoutingError} if `spec` is malformed. */
  constructor(spec: RouteTableSpec, options: MaskTableOptions = {}) {
    validateRouteTableSpec(spec, options.range);
    this.spec = spec;
    this.numClasses = spec.rowOfLabel.length;
    this.description = `label rule over ${this.numClasses} classes`;
    this.table = new MaskTable(spec.rows, options);
    this.range = this.table.range;
    const routedRows = Array.from(spec.rowOfLabel, (row) => (row < 0 ? spec.unroutedRow : row));
    const lookup = Int32Array.from([spec.unroutedRow, ...routedRows, spec.unroutedRow]);
    this.lookup = tf.keep(tf.tensor1d(lookup, 'int32'));
  }

  /**
   * The row of each label, on device. Labels in no route, and labels out of range, take the
   * unrouted row without a host sync; validate labels once where they enter with
   * {@link LabelRule.checkLabels}. With mask validation on (`setMaskValidation(true)`) every
   * batch's labels are checked here too, the unrouted policy included.
   */
  rowsOf(batch: RoutingBatch): tf.Tensor {
    const labels = labelsOf(batch, this.description);
    if (maskValidationEnabled()) this.checkLabelsSync(labels);
    return this.deviceRows(labels);
  }

  /** The masks of a batch: `[B, size]` for `[B]` labels, `[B, T, size]` for `[B, T]`. */
  masks(batch: RoutingBatch): tf.Tensor {
    return tf.tidy(() => this.table.gather(this.rowsOf(batch)));
  }

  /**
   * The masks of these labels, validated like host labels are: integers in `[0, numClasses)`, in
   * a route unless the unrouted policy allows it. A tensor is read back for that (a sync); in a
   * hot loop pass `{ validate: false }` (or use {@link LabelRule.masks}) after checking the labels
   * once with {@link LabelRule.checkLabels}.
   *
   * @example
   * ```ts
   * const rule = labelRule(32, routes);
   * const masks = rule.masksFor([3, 7]); // [2, 32]
   * ```
   */
  masksFor(labels: tf.Tensor | ArrayLike<number>, options: { validate?: boolean } = {}): tf.Tensor {
    this.table.assertLive();
    if (labels instanceof tf.Tensor) {
      if (options.validate !== false && !maskValidationEnabled()) this.checkLabelsSync(labels);
      return this.masks({ labels });
    }
    const rows = labelRows(this.spec, labels);
    return tf.tidy(() => this.table.gather(tf.tensor1d(rows, 'int32')));
  }

  /**
   * Checks labels the way host labels are checked in {@link LabelRule.masksFor}: integers in
   * `[0, numClasses)`, and in a route unless the unrouted policy allows it. Reads a tensor back
   * asynchronously (works on every backend); call it once where labels enter, not every step.
   * @throws {@link GradientRoutingError} (`invalid-label`) naming the example, the label and the fix.
   */
  async checkLabels(labels: tf.Tensor | ArrayLike<number>): Promise<void> {
    if (labels instanceof tf.Tensor) {
      assertLiveLabels(labels);
      labelRows(this.spec, (await labels.data()) as ArrayLike<number>, labels.shape);
    } else {
      labelRows(this.spec, labels);
    }
  }

  private checkLabelsSync(labels: tf.Tensor): void {
    assertLiveLabels(labels);
    const values = readSync(
      labels,
      'label validation',
      'check the labels once with `await rule.checkLabels(labels)`, or turn mask validation off (setMaskValidation(false)) on this backend.',
    );
    labelRows(this.spec, values, labels.shape);
  }

  private deviceRows(labels: tf.Tensor): tf.Tensor {
    this.table.assertLive();
    return tf.tidy(() => {
      const asInt = labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32');
      // Not tf.clipByValue: the wasm backend clips int32 as if it were float32 bits.
      const slot = tf.maximum(
        tf.minimum(tf.add(asInt, tf.scalar(1, 'int32')), tf.scalar(this.numClasses + 1, 'int32')),
        tf.scalar(0, 'int32'),
      );
      return tf.gather(this.lookup, slot);
    });
  }

  dispose(): void {
    if (!this.table.rows.isDisposed) this.lookup.dispose();
    this.table.dispose();
  }
}

/**
 * A rule that routes by label: examples (or tokens) with a label of route `r` may update only
 * route `r`'s regions of a feature axis of length `size`. Labels in no route follow the
 * `unrouted` policy (an error by default).
 *
 * @param size - The feature size `D` of the routed activation.
 * @param routes - Label groups and their regions, e.g. digits 0–4 → `[0, 16)`.
 * @throws {@link GradientRoutingError} on a label in two routes, a negative or non-integer label,
 *   regions out of bounds or overlapping within a route.
 *
 * @example
 * ```ts
 * const rule = labelRule(32, [
 *   { labels: [0, 1, 2, 3, 4], region: [0, 16] },
 *   { labels: [5, 6, 7, 8, 9], region: [16, 32] },
 * ]);
 * const plan = { latent: rule }; // route the autoencoder's latent by digit group
 * ```
 */
export function labelRule(
  size: number,
  routes: readonly LabelRoute[],
  options: LabelRouteOptions = {},
): LabelRule {
  return new LabelRule(compileLabelRoutes(size, routes, options));
}
