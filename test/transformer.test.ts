import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  initialTransformerValues,
  seededNormal,
  TinyTransformer,
  tokenLosses,
  transformerRoutingPoints,
} from '../src/core/models/transformer.js';
import { seededRandom } from '../src/core/util/random.js';
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

  it('differentiates with the tokens made inside the loss function, as with tokens made outside', async () => {
    const model = createTransformer(config);
    const rows = [[1, 2, 3, 4, 5, 6, 7]];
    const next = [[2, 3, 4, 5, 6, 7, 8]];
    const variables = model.trainableVariables();
    const gradients = async (inside: boolean) => {
      const outside = tokens(rows);
      const { value, grads } = tf.variableGrads(() => {
        // A training step that builds its batch in the differentiated function: those tensors
        // are disposed before the backward pass, which must not need them.
        const x = inside ? tokens(rows) : outside;
        const w = tf.ones([1, 7]) as tf.Tensor2D;
        return tokenCrossEntropy(model.forward(x), tokens(next), w);
      }, variables);
      const embedding = await grads[variables[0]!.name]!.data();
      tf.dispose([value, outside, ...Object.values(grads)]);
      return Array.from(embedding);
    };
    const reference = await gradients(false);
    await expectNoLeak(async () => {
      expect(await gradients(true)).toEqual(reference);
    });
    // The embedding's gradient is not all zeros, so the comparison means something.
    expect(reference.some((g) => g !== 0)).toBe(true);
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
    // A clear error, not tfjs's message about a disposed tensor.
    let caught: unknown;
    try {
      model.forward(floats);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(GradientRoutingError);
    expect((caught as GradientRoutingError).code).toBe('disposed');
    expect((caught as GradientRoutingError).message).toMatch(/this transformer was disposed/);
  });

  it('rejects a head count that does not divide the width', () => {
    expect(() => createTransformer({ ...config, numHeads: 5 })).toThrow(/must divide modelDim/);
  });
});

// A float64 reference of the documented architecture (pre-LN GPT-2 block, causal attention,
// tanh GELU, learned positions, untied unembedding), written from the description, not the code.
type Matrix = number[][];
const matVec = (v: number[], w: Matrix, bias?: number[]) =>
  w[0]!.map((_, j) => v.reduce((sum, vi, i) => sum + vi * w[i]![j]!, bias ? bias[j]! : 0));
const layerNormRef = (v: number[], gain: number[], bias: number[]) => {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
  return v.map((vi, i) => ((vi - mean) / Math.sqrt(variance + 1e-5)) * gain[i]! + bias[i]!);
};
const geluRef = (z: number) =>
  0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));

