import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { RoutingBatch } from '../routing/points.js';
import type { MaskTable, TableRule } from './table.js';

/** Options of {@link tokenRule}. */
export interface TokenRuleOptions {
  /**
   * The row soft weights pull toward: a token with weight `w` (from `batch.weights`) gets
   * `w · rows[toward] + (1 − w) · rows[label]`. Without it, or without `batch.weights`, each
   * token simply gets its label's row.
   */
  readonly toward?: number;
  /** Used in error messages. Default `'token rule'`. */
  readonly description?: string;
}

/** A rule that owns tensors (its table) and must be disposed. */
export interface DisposableTableRule extends TableRule {
  dispose(): void;
}

/**
 * Per-token soft masks from a mask table: `w · rows[toward] + (1 − w) · rows[label]` per token,
 * for `labels` and `weights` of shape `[B, T]`, giving masks `[B, T, H]`. Weight 0 gives the
 * label's row exactly and weight 1 the `toward` row exactly (a 0 there stays +0), so hard rules
 * are the special case of 0/1 weights. Call inside `tf.tidy`.
 */
export function blendTokenRows(
  table: MaskTable,
  labels: tf.Tensor,
  weights: tf.Tensor,
  toward: number,
): tf.Tensor {
  table.assertLive();
  if (!tf.util.arraysEqual(labels.shape, weights.shape)) {
    throw new GradientRoutingError(
      `per-token weights must have the labels' shape [${labels.shape}], got [${weights.shape}].`,
    );
  }
  if (!(Number.isInteger(toward) && toward >= 0 && toward < table.numRows)) {
    throw new GradientRoutingError(
      `the row soft weights pull toward must be an integer in [0, ${table.numRows}), got ${toward}.`,
      'invalid-argument',
      toward,
    );
  }
  const w = tf.expandDims(weights, -1);
  const target = tf.slice(table.rows, [toward, 0], [1, table.size]);
  const own = table.gather(labels);
  return tf.add(tf.mul(w, target), tf.mul(tf.sub(1, w), own));
}

/**
 * A table rule for per-token routing: `batch.labels` (`int32 [B, T]`) picks a row of `table`
 * per token, giving masks `[B, T, H]` for a `[B, T, H]` activation such as a transformer's
 * MLP hidden layer; with `toward` and `batch.weights` (`[B, T]`), tokens are softened toward
 * that row (`w · rows[toward] + (1 − w) · rows[label]`). The rule owns `table`: dispose the rule, not the table.
 *
 * @example
 * ```ts
 * // ERA: row 0 all ones (retain), row 1 −0.75 on the original units and 1 on the expansion.
 * const table = new MaskTable(expandRouteRows(288, { start: 256, end: 288 }), { range: [-1, 1] });
 * const rule = tokenRule(table, { toward: 0 });
 * const context = forwardContext(model, {
 *   plan: { 'blocks.0.mlp.hidden': rule },
 *   batch: { labels: tokenLabels, weights: frequencyWeights },
 * });
 * ```
 */
export function tokenRule(table: MaskTable, options: TokenRuleOptions = {}): DisposableTableRule {
  const description = options.description ?? 'token rule';
  const labelsOf = (batch: RoutingBatch): tf.Tensor => {
    const labels = batch.labels;
    if (labels === undefined || labels.rank !== 2 || labels.dtype !== 'int32') {
      throw new GradientRoutingError(
        `the rule '${description}' reads per-token labels, an int32 [B, T] tensor in batch.labels; got ${labels === undefined ? 'none' : `${labels.dtype} [${labels.shape}]`}.`,
      );
    }
    return labels;
  };
  return {
    description,
    table,
    range: table.range,
    rowsOf: (batch) => labelsOf(batch),
    masks: (batch) => {
      const labels = labelsOf(batch);
      if (options.toward === undefined || batch.weights === undefined) return table.gather(labels);
      return blendTokenRows(table, labels, batch.weights, options.toward);
    },
    dispose: () => table.dispose(),
  };
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
  checkFrequencyCounts(forgetCount, retainCount, forgetPseudo, retainPseudo);
  return frequencyRatioWeight(
    (forgetCount + forgetPseudo) / (retainCount + retainPseudo),
    options.offset ?? 4,
  );
}

function checkFrequencyCounts(
  forgetCount: number,
  retainCount: number,
  forgetPseudo: number,
  retainPseudo: number,
): void {
  if (!(forgetCount >= 0 && retainCount >= 0 && forgetPseudo > 0 && retainPseudo > 0)) {
    throw new GradientRoutingError(
      `token-frequency counts must be >= 0 and pseudo-counts > 0, got forget ${forgetCount}, retain ${retainCount}, pseudo-counts ${forgetPseudo}/${retainPseudo}.`,
    );
  }
}

/** `1 − sigmoid(r − 1/r − offset)`: the rule's weight for a forget/retain ratio `r`. */
function frequencyRatioWeight(r: number, offset: number): number {
  return 1 - 1 / (1 + Math.exp(-(r - 1 / r - offset)));
}

/**
 * The frequency rule's weight for every token id, from token counts in forget and retain
 * documents, as the paper's code computes it: each side's counts plus its pseudo-count per
 * vocabulary entry, normalised to frequencies, and `r` = forget frequency / retain frequency.
 * The ratio compares frequencies, not the sizes of the two sets.
 *
 * @param forgetDocuments - Token ids of the forget documents (the paper: all of them, labelled
 *   or not).
 * @param retainDocuments - Token ids of the retain documents.
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
          throw new GradientRoutingError(
            `token id ${id} is outside [0, ${vocabSize}); pass the tokenizer's vocabulary size.`,
          );
        }
        counts[id]! += 1;
        total += 1;
      }
    }
    return { counts, total };
  };
  const forgetPseudo = options.forgetPseudoCount ?? 1;
  const retainPseudo = options.retainPseudoCount ?? 20;
  checkFrequencyCounts(0, 0, forgetPseudo, retainPseudo);
  const forget = count(forgetDocuments);
  const retain = count(retainDocuments);
  const forgetTotal = forget.total + forgetPseudo * vocabSize;
  const retainTotal = retain.total + retainPseudo * vocabSize;
  const weights = new Float32Array(vocabSize);
  for (let id = 0; id < vocabSize; id++) {
    const forgetFrequency = (forget.counts[id]! + forgetPseudo) / forgetTotal;
    const retainFrequency = (retain.counts[id]! + retainPseudo) / retainTotal;
    weights[id] = frequencyRatioWeight(forgetFrequency / retainFrequency, options.offset ?? 4);
  }
  return weights;
}

/**
 * The two mask rows of ERA's routing for an MLP hidden layer of `width` units whose units
 * `[start, end)` are the expansion: row 0 (retain and unlabelled tokens) all ones; row 1
 * (labelled forget tokens) 1 on the expansion and `originalWeight` (the paper: −0.75) on the
 * original units. Build a table with `new MaskTable(rows, { range: [-1, 1] })` when
 * `originalWeight` is negative.
 */
export function expandRouteRows(
  width: number,
  expansion: { readonly start: number; readonly end: number },
  originalWeight = -0.75,
): [Float32Array, Float32Array] {
  if (!(expansion.start >= 0 && expansion.start < expansion.end && expansion.end <= width)) {
    throw new GradientRoutingError(
      `the expansion [${expansion.start}, ${expansion.end}) does not fit a hidden layer of ${width} units.`,
    );
  }
  const retain = new Float32Array(width).fill(1);
  const forget = new Float32Array(width).fill(originalWeight);
  forget.fill(1, expansion.start, expansion.end);
  return [retain, forget];
}
