/**
 * ERA's data: the seeded split into training, evaluation, coherence and attack sets, the word
 * vocabulary, batches with their routing labels and frequency weights, and the loss over documents.
 */
import * as tf from '@tensorflow/tfjs-core';
import { buildWordTokenizer, PAD_ID, type WordTokenizer } from '../../core/data/tokenizer.js';
import { type TinyTransformer, tokenLosses } from '../../core/models/transformer.js';
import { seededPermutation } from '../../core/util/random.js';
import { type EraConfig, type EraDataStats, type EraDocument, fail } from './config.js';

export interface Batch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  weights: tf.Tensor2D;
  /** 1 where the token's document is labelled forget (and routed), else 0. */
  tokenLabels: tf.Tensor2D;
  /** Frequency-rule weight of each token's target. */
  softWeights: tf.Tensor2D;
}

export function makeBatch(
  docs: readonly Int32Array[],
  length: number,
  labelled: readonly boolean[] | null,
  frequency: Float32Array | null,
): Batch {
  const B = docs.length;
  const inputs = new Int32Array(B * length);
  const targets = new Int32Array(B * length);
  const weights = new Float32Array(B * length);
  const labels = new Int32Array(B * length);
  const soft = new Float32Array(B * length).fill(1);
  docs.forEach((doc, b) => {
    for (let t = 0; t < length; t++) {
      const input = doc[t] ?? PAD_ID;
      const target = doc[t + 1] ?? PAD_ID;
      const at = b * length + t;
      inputs[at] = input;
      targets[at] = target;
      weights[at] = t + 1 < doc.length ? 1 : 0;
      if (labelled?.[b] === true) {
        labels[at] = 1;
        soft[at] = frequency === null ? 0 : frequency[target]!;
      }
    }
  });
  const shape: [number, number] = [B, length];
  return {
    inputs: tf.tensor2d(inputs, shape, 'int32'),
    targets: tf.tensor2d(targets, shape, 'int32'),
    weights: tf.tensor2d(weights, shape),
    tokenLabels: tf.tensor2d(labels, shape, 'int32'),
    softWeights: tf.tensor2d(soft, shape),
  };
}

export function disposeBatch(batch: Batch): void {
  for (const t of Object.values(batch)) (t as tf.Tensor).dispose();
}

/** Mean next-token loss in nats per token over `docs`. */
export async function documentLoss(
  model: TinyTransformer,
  docs: readonly Int32Array[],
  batchSize = 64,
): Promise<number> {
  let total = 0;
  let count = 0;
  const length = model.config.contextLength;
  for (let start = 0; start < docs.length; start += batchSize) {
    const batch = makeBatch(docs.slice(start, start + batchSize), length, null, null);
    const [sum, n] = tf.tidy(() => {
      const losses = tokenLosses(model.forward(batch.inputs), batch.targets);
      return [tf.sum(tf.mul(losses, batch.weights)), tf.sum(batch.weights)];
    });
    // Read asynchronously: WebGPU in Node cannot read synchronously.
    total += (await sum!.data())[0]!;
    count += (await n!.data())[0]!;
    sum!.dispose();
    n!.dispose();
    disposeBatch(batch);
  }
  return count === 0 ? Number.NaN : total / count;
}

/** Everything the methods share after the split. */
export interface Prepared {
  readonly tokenizer: WordTokenizer;
  readonly train: Int32Array[];
  /** Forget training documents in labelling order (a prefix of length f·n is labelled). */
  readonly forgetOrder: number[];
  readonly evalRetain: Int32Array[];
  readonly evalForget: Int32Array[];
  readonly attackForget: Int32Array[];
  readonly coherenceTrain: Int32Array[];
  readonly coherenceEval: Int32Array[];
  readonly stats: EraDataStats;
}

/**
 * Splits the documents (seeded), builds the vocabulary on the training split and encodes.
 *
 * @throws If no document has a forget label, or too few to hold out evaluation and attack sets.
 */