function referenceForward(
  model: TinyTransformer,
  ids: number[][],
): { logits: number[][][]; hidden: number[][][][] } {
  const params = new Map(
    [...model.namedParameters()].map(([name, v]) => [name, v.arraySync() as never]),
  );
  const get = <T>(name: string) => params.get(name) as T;
  const { modelDim: d, numHeads: heads, numLayers } = model.config;
  const headDim = d / heads;
  const hidden: number[][][][] = [];
  const logits = ids.map((row) => {
    let x = row.map((id, t) =>
      get<Matrix>('embed.tokens')[id]!.map((e, j) => e + get<Matrix>('embed.positions')[t]![j]!),
    );
    for (let layer = 0; layer < numLayers; layer++) {
      const p = (name: string) => get<never>(`blocks.${layer}.${name}`);
      const h1 = x.map((v) => layerNormRef(v, p('ln1.gain'), p('ln1.bias')));
      const qkv = h1.map((v) => matVec(v, p('attn.qkv.weight'), p('attn.qkv.bias')));
      const merged = qkv.map((_, t) => {
        const out: number[] = [];
        for (let head = 0; head < heads; head++) {
          const part = (s: number, which: number) =>
            qkv[s]!.slice(which * d + head * headDim, which * d + (head + 1) * headDim);
          const q = part(t, 0);
          const scores = Array.from(
            { length: t + 1 },
            (_, s) => part(s, 1).reduce((sum, k, i) => sum + k * q[i]!, 0) / Math.sqrt(headDim),
          );
          const top = Math.max(...scores);
          const exps = scores.map((s) => Math.exp(s - top));
          const total = exps.reduce((a, b) => a + b, 0);
          for (let i = 0; i < headDim; i++) {
            out.push(exps.reduce((sum, e, s) => sum + (e / total) * part(s, 2)[i]!, 0));
          }
        }
        return out;
      });
      x = x.map((v, t) =>
        matVec(merged[t]!, p('attn.out.weight'), p('attn.out.bias')).map((a, j) => v[j]! + a),
      );
      const h = x.map((v) =>
        matVec(
          layerNormRef(v, p('ln2.gain'), p('ln2.bias')),
          p('mlp.in.weight'),
          p('mlp.in.bias'),
        ).map(geluRef),
      );
      hidden[layer] = [...(hidden[layer] ?? []), h];
      x = x.map((v, t) =>
        matVec(h[t]!, p('mlp.out.weight'), p('mlp.out.bias')).map((a, j) => v[j]! + a),
      );
    }
    return x.map((v) =>
      matVec(layerNormRef(v, get('final.gain'), get('final.bias')), get<Matrix>('unembed')),
    );
  });
  return { logits, hidden };
}

/** Sets every parameter to seeded values of order 1, so every part of the forward pass matters. */
function randomizeParameters(model: TinyTransformer, seed: number): void {
  const random = seededRandom(seed);
  for (const [name, v] of model.namedParameters()) {
    const values = Array.from({ length: v.size }, () => random() - 0.5);
    const offset = name.endsWith('gain') ? 1 : 0;
    tf.tidy(() => v.assign(tf.add(tf.tensor(values, v.shape), offset)));
  }
}

