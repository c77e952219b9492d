/**
 * A small deterministic word-level tokenizer for the text experiments: lower-cased words and
 * single punctuation marks, a vocabulary of the most frequent ones in the training split, and
 * `<unk>` for the rest. Word-level because a 10-minute CPU budget trains a tiny model for a few
 * hundred steps: words carry the topic (what unlearning removes) in one token each, and the
 * paper's token-frequency rule is meaningful on words but not on characters.
 */

import { GradientRoutingError } from '../errors.js';

/** Id of the padding token; padded positions are not counted in losses. */
export const PAD_ID = 0;
/** Id of words outside the vocabulary. */
export const UNK_ID = 1;
/** Id that starts every document (the first prediction is made from it). */
export const BOS_ID = 2;
/** Id that ends every document. */
export const EOS_ID = 3;
const SPECIALS = ['<pad>', '<unk>', '<bos>', '<eos>'] as const;

/** Words (letters, digits, inner apostrophes/hyphens) and single punctuation marks. */
const TOKEN_PATTERN = /[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu;

/** Splits text into lower-cased word and punctuation strings. */
export function splitWords(text: string): string[] {
  return text.toLowerCase().match(TOKEN_PATTERN) ?? [];
}

/** A fixed word vocabulary: id ↔ word. Build one with {@link buildWordTokenizer}. */
export class WordTokenizer {
  /** Words by id; ids 0-3 are `<pad>`, `<unk>`, `<bos>`, `<eos>`. */
  readonly words: readonly string[];
  private readonly ids: ReadonlyMap<string, number>;

  constructor(words: readonly string[]) {
    for (let i = 0; i < SPECIALS.length; i++) {
      if (words[i] !== SPECIALS[i]) {
        throw new GradientRoutingError(
          `a WordTokenizer vocabulary must start with ${SPECIALS.join(', ')}; ` +
            'build it with buildWordTokenizer().',
        );
      }
    }
    this.words = Object.freeze([...words]);
    this.ids = new Map(words.map((w, i) => [w, i]));
    if (this.ids.size !== words.length) {
      throw new GradientRoutingError('a WordTokenizer vocabulary has a repeated word.');
    }
  }

  /** Number of ids, specials included. */
  get size(): number {
    return this.words.length;
  }

  /** The ids of `text`'s words (no `<bos>`/`<eos>`), unknown words as `<unk>`. */
  encode(text: string): Int32Array {
    return Int32Array.from(splitWords(text), (w) => this.ids.get(w) ?? UNK_ID);
  }

  /**
   * A document as the model sees it: `<bos> words… <eos>`, cut to at most `maxTokens` ids
   * (a model with context T reads T + 1 ids: inputs are ids 0..T-1, targets 1..T).
   */
  encodeDocument(text: string, maxTokens: number): Int32Array {
    const words = this.encode(text);
    const full = new Int32Array(words.length + 2);
    full[0] = BOS_ID;
    full.set(words, 1);
    full[full.length - 1] = EOS_ID;
    return full.subarray(0, Math.min(full.length, maxTokens));
  }

  /** The words of `ids`, joined with spaces (for inspection). */
  decode(ids: ArrayLike<number>): string {
    return Array.from(ids, (id) => this.words[id] ?? '<?>').join(' ');
  }
}

/**
 * Builds a vocabulary of the `size - 4` most frequent words of `texts` (ties broken by the
 * word, so the result depends only on the texts) plus the four special tokens.
 *
 * @param texts - The training split only, so validation words are not peeked at.
 * @param size - Total vocabulary size, at least 5.
 */
export function buildWordTokenizer(texts: Iterable<string>, size: number): WordTokenizer {
  if (!(Number.isInteger(size) && size > SPECIALS.length)) {
    throw new GradientRoutingError(
      `a vocabulary size must be an integer > ${SPECIALS.length}, got ${size}.`,
    );
  }
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const w of splitWords(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  for (const special of SPECIALS) counts.delete(special);
  const ranked = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, size - SPECIALS.length)
    .map(([w]) => w);
  return new WordTokenizer([...SPECIALS, ...ranked]);
}
