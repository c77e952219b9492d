import * as tf from '@tensorflow/tfjs-core';

/** Options of {@link TokenMaskTable}. */
export interface TokenMaskTableOptions {
  /**
   * Allow mask values outside [0, 1]. Off by default, because a negative value reverses the
   * gradient and a value above 1 amplifies it; ERA asks for it explicitly (−0.75 on the
   * original units for forget tokens, after the paper).
   */
  readonly allowOutsideUnitInterval?: boolean;
}

/**
 * Per-token mask rules in table form: rows `[R, H]` resident on the backend, and per-token
 * labels `[B, T]` (the row each token takes) gathered into masks `[B, T, H]` for a
 * `[B, T, H]` activation such as a transformer's MLP hidden layer. Masks of soft rules blend two
 * rows per token with a weight (see {@link TokenMaskTable.blendedMasksFor}).
 */
export class TokenMaskTable {
  /** The rows `[R, H]`. Owned by the table. */
  readonly rows: tf.Tensor2D;
  /** Number of rows. */
  readonly numRows: number;
  /** Mask width `H`. */
  readonly width: number;
  private disposed = false;

  /**
   * @param rows - One mask row per label, all of the same length.
   * @throws If the rows are empty, ragged, not finite, or outside [0, 1] without the option.
   */
  constructor(
    rows: readonly (readonly number[] | Float32Array)[],
    options: TokenMaskTableOptions = {},
  ) {
    const width = rows[0]?.length ?? 0;
    if (rows.length === 0 || width === 0) {
      throw new Error(
        'gradient-routing: a TokenMaskTable needs at least one non-empty row, e.g. [[1, 1, 1]].',
      );
    }
    const flat = new Float32Array(rows.length * width);
    rows.forEach((row, r) => {
      if (row.length !== width) {
        throw new Error(
          `gradient-routing: TokenMaskTable row ${r} has ${row.length} values, row 0 has ${width}; give every row the activation's width.`,
        );
      }
      for (let i = 0; i < width; i++) {
        const value = row[i]!;
        if (!Number.isFinite(value)) {
          throw new Error(
            `gradient-routing: TokenMaskTable row ${r} holds ${value} at ${i}; mask values must be finite.`,
          );
        }
        if ((value < 0 || value > 1) && options.allowOutsideUnitInterval !== true) {
          throw new Error(
            `gradient-routing: TokenMaskTable row ${r} holds ${value} at ${i}, outside [0, 1]. ` +
              'Pass { allowOutsideUnitInterval: true } if you mean to reverse or amplify gradients (ERA uses -0.75).',
          );
        }
        flat[r * width + i] = value;
      }
    });
    this.numRows = rows.length;
    this.width = width;
    this.rows = tf.keep(tf.tensor2d(flat, [rows.length, width]));
  }

  /** The masks `[B, T, H]` of per-token row labels `int32 [B, T]`: one gather. */
  masksFor(labels: tf.Tensor2D): tf.Tensor3D {
    this.assertUsable(labels);
    return tf.gather(this.rows, labels) as unknown as tf.Tensor3D;
  }

  /**
   * Soft masks: per token, `w · rows[toward] + (1 − w) · rows[label]` with `w` from `weights
   * [B, T]` in [0, 1]. Weight 0 gives the label's row exactly and weight 1 the `toward` row
   * exactly (a 0 there stays +0), so hard rules are the special case of 0/1 weights.
   */
  blendedMasksFor(labels: tf.Tensor2D, weights: tf.Tensor2D, toward: number): tf.Tensor3D {
    this.assertUsable(labels);
    if (!tf.util.arraysEqual(labels.shape, weights.shape)) {
      throw new Error(
        `gradient-routing: blendedMasksFor needs weights of the labels' shape [${labels.shape}], got [${weights.shape}].`,
      );
    }
    if (!(Number.isInteger(toward) && toward >= 0 && toward < this.numRows)) {
      throw new Error(
        `gradient-routing: blendedMasksFor's toward row must be an integer in [0, ${this.numRows}), got ${toward}.`,
      );
    }
    return tf.tidy(() => {
      const w = tf.expandDims(weights, -1);
      const target = tf.slice(this.rows, [toward, 0], [1, this.width]);
      const own = tf.gather(this.rows, labels);
      return tf.add(tf.mul(w, target), tf.mul(tf.sub(1, w), own)) as tf.Tensor3D;
    });
  }