/** The standard normal CDF (Abramowitz-Stegun 7.1.26 for erf, error < 2e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const poly =
    t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-z * z);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

const small: TransformerConfig = {
  vocabSize: 11,
  contextLength: 5,
  modelDim: 8,
  numLayers: 2,
  numHeads: 2,
  mlpDim: 12,
  seed: 3,
};

const expectClose = (got: unknown, want: unknown, tolerance: number) => {
  const a = (got as number[]).flat(3) as number[];
  const b = (want as number[]).flat(3) as number[];
  expect(a).toHaveLength(b.length);
  const worst = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
  expect(worst).toBeLessThan(tolerance);
};

describe.each(TEST_BACKENDS)('TinyTransformer against a reference on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('computes the logits and MLP activations of the documented architecture', async () => {
    const model = createTransformer(small);
    randomizeParameters(model, 17);
    const ids = [
      [1, 4, 4, 9, 10],
      [0, 7, 2, 3, 5],
    ];
    const x = tokens(ids);
    const want = referenceForward(model, ids);
    await expectNoLeak(() => {
      const got = tf.tidy(() => model.forward(x).arraySync());
      expectClose(got, want.logits, 1e-4);
      // The logits are not near zero, so the tolerance above is tight.
      expect(Math.max(...want.logits.flat(2).map(Math.abs))).toBeGreaterThan(0.5);
    });
    // Without a context, the forward pass keeps only its result.
    await expectNoLeak(() => model.forward(x).dispose());
    // Captured activations outlive the forward pass (it runs in the caller's scope).
    const hidden = tf.tidy(() => {
      const context = forwardContext(model, { capture: ['blocks.*.mlp.hidden'] });
      model.forward(x, context);
      return [0, 1].map((i) => context.captured.get(`blocks.${i}.mlp.hidden`)!.arraySync());
    });
    expectClose(hidden[0], want.hidden[0], 1e-4);
    expectClose(hidden[1], want.hidden[1], 1e-4);
    // Shorter sequences use the first positions and the causal mask's top-left corner.
    const prefix = tokens([[1, 4, 4]]);
    const short = tf.tidy(() => model.forward(prefix).arraySync());
    expectClose(short, [referenceForward(model, [[1, 4, 4]]).logits[0]], 1e-4);
    tf.dispose([x, prefix]);
    model.dispose();
  });

  it('routes the embedding gradient to the tokens and positions used, summed over repeats', () => {
    const model = createTransformer(small);
    randomizeParameters(model, 4);
    const params = model.namedParameters();
    const embedding = params.get('embed.tokens')!;
    const positions = params.get('embed.positions')!;
    const x = tokens([[3, 5, 3, 7]]);
    const { grads } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const logits = model.forward(x);
          const weights = tf.tensor(
            Array.from({ length: logits.size }, (_, i) => Math.sin(i)),
            logits.shape,
          );
          return tf.sum(tf.mul(logits, weights)) as tf.Scalar;
        }),
      [embedding, positions],
    );
    const gE = grads[embedding.name]!.arraySync() as number[][];
    const gP = grads[positions.name]!.arraySync() as number[][];
    const sum = (a: number[], b: number[]) => a.map((v, i) => v + b[i]!);
    expectClose([gE[3]], [sum(gP[0]!, gP[2]!)], 1e-6);
    expectClose([gE[5]], [gP[1]], 1e-6);
    expectClose([gE[7]], [gP[3]], 1e-6);
    expect(Math.max(...gP[1]!.map(Math.abs))).toBeGreaterThan(1e-3);
    for (const unused of [0, 1, 2, 4, 6, 8, 9, 10])
      expect(gE[unused]).toEqual(new Array(8).fill(0));
    expect(gP[4]).toEqual(new Array(8).fill(0));
    tf.dispose(Object.values(grads));
    x.dispose();
    model.dispose();
  });
});

describe('TinyTransformer parameters and lifecycle', () => {
  beforeAll(() => useBackend('cpu'));

  const std = (v: tf.Tensor) => {
    const data = Array.from(v.dataSync());
    const mean = data.reduce((a, b) => a + b, 0) / data.length;
    return Math.sqrt(data.reduce((a, b) => a + (b - mean) ** 2, 0) / data.length);
  };

  it('initialises as GPT-2 does: N(0, 0.02²), residual outputs / √(2L), positions 0.01, biases 0, gains 1', () => {
    const model = createTransformer({ ...config, vocabSize: 64, modelDim: 32, mlpDim: 64 });
    const params = model.namedParameters();
    const residual = 0.02 / Math.sqrt(4);
    const expected: Array<[string, number]> = [
      ['embed.tokens', 0.02],
      ['embed.positions', 0.01],
      ['blocks.0.attn.qkv.weight', 0.02],
      ['blocks.1.attn.out.weight', residual],
      ['blocks.0.mlp.in.weight', 0.02],
      ['blocks.1.mlp.out.weight', residual],
      ['unembed', 0.02],
    ];
    for (const [name, want] of expected) {
      expect(std(params.get(name)!) / want, name).toBeGreaterThan(0.85);
      expect(std(params.get(name)!) / want, name).toBeLessThan(1.15);
    }
    for (const name of ['blocks.0.ln1.bias', 'blocks.1.mlp.in.bias', 'final.bias']) {
      expect(new Set(params.get(name)!.dataSync()), name).toEqual(new Set([0]));
    }
    for (const name of ['blocks.0.ln2.gain', 'final.gain']) {
      expect(new Set(params.get(name)!.dataSync()), name).toEqual(new Set([1]));
    }
    model.dispose();
  });

  it('gives every parameter its documented shape, and builds values for exactly those', () => {
    const { vocabSize: V, contextLength: T, modelDim: d, mlpDim: h } = config;
    const shapes: Record<string, number[]> = {
      'embed.tokens': [V, d],
      'embed.positions': [T, d],
      'ln1.gain': [d],
      'ln1.bias': [d],
      'attn.qkv.weight': [d, 3 * d],
      'attn.qkv.bias': [3 * d],
      'attn.out.weight': [d, d],
      'attn.out.bias': [d],
      'ln2.gain': [d],
      'ln2.bias': [d],
      'mlp.in.weight': [d, h],
      'mlp.in.bias': [h],
      'mlp.out.weight': [h, d],
      'mlp.out.bias': [d],
      'final.gain': [d],
      'final.bias': [d],
      unembed: [d, V],
    };
    const model = createTransformer(config);
    for (const [name, v] of model.namedParameters()) {
      expect(v.shape, name).toEqual(shapes[name.replace(/^blocks\.\d+\./, '')]);
    }
    const values = initialTransformerValues(config);
    expect([...values.keys()]).toEqual([...model.namedParameters().keys()]);
    for (const v of values.values()) v.dispose();
    model.dispose();
  });

  it('seededNormal draws standard normals, odd counts included', () => {
    const draw = seededNormal(1);
    const values = Array.from(draw(20001, 1));
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(sd).toBeGreaterThan(0.97);
    expect(sd).toBeLessThan(1.03);
    expect(values.filter((v) => Math.abs(v) < 1).length / values.length).toBeCloseTo(0.6827, 1);
    expect(values.filter((v) => v < 0).length / values.length).toBeCloseTo(0.5, 1);
    // Each half of the Box-Muller pairs (even and odd slots) is standard normal on its own:
    // Kolmogorov-Smirnov distance to the normal CDF well under the 1 % critical value (0.016).
    for (const parity of [0, 1]) {
      const half = values.filter((_, i) => i % 2 === parity).sort((a, b) => a - b);
      const distance = Math.max(
        ...half.map((v, i) => Math.abs(normalCdf(v) - (i + 1) / half.length)),
      );
      expect(distance, `slots of parity ${parity}`).toBeLessThan(0.016);
    }
    // The unpaired last value is drawn too, and std scales.
    expect(values[20000]).not.toBe(0);
    const scaled = seededNormal(1)(3, 0.5);
    expect(Array.from(scaled)).toEqual(
      Array.from(seededNormal(1)(3, 1), (v) => Math.fround(v / 2)),
    );
  });

  it('names every parameter; mlpWidth and mlpRegions check the block index', async () => {
    const model = createTransformer(config);
    // Building frees the initial values it copied.
    await expectNoLeak(() => createTransformer(config).dispose());
    const names = [...model.namedParameters().keys()];
    expect(names).toHaveLength(2 + 12 * 2 + 3);
    expect(names.slice(0, 3)).toEqual(['embed.tokens', 'embed.positions', 'blocks.0.ln1.gain']);
    expect(names).toContain('blocks.1.mlp.out.bias');
    expect(names.slice(-3)).toEqual(['final.gain', 'final.bias', 'unembed']);
    expect(model.trainableVariables()).toHaveLength(names.length);
    expect(model.mlpWidth(1)).toBe(24);
    expect(model.mlpRegions(1)).toEqual([]);
    expect(model.mlpWeights(0).inWeight.shape).toEqual([16, 24]);
    expect(() => model.mlpWidth(2)).toThrow(/has blocks 0..1, not 2/);
    expect(() => model.mlpRegions(-1)).toThrow(/has blocks 0..1, not -1/);
    model.dispose();
  });

  it('clone is an independent copy; assignFrom copies values and checks shapes', () => {
    const model = createTransformer(config);
    const x = tokens([[1, 2, 3]]);
    const logits = (m: TinyTransformer) => Array.from(tf.tidy(() => m.forward(x).dataSync()));
    const copy = model.clone();
    expect(copy.config).toEqual(model.config);
    expect(logits(copy)).toEqual(logits(model));
    randomizeParameters(copy, 1);
    const changed = logits(copy);
    expect(changed).not.toEqual(logits(model));
    const other = createTransformer({ ...config, seed: 99 });
    other.assignFrom(copy);
    expect(logits(other)).toEqual(changed);
    const wider = createTransformer({ ...config, mlpDim: 25 });
    expect(() => other.assignFrom(wider)).toThrow(/same shapes; 'blocks.0.mlp.in.weight' differs/);
    const deeper = createTransformer({ ...config, numLayers: 3 });
    expect(() => other.assignFrom(deeper)).toThrow(/same shapes; 'blocks.2.ln1.gain' differs/);
    deeper.dispose();
    tf.dispose(x);
    for (const m of [model, copy, other, wider]) m.dispose();
  });

  it('checks its parameters and regions when built, and frees everything on dispose', async () => {
    const values = initialTransformerValues(config);
    const missing = new Map(values);
    missing.delete('blocks.1.ln2.bias');
    // The variables made before the problem is found are freed.
    await expectNoLeak(() => {
      expect(() => new TinyTransformer(config, missing)).toThrow(
        /transformer parameter 'blocks.1.ln2.bias' is missing/,
      );
      for (const [start, end] of [
        [-1, 4],
        [4, 4],
        [20, 25],
      ]) {
        const regions = new Map([[1, [{ name: 'r', start: start!, end: end! }]]]);
        expect(() => new TinyTransformer(config, values, regions)).toThrow(
          new RegExp(
            `region 'r' \\[${start}, ${end}\\) of block 1 does not fit its 24 hidden units`,
          ),
        );
      }
    });
    await expectNoLeak(() => {
      const edges = new Map([[0, [{ name: 'all', start: 0, end: 24 }]]]);
      const model = new TinyTransformer(config, values, edges);
      expect(model.mlpRegions(0)).toEqual([{ name: 'all', start: 0, end: 24 }]);
      const copy = model.clone();
      expect(copy.mlpRegions(0)).toEqual(model.mlpRegions(0));
      copy.dispose();
      model.dispose();
      model.dispose();
    });
    for (const v of values.values()) v.dispose();
  });

  it('validates every config field and suggests a head count that divides the width', () => {
    for (const key of [
      'vocabSize',
      'contextLength',
      'modelDim',
      'numLayers',
      'numHeads',
      'mlpDim',
    ] as const) {
      for (const bad of [0, 1.5]) {
        expect(() => createTransformer({ ...config, [key]: bad })).toThrow(
          new RegExp(`TransformerConfig.${key} must be a positive integer, got ${bad}`),
        );
      }
    }
    expect(() => createTransformer({ ...config, numHeads: 5 })).toThrow(/pick e.g. numHeads 4/);
    expect(() => createTransformer({ ...config, modelDim: 18, numHeads: 4 })).toThrow(
      /pick e.g. numHeads 3/,
    );
    const one = createTransformer({ ...config, numLayers: 1, numHeads: 1 });
    expect(one.routingPoints).toEqual(transformerRoutingPoints(1));
    one.dispose();
  });

  it('token losses are -log softmax of the target; the mean counts only weighted tokens', async () => {
    const logits = tf.tensor3d([
      [
        [0, Math.log(3)],
        [2, 2],
        [5, 1],
      ],
    ]);
    const targets = tf.tensor2d([[1, 0, 1]], [1, 3], 'int32');
    await expectNoLeak(() => {
      const losses = tf.tidy(() => Array.from(tokenLosses(logits, targets).dataSync()));
      const want = [Math.log(4 / 3), Math.log(2), 4 + Math.log(1 + Math.exp(-4))];
      expectClose([losses], [want], 1e-5);
      const mean = (w: number[]) =>
        tf.tidy(() => tokenCrossEntropy(logits, targets, tf.tensor2d([w], [1, 3])).dataSync()[0]!);
      expect(mean([1, 1, 0])).toBeCloseTo((want[0]! + want[1]!) / 2, 5);
      expect(mean([0, 0, 2])).toBeCloseTo(want[2]!, 5);
      // Only padding: 0, not NaN.
      expect(mean([0, 0, 0])).toBe(0);
    });
    tf.dispose([logits, targets]);
  });
});
