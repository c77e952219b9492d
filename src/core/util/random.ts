import { GradientRoutingError } from '../errors.js';
/**
 * A small seeded generator: runs must be reproducible from one integer seed on every backend,
 * which `Math.random` and tfjs's per-op seeds do not give.
 */

/**
 * A uniform generator on `[0, 1)` (seededRandom) fully determined by `seed`. Fast and good enough
 * for shuffling, sampling and initialisation; not for cryptography.
 *
 * @param seed - An integer in `[-2^31, 2^32)`; equal seeds give equal sequences.
 * @throws If `seed` is not such an integer (it would otherwise be silently truncated).
 *
 * @example
 * ```ts
 * const random = seededRandom(42);
 * random(); // the same number on every run and machine
 * ```
 */
export function seededRandom(seed: number): () => number {
  if (!Number.isInteger(seed) || seed < -(2 ** 31) || seed >= 2 ** 32) {
    throw new GradientRoutingError(
      `gradient-routing: seed must be an integer in [-2^31, 2^32), got ${seed}. ` +
        'Pass a whole number such as 0 or 12345.',
    );
  }
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Shuffles `0..n-1` with Fisher-Yates. Pass a generator to draw several permutations from one
 * stream (one per epoch), or a seed for a one-off.
 *
 * @param n - Length, a non-negative integer.
 * @param source - A seed, or a generator from {@link seededRandom}.
 * @returns A new `Int32Array`, ready for `tf.tensor1d(..., 'int32')`.
 */
export function seededPermutation(n: number, source: number | (() => number)): Int32Array {
  if (!Number.isInteger(n) || n < 0) {
    throw new GradientRoutingError(
      `gradient-routing: a permutation length must be an integer >= 0, got ${n}.`,
    );
  }
  const random = typeof source === 'number' ? seededRandom(source) : source;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const swap = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = swap;
  }
  return perm;
}
