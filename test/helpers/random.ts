import type { ImageDataset } from '../../src/index.js';

/**
 * The tests' seeded uniform generator on [0, 1): the classic ANSI C linear congruential
 * recurrence, in doubles. Tests draw their data from it, so every run sees the same numbers.
 */
export function lcgUniform(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

/**
 * `count` 6x6 images of three classes, class `c` lighting the column block `c` (columns 2c and
 * 2c+1). `example` is called once per image with the generator and returns its pixel values, so
 * suites choose the noise while sharing the layout.
 */
export function columnBlockImages(
  count: number,
  seed: number,
  example: (random: () => number) => (lit: boolean, pixel: number) => number = (random) => (lit) =>
    (lit ? 0.8 : -0.8) + (random() - 0.5) * 0.2,
): ImageDataset {
  const images = new Float32Array(count * 36);
  const labels = new Int32Array(count);
  const random = lcgUniform(seed);
  for (let i = 0; i < count; i++) {
    const label = i % 3;
    labels[i] = label;
    const value = example(random);
    for (let p = 0; p < 36; p++) {
      images[i * 36 + p] = value(Math.floor((p % 6) / 2) === label, p);
    }
  }
  return { images, labels, count, rows: 6, cols: 6 };
}