  private assertUsable(labels: tf.Tensor): void {
    if (this.disposed) {
      throw new Error('gradient-routing: this TokenMaskTable was disposed; build a new one.');
    }
    if (labels.rank !== 2 || labels.dtype !== 'int32') {
      throw new Error(
        `gradient-routing: per-token labels must be an int32 [B, T] tensor, got ${labels.dtype} [${labels.shape}].`,
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

/** Settings of the paper's token-frequency rule; the defaults are the paper's. */
export interface TokenFrequencyRuleOptions {
  /** Added to the forget count. Default 1. */
  readonly forgetPseudoCount?: number;
  /** Added to the retain count. Default 20. */
  readonly retainPseudoCount?: number;
  /** Subtracted inside the sigmoid. Default 4. */
  readonly offset?: number;
}

/**
 * The paper's token-frequency soft rule (ERA, Cloud et al. 2024): the weight that pulls a
 * forget token's mask toward all-ones, `1 − sigmoid(r − 1/r − offset)` with
 * `r = (forgetCount + 1) / (retainCount + 20)`. Tokens far more common in forget data ("tree")
 * get ~0 (fully routed); tokens common everywhere ("room") get ~1 (not routed).
 */
export function tokenFrequencyWeight(
  forgetCount: number,
  retainCount: number,
  options: TokenFrequencyRuleOptions = {},
): number {
  const forgetPseudo = options.forgetPseudoCount ?? 1;
  const retainPseudo = options.retainPseudoCount ?? 20;
  const offset = options.offset ?? 4;
  if (!(forgetCount >= 0 && retainCount >= 0 && forgetPseudo > 0 && retainPseudo > 0)) {
    throw new Error(
      `gradient-routing: token-frequency counts must be >= 0 and pseudo-counts > 0, got forget ${forgetCount}, retain ${retainCount}, pseudo-counts ${forgetPseudo}/${retainPseudo}.`,
    );
  }
  const r = (forgetCount + forgetPseudo) / (retainCount + retainPseudo);
  const z = r - 1 / r - offset;
  return 1 - 1 / (1 + Math.exp(-z));
}

/**
 * The frequency rule's weight for every token id, from token counts in forget and retain
 * documents. Counts are scaled to the forget set's total size, so the ratio compares
 * frequencies, not the sizes of the two sets (the paper counts over equal numbers of stories).
 *
 * @param forgetDocuments - Token ids of the documents labelled forget.
 * @param retainDocuments - Token ids of the others.
 * @param vocabSize - Ids are in `[0, vocabSize)`.
 * @returns `Float32Array [vocabSize]`; look a token's weight up by id.
 */
export function tokenFrequencyWeights(
  forgetDocuments: Iterable<ArrayLike<number>>,
  retainDocuments: Iterable<ArrayLike<number>>,
  vocabSize: number,
  options: TokenFrequencyRuleOptions = {},
): Float32Array {
  const count = (documents: Iterable<ArrayLike<number>>) => {
    const counts = new Float64Array(vocabSize);
    let total = 0;
    for (const doc of documents) {
      for (let i = 0; i < doc.length; i++) {
        const id = doc[i]!;
        if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
          throw new Error(
            `gradient-routing: token id ${id} is outside [0, ${vocabSize}); pass the tokenizer's vocabulary size.`,
          );
        }
        counts[id]! += 1;
        total += 1;
      }
    }
    return { counts, total };
  };
  const forget = count(forgetDocuments);
  const retain = count(retainDocuments);
  const scale = retain.total === 0 ? 1 : forget.total / retain.total;
  const weights = new Float32Array(vocabSize);
  for (let id = 0; id < vocabSize; id++) {
    weights[id] = tokenFrequencyWeight(forget.counts[id]!, retain.counts[id]! * scale, options);
  }
  return weights;
}

/**
 * The two mask rows of ERA's routing for an MLP hidden layer of `width` units whose units
 * `[start, end)` are the expansion: row 0 (retain and unlabelled tokens) all ones; row 1
 * (labelled forget tokens) 1 on the expansion and `originalWeight` (the paper: −0.75) on the
 * original units. Build a table with `new TokenMaskTable(rows, { allowOutsideUnitInterval: true })`
 * when `originalWeight` is negative.
 */
export function expandRouteRows(
  width: number,
  expansion: { readonly start: number; readonly end: number },
  originalWeight = -0.75,
): [Float32Array, Float32Array] {
  if (!(expansion.start >= 0 && expansion.start < expansion.end && expansion.end <= width)) {
    throw new Error(
      `gradient-routing: the expansion [${expansion.start}, ${expansion.end}) does not fit a hidden layer of ${width} units.`,
    );
  }
  const retain = new Float32Array(width).fill(1);
  const forget = new Float32Array(width).fill(originalWeight);
  forget.fill(1, expansion.start, expansion.end);
  return [retain, forget];
}
