import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import {
  compileLabelRoutes,
  type LabelRoute,
  type LabelRouteOptions,
  labelRows,
  type RouteTableSpec,
  stackRows,
  validateRouteTableSpec,
} from './labels.js';

/** Options of {@link RouteTable.masksFor}. */
export interface MasksForOptions {
  /**
   * Read a label tensor back to the host and check it (integer, in range, routed unless the
   * policy allows it) before gathering. Off by default because the read is a GPU sync; host
   * arrays are always checked.
   */
  validate?: boolean;
}

/**
 * Mask rules in lookup-table form, resident on the backend: a `[numRows, D]` table of mask rows
 * and a label-to-row lookup, so a batch's masks cost one gather on device, with no host sync.
 * Build it once (usually with {@link labelRouteTable}), call {@link RouteTable.masksFor} every
 * step, and {@link RouteTable.dispose} it when training ends.
 */
export class RouteTable {
  /** The mask rows, `[numRows, D]`. Owned by this object; do not dispose it yourself. */
  readonly table: tf.Tensor2D;
  /** The rules this table was built from (host copy, for inspection and host-side masks). */
  readonly spec: RouteTableSpec;
  /** The mask size `D`. */
  readonly size: number;
  /** Labels are integers in `[0, numClasses)`. */
  readonly numClasses: number;
  /**
   * `int32 [numClasses + 2]`: entry `label + 1` is the label's row; both ends hold the unrouted
   * row, so that clamping `label + 1` sends every out-of-range label there without a branch.
   */
  private readonly lookup: tf.Tensor1D;
  private disposed = false;

  /** @throws If `spec` is malformed (see `validateRouteTableSpec`). */
  constructor(spec: RouteTableSpec) {
    this.size = validateRouteTableSpec(spec);
    this.spec = spec;
    this.numClasses = spec.rowOfLabel.length;
    const flat = stackRows(spec.rows, Array.from(spec.rows.keys()), this.size);
    const routedRows = Array.from(spec.rowOfLabel, (row) => (row < 0 ? spec.unroutedRow : row));
    const lookup = Int32Array.from([spec.unroutedRow, ...routedRows, spec.unroutedRow]);
    // Kept, so that a table built inside a caller's tf.tidy outlives it.
    this.table = tf.keep(tf.tensor2d(flat, [spec.rows.length, this.size], 'float32'));
    this.lookup = tf.keep(tf.tensor1d(lookup, 'int32'));
  }

  /** The table row of each host label, validated. Pure: no tensors are created. */
  rowsFor(labels: ArrayLike<number>): Int32Array {
    return labelRows(this.spec, labels);
  }

  /**
   * The masks `[B, D]` of a batch of labels: one gather of table rows.
   *
   * Host labels are validated. A label tensor is not, unless `validate` is set: on device,
   * float labels are truncated to integers, and labels out of range or in no route take the
   * unrouted row (all zeros under the `'error'` policy, so an invalid label updates nothing).
   *
   * @example
   * ```ts
   * const table = labelRouteTable(32, routes);
   * const masks = table.masksFor(labelTensor); // every step; dispose masks after use
   * ```
   */
  masksFor(
    labels: tf.Tensor1D | Int32Array | readonly number[],
    options: MasksForOptions = {},
  ): tf.Tensor2D {
    if (this.disposed) {
      throw new GradientRoutingError(
        'gradient-routing: this RouteTable was disposed; build a new one with labelRouteTable().',
      );
    }
    if (!(labels instanceof tf.Tensor)) return this.gatherRows(this.rowsFor(labels));
    if (labels.rank !== 1) {
      throw new GradientRoutingError(
        `gradient-routing: masksFor needs a 1-D tensor of labels, got shape [${labels.shape}]; ` +
          'flatten it, or convert one-hot labels with tf.argMax(labels, -1).',
      );
    }
    if (options.validate === true) {
      return this.gatherRows(this.rowsFor(labels.dataSync() as ArrayLike<number>));
    }
    return tf.tidy(() => this.masksOfRows(this.deviceRowsFor(labels)));
  }

  /**
   * The table row of each label in a tensor, on device: for routed labels the index of their
   * route, for the others {@link RouteTableSpec.unroutedRow}. Not validated (see `masksFor`).
   * Useful to group examples by route, e.g. for a per-route loss.
   */
  deviceRowsFor(labels: tf.Tensor1D): tf.Tensor1D {
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

  /**
   * The masks `[B, D]` of table rows given on device, e.g. from {@link RouteTable.deviceRowsFor}
   * when the rows also serve another purpose, so the label lookup runs once.
   */
  masksOfRows(rows: tf.Tensor1D): tf.Tensor2D {
    return tf.gather(this.table, rows);
  }

  private gatherRows(rows: Int32Array): tf.Tensor2D {
    return tf.tidy(() => this.masksOfRows(tf.tensor1d(rows, 'int32')));
  }

  /** Frees the table's tensors. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.table.dispose();
    this.lookup.dispose();
  }
}

/**
 * Compiles label routes (see `compileLabelRoutes`) into a {@link RouteTable} on the current
 * backend. Use it in training loops: the masks of each batch are then one gather.
 *
 * @example
 * ```ts
 * const table = labelRouteTable(32, [
 *   { labels: [0, 1, 2, 3, 4], region: [0, 16] },
 *   { labels: [5, 6, 7, 8, 9], region: [16, 32] },
 * ]);
 * const routed = routeGradients(latent, table.masksFor(labels)); // inside the step's tf.tidy
 * ```
 */
export function labelRouteTable(
  size: number,
  routes: readonly LabelRoute[],
  options: LabelRouteOptions = {},
): RouteTable {
  return new RouteTable(compileLabelRoutes(size, routes, options));
}