export function prepareEraData(documents: readonly EraDocument[], config: EraConfig): Prepared {
  const forgetLabels = new Set(config.forget);
  const isForget = documents.map((d) => forgetLabels.has(d.label));
  const forgetCount = isForget.filter(Boolean).length;
  if (forgetCount === 0) {
    const counts = new Map<string, number>();
    for (const d of documents) counts.set(d.label, (counts.get(d.label) ?? 0) + 1);
    const common = [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([l, n]) => `${l} (${n})`)
      .join(', ');
    fail(
      `no document has a forget label (${config.forget.join(', ')}); choose labels that occur in the corpus, e.g. ${common}.`,
    );
  }
  const heldForget = config.evalDocuments + config.attack.documents;
  const heldRetain = config.evalDocuments + 2 * config.coherence.documents;
  if (forgetCount < heldForget + config.batchSize) {
    fail(
      `the forget concept (${config.forget.join(', ')}) has ${forgetCount} documents; ERA holds out ${heldForget} (evaluation + attack) and trains on the rest, so it needs at least ${heldForget + config.batchSize}. Add labels to the forget concept or lower evalDocuments / attack.documents.`,
    );
  }
  if (documents.length - forgetCount < heldRetain + config.batchSize) {
    fail(
      `only ${documents.length - forgetCount} retain documents; ERA needs at least ${heldRetain + config.batchSize}. Use a larger corpus or lower evalDocuments / coherence.documents.`,
    );
  }
  const order = seededPermutation(documents.length, config.seed);
  const forgetIdx: number[] = [];
  const retainIdx: number[] = [];
  for (const i of order) (isForget[i] ? forgetIdx : retainIdx).push(i);
  const evalForgetIdx = forgetIdx.slice(0, config.evalDocuments);
  const attackIdx = forgetIdx.slice(config.evalDocuments, heldForget);
  const trainForgetIdx = forgetIdx.slice(heldForget);
  const evalRetainIdx = retainIdx.slice(0, config.evalDocuments);
  const coherenceTrainIdx = retainIdx.slice(
    config.evalDocuments,
    config.evalDocuments + config.coherence.documents,
  );
  const coherenceEvalIdx = retainIdx.slice(
    config.evalDocuments + config.coherence.documents,
    heldRetain,
  );
  const trainRetainIdx = retainIdx.slice(heldRetain);
  // Training documents in corpus-shuffled order, forget and retain interleaved as they fall.
  const trainSet = new Set([...trainForgetIdx, ...trainRetainIdx]);
  const trainIdx = Array.from(order).filter((i) => trainSet.has(i));
  const tokenizer = buildWordTokenizer(
    trainIdx.map((i) => documents[i]!.text),
    config.model.vocabSize,
  );
  const maxTokens = config.model.contextLength + 1;
  const encode = (idx: readonly number[]) =>
    idx.map((i) => tokenizer.encodeDocument(documents[i]!.text, maxTokens));
  const train = encode(trainIdx);
  const position = new Map(trainIdx.map((doc, at) => [doc, at]));
  const forgetOrder = trainForgetIdx.map((i) => position.get(i)!);
  let tokens = 0;
  let unknown = 0;
  for (const doc of train) {
    tokens += doc.length - 1;
    for (let t = 1; t < doc.length; t++) if (doc[t] === 1) unknown += 1;
  }
  return {
    tokenizer,
    train,
    forgetOrder,
    evalRetain: encode(evalRetainIdx),
    evalForget: encode(evalForgetIdx),
    attackForget: encode(attackIdx),
    coherenceTrain: encode(coherenceTrainIdx),
    coherenceEval: encode(coherenceEvalIdx),
    stats: {
      documents: documents.length,
      forgetDocuments: forgetCount,
      trainRetain: trainRetainIdx.length,
      trainForget: trainForgetIdx.length,
      vocabSize: tokenizer.size,
      unknownTokenShare: tokens === 0 ? 0 : unknown / tokens,
    },
  };
}
