import { GradientRoutingError } from '../errors.js';
/**
 * The pure half of probing: per-label aggregation and split ratios, on plain numbers. The
 * experiment's concurrent half-decoders and the post-hoc probe both report through these.
 */

/**
 * A partition of the labels `0..K-1` into groups, e.g. `[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]`.
 * Every label belongs to exactly one group; groups may differ in size.
 */
export type LabelPartition = readonly (readonly number[])[];

/** A slice's errors on its own group's labels and on the others', and their ratio. */
export interface SplitRatio {
  /** Mean of the per-label errors over the labels of the slice's own group. */
  own: number;
  /** Mean of the per-label errors over every label outside the slice's own group. */
  other: number;
  /** `other / own`: about 1 when the slice knows nothing group-specific, above 1 when it is split. */
  ratio: number;
}

/**
 * Checks that `partition` splits `0..numLabels-1` into at least two non-empty groups, each label
 * in exactly one.
 * @throws Naming the empty group, the stray or repeated label, or the missing label.
 */
export function validatePartition(partition: LabelPartition, numLabels: number): void {
  if (!Number.isInteger(numLabels) || numLabels < 2) {
    throw new GradientRoutingError(
      `gradient-routing: a label partition needs at least 2 labels, got ${numLabels}. ` +
        'Labels are the integers 0..K-1.',
    );
  }
  if (!Array.isArray(partition) || partition.length < 2) {
    throw new GradientRoutingError(
      'gradient-routing: a label partition needs at least 2 groups, e.g. [[0, 1, 2, 3, 4], ' +
        '[5, 6, 7, 8, 9]].',
    );
  }
  const groupOf = new Map<number, number>();
  partition.forEach((group, g) => {
    if (group.length === 0) {
      throw new GradientRoutingError(
        `gradient-routing: group ${g} of the label partition is empty. Give every group at least ` +
          'one label, or leave the group out.',
      );
    }
    for (const label of group) {
      if (!Number.isInteger(label) || label < 0 || label >= numLabels) {
        throw new GradientRoutingError(
          `gradient-routing: label ${label} in group ${g} of the partition is not one of the ` +
            `labels 0..${numLabels - 1}. Use integer labels below ${numLabels}, or raise numLabels.`,
        );
      }
      const previous = groupOf.get(label);
      if (previous !== undefined) {
        throw new GradientRoutingError(
          `gradient-routing: label ${label} is in groups ${previous} and ${g} of the partition. ` +
            'Put each label in exactly one group.',
        );
      }
      groupOf.set(label, g);
    }
  });
  for (let label = 0; label < numLabels; label++) {
    if (!groupOf.has(label)) {
      throw new GradientRoutingError(
        `gradient-routing: label ${label} is in no group of the partition. Add it to a group ` +
          '(every label 0..K-1 must be in one), or relabel the data.',
      );
    }
  }
}

/**
 * Averages per-example values per label: entry `k` is the mean of `values[i]` over the
 * examples with `labels[i] === k`, or NaN when label `k` has no examples.
 *
 * @param values - One value per example, e.g. per-example reconstruction errors.
 * @param labels - One integer label in `[0, numLabels)` per example.
 * @param numLabels - K, the number of labels.
 * @throws If the lengths differ or a label is not an integer in range.
 */
export function perLabelMeans(
  values: ArrayLike<number>,
  labels: ArrayLike<number>,
  numLabels: number,
): number[] {
  if (values.length !== labels.length) {
    throw new GradientRoutingError(
      `gradient-routing: perLabelMeans got ${values.length} values and ${labels.length} labels. ` +
        'Give one label per value.',
    );
  }
  if (!Number.isInteger(numLabels) || numLabels < 1) {
    throw new GradientRoutingError(
      `gradient-routing: numLabels must be a positive integer, got ${numLabels}.`,
    );
  }
  const sums = new Float64Array(numLabels);
  const counts = new Float64Array(numLabels);
  for (let i = 0; i < values.length; i++) {
    const label = labels[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= numLabels) {
      throw new GradientRoutingError(
        `gradient-routing: example ${i} has label ${label}, outside 0..${numLabels - 1}. ` +
          'Use integer labels 0..K-1 and pass K as numLabels.',
      );
    }
    sums[label]! += values[i]!;
    counts[label]! += 1;
  }
  return Array.from(sums, (sum, k) => (counts[k]! > 0 ? sum / counts[k]! : Number.NaN));
}

function meanOver(perLabel: readonly number[], labels: readonly number[]): number {
  let sum = 0;
  for (const label of labels) {
    const value = perLabel[label]!;
    if (!Number.isFinite(value)) {
      throw new GradientRoutingError(
        `gradient-routing: the per-label error of label ${label} is ${value}; a split ratio needs ` +
          'a finite error for every label. Make sure the evaluation data holds examples of every label.',
      );
    }
    sum += value;
  }
  return sum / labels.length;
}

/**
 * The split ratio of one slice (or decoder) from its per-label errors, as the reference's
 * `summarize.py` computes it: the mean of the per-label errors over the labels outside its own
 * group, divided by their mean over its own group's labels. Each label weighs the same however
 * many examples it has.
 *
 * @param perLabel - Error per label, index = label (`perLabel.length` is K).
 * @param partition - The label groups; must cover `0..K-1` exactly once.
 * @param ownGroup - Index into `partition` of the group this slice was meant to encode.
 * @throws If the partition is invalid, `ownGroup` is out of range, or an error is not finite.
 *
 * @example
 * ```ts
 * splitRatio([1, 1, 3, 3], [[0, 1], [2, 3]], 0); // { own: 1, other: 3, ratio: 3 }
 * ```
 */
export function splitRatio(
  perLabel: readonly number[],
  partition: LabelPartition,
  ownGroup: number,
): SplitRatio {
  validatePartition(partition, perLabel.length);
  const own = partition[ownGroup];
  if (!Number.isInteger(ownGroup) || own === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: own group ${ownGroup} is not a group of the partition; use an index ` +
        `0..${partition.length - 1}.`,
    );
  }
  const others = partition.filter((_, g) => g !== ownGroup).flat();
  const ownMean = meanOver(perLabel, own);
  const otherMean = meanOver(perLabel, others);
  return { own: ownMean, other: otherMean, ratio: otherMean / ownMean };
}

/**
 * {@link splitRatio} for several slices at once: row `s` of `table` is slice `s`'s per-label
 * errors and `owners[s]` the group it should encode (by default slice `s` owns group `s`).
 *
 * @throws As {@link splitRatio}, or if `owners` does not give one group per row.
 */
export function splitRatios(
  table: readonly (readonly number[])[],
  partition: LabelPartition,
  owners: readonly number[] = table.map((_, s) => s),
): SplitRatio[] {
  if (owners.length !== table.length) {
    throw new GradientRoutingError(
      `gradient-routing: got ${table.length} rows of per-label errors but ${owners.length} owner ` +
        'groups. Give one owner group per row.',
    );
  }
  return table.map((row, s) => splitRatio(row, partition, owners[s]!));
}
