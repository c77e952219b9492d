import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { transformerRoutingPoints } from '../src/core/models/transformer.js';
import {
  createTransformer,
  forwardContext,
  GradientRoutingError,
  type TransformerConfig,
  tokenCrossEntropy,
} from '../src/index.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const config: TransformerConfig = {
  vocabSize: 23,
  contextLength: 7,
  modelDim: 16,
  numLayers: 2,
  numHeads: 4,
  mlpDim: 24,
  seed: 5,
};

const tokens = (rows: number[][]) =>
  tf.tensor2d(rows.flat(), [rows.length, rows[0]!.length], 'int32');

describe.each(TEST_BACKENDS)('TinyTransformer on %s', (backend) => {
  beforeAll(() => useBackend(backend));
  afterEach(() => expect(tf.memory().numTensors).toBeGreaterThanOrEqual(0));

  it('no position sees the future: changing a later token leaves earlier logits bit-identical', async () => {
    const model = createTransformer(config);
    await expectNoLeak(() => {
      const a = tokens([[1, 2, 3, 4, 5, 6, 7]]);
      const b = tokens([[1, 2, 3, 4, 22, 6, 7]]);
      const la = tf.tidy(() => model.forward(a).arraySync()[0]!);
      const lb = tf.tidy(() => model.forward(b).arraySync()[0]!);
      tf.dispose([a, b]);
      for (let t = 0; t < 4; t++) expect(lb[t]).toEqual(la[t]);
      // The changed position and later ones do see the change (the test can fail).
      for (let t = 4; t < 7; t++) expect(lb[t]).not.toEqual(la[t]);
    });
    model.dispose();
  });

  it('equal seeds give equal weights and logits; another seed differs', () => {
    const m1 = createTransformer(config);
    const m2 = createTransformer(config);
    const m3 = createTransformer({ ...config, seed: 6 });
    const x = tokens([[3, 1, 4, 1, 5]]);
    const [l1, l2, l3] = [m1, m2, m3].map((m) => tf.tidy(() => m.forward(x).dataSync()));
    expect(Array.from(l2!)).toEqual(Array.from(l1!));
    expect(Array.from(l3!)).not.toEqual(Array.from(l1!));
    tf.dispose(x);
    for (const m of [m1, m2, m3]) m.dispose();
  });

  it('calls the context at every routing point, with the documented shapes', () => {
    const model = createTransformer(config);
    const seen: Array<[string, number[]]> = [];
    const x = tokens([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    tf.tidy(() => {
      const context = forwardContext(model, { capture: ['*', 'blocks.*.mlp.hidden'] });
      const original = context.point.bind(context);
      context.point = ((name: string, a: tf.Tensor) => {
        seen.push([name, a.shape]);
        return original(name, a);
      }) as typeof context.point;
      model.forward(x, context);
    });
    expect(seen.map(([n]) => n)).toEqual(transformerRoutingPoints(2));
    expect(new Map(seen).get('blocks.1.mlp.hidden')).toEqual([2, 3, 24]);
    expect(new Map(seen).get('blocks.0.attn.out')).toEqual([2, 3, 16]);
    x.dispose();
    model.dispose();
  });

  it('an edit at a point changes the output (ablating an MLP hidden layer)', () => {
    const model = createTransformer(config);
    const x = tokens([[1, 2, 3]]);
    const plain = tf.tidy(() => model.forward(x).dataSync());
    const edited = tf.tidy(() =>
      model
        .forward(
          x,
          forwardContext(model, { edit: { 'blocks.*.mlp.hidden': (a) => tf.zerosLike(a) } }),
        )
        .dataSync(),
    );
    expect(Array.from(edited)).not.toEqual(Array.from(plain));
    x.dispose();
    model.dispose();
  });

  it('trains: a few steps lower the loss on a repeated sequence, without leaking tensors', async () => {
    const model = createTransformer(config);
    const x = tokens([[1, 2, 3, 4, 5, 6, 7]]);
    const y = tokens([[2, 3, 4, 5, 6, 7, 8]]);
    const w = tf.ones([1, 7]) as tf.Tensor2D;
    const optimizer = tf.train.adam(1e-2);
    const loss = () => tokenCrossEntropy(model.forward(x), y, w);
    const first = tf.tidy(() => loss().dataSync()[0]!);
    // The first step creates Adam's moment variables (state, not a leak).
    optimizer.minimize(loss, false, model.trainableVariables());
    await expectNoLeak(() => {
      for (let i = 0; i < 19; i++) optimizer.minimize(loss, false, model.trainableVariables());
    });
    const last = tf.tidy(() => loss().dataSync()[0]!);
    expect(last).toBeLessThan(first - 0.5);
    optimizer.dispose();
    tf.dispose([x, y, w]);
    model.dispose();
  });
});

describe('TinyTransformer errors', () => {
  beforeAll(() => useBackend('cpu'));

  it('rejects sequences longer than its context and float tokens', () => {
    const model = createTransformer(config);
    const long = tf.zeros([1, 8], 'int32') as tf.Tensor2D;
    const floats = tf.zeros([1, 3]) as tf.Tensor2D;
    expect(() => model.forward(long)).toThrow(/exceeds the model's contextLength 7/);
    expect(() => model.forward(floats)).toThrow(GradientRoutingError);
    tf.dispose([long, floats]);
    model.dispose();
    expect(() => model.forward(floats)).toThrow(/disposed/);
  });

  it('rejects a head count that does not divide the width', () => {
    expect(() => createTransformer({ ...config, numHeads: 5 })).toThrow(/must divide modelDim/);
  });
});
