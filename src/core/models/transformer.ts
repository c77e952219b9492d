import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { ForwardContext } from '../routing/points.js';
import { seededRandom } from '../util/random.js';
import {
  causalSelfAttention,
  embedTokensAndPositions,
  gelu,
  layerNorm,
  tokenCrossEntropy,
  tokenLosses,
} from './transformer-ops.js';

export { tokenCrossEntropy, tokenLosses };

/** Shape and initialisation of a {@link TinyTransformer}. */
export interface TransformerConfig {
  /** Number of token ids; ids are integers in `[0, vocabSize)`. */
  readonly vocabSize: number;
  /** Longest sequence the position embedding covers. */
  readonly contextLength: number;
  /** Width of the residual stream `d`. */
  readonly modelDim: number;
  /** Number of blocks. */
  readonly numLayers: number;
  /** Attention heads per block; must divide `modelDim`. */
  readonly numHeads: number;
  /** Hidden width of every block's MLP before any expansion. */
  readonly mlpDim: number;
  /** Seed of the initial weights. */
  readonly seed: number;
}

/** The four tensors of a dense MLP block `x → gelu(x W_in + b_in) W_out + b_out`. */
export interface MlpWeights<T extends tf.Tensor = tf.Tensor> {
  /** `[d, h]` */
  readonly inWeight: T;
  /** `[h]` */
  readonly inBias: T;
  /** `[h, d]` */
  readonly outWeight: T;
  /** `[d]` */
  readonly outBias: T;
}

/** A contiguous range `[start, end)` of hidden units with a name, e.g. the expansion. */
export interface UnitRegion {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

interface BlockVariables {
  ln1Gain: tf.Variable;
  ln1Bias: tf.Variable;
  qkvWeight: tf.Variable;
  qkvBias: tf.Variable;
  attnOutWeight: tf.Variable;
  attnOutBias: tf.Variable;
  ln2Gain: tf.Variable;
  ln2Bias: tf.Variable;
  mlp: MlpWeights<tf.Variable>;
  /** Units of this block's MLP hidden layer that are named regions (the expansion). */
  regions: UnitRegion[];
}

/** The initial values of every parameter, by path name, as plain tensors (for building). */
export type ParameterValues = ReadonlyMap<string, tf.Tensor>;

function assertPositiveInteger(value: number, name: string): void {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new GradientRoutingError(
      `TransformerConfig.${name} must be a positive integer, got ${value}.`,
    );
  }
}

/** @internal Checks a config; throws naming the bad field. */
export function validateTransformerConfig(config: TransformerConfig): void {
  for (const key of [
    'vocabSize',
    'contextLength',
    'modelDim',
    'numLayers',
    'numHeads',
    'mlpDim',
  ] as const) {
    assertPositiveInteger(config[key], key);
  }
  if (config.modelDim % config.numHeads !== 0) {
    throw new GradientRoutingError(
      `TransformerConfig.numHeads (${config.numHeads}) must divide modelDim ` +
        `(${config.modelDim}); pick e.g. numHeads ${gcdHeads(config.modelDim, config.numHeads)}.`,
    );
  }
}

function gcdHeads(dim: number, heads: number): number {
  let h = heads;
  while (dim % h !== 0) h -= 1;
  return h;
}

/**
 * A seeded normal sampler (Box-Muller on {@link seededRandom}), so initial weights are the same
 * on every backend; tfjs's `randomNormal` seeds differ between backends.
 */
export function seededNormal(seed: number): (count: number, std: number) => Float32Array {
  const uniform = seededRandom(seed);
  return (count, std) => {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i += 2) {
      const u1 = Math.max(uniform(), 1e-12);
      const u2 = uniform();
      const radius = Math.sqrt(-2 * Math.log(u1)) * std;
      out[i] = radius * Math.cos(2 * Math.PI * u2);
      if (i + 1 < count) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
    }
    return out;
  };
}

/** GPT-2's initial scale: weights N(0, 0.02²), biases 0, layer-norm gains 1. */
const INIT_STD = 0.02;

/** The routing points of a transformer with `numLayers` blocks, in forward order. */
export function transformerRoutingPoints(numLayers: number): string[] {
  const points = ['embed'];
  for (let i = 0; i < numLayers; i++) {
    points.push(
      `blocks.${i}.attn.out`,
      `blocks.${i}.mlp.hidden`,
      `blocks.${i}.mlp.out`,
      `blocks.${i}.resid`,
    );
  }
  points.push('final');
  return points;
}

/** `x [.., a] · w [a, b] + bias [b]` as one 2-D product (tfjs matMul needs equal ranks). */
function dense(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  const inDim = x.shape[x.shape.length - 1]!;
  const outShape = [...x.shape.slice(0, -1), weight.shape[1]!];
  const flat = tf.reshape(x, [-1, inDim]) as tf.Tensor2D;
  return tf.reshape(tf.add(tf.matMul(flat, weight as tf.Tensor2D), bias), outShape);
}

/**
 * A small decoder-only transformer (GPT-2 style: pre-LN blocks, causal multi-head
 * self-attention, GELU MLP, learned positions, untied unembedding) on plain tfjs ops, with
 * named routing points so gradient routing, capture and ablation plug in anywhere:
 *
 * - `embed` — token + position embedding `[B, T, d]`
 * - `blocks.{i}.attn.out` — attention output before the residual add `[B, T, d]`
 * - `blocks.{i}.mlp.hidden` — post-GELU MLP activations `[B, T, h]` (where ERA routes)
 * - `blocks.{i}.mlp.out` — MLP output before the residual add `[B, T, d]`
 * - `blocks.{i}.resid` — the residual stream after block i `[B, T, d]`
 * - `final` — after the last layer norm `[B, T, d]`
 *
 * The model owns its variables; {@link TinyTransformer.dispose} frees them. Build one with
 * {@link createTransformer}; widen or narrow MLPs with `expandTransformerMlps` /
 * `contractTransformerMlps` (see `expand.ts`).
 */
export class TinyTransformer {
  readonly config: TransformerConfig;
  /** Every routing point, in forward order. */
  readonly routingPoints: readonly string[];
  private readonly embedding: tf.Variable;
  private readonly positions: tf.Variable;
  private readonly blocks: BlockVariables[];
  private readonly finalGain: tf.Variable;
  private readonly finalBias: tf.Variable;
  private readonly unembedding: tf.Variable;
  /** `[T, T]` additive attention bias: 0 on and below the diagonal, -1e9 above. */
  private readonly causalBias: tf.Tensor2D;
  private disposed = false;

  /**
   * @internal Use {@link createTransformer}. Takes ownership of nothing: it copies `values` into
   * new variables, so the caller disposes `values`.
   */
  constructor(
    config: TransformerConfig,
    values: ParameterValues,
    regions: ReadonlyMap<number, readonly UnitRegion[]> = new Map(),
  ) {
    validateTransformerConfig(config);
    this.config = Object.freeze({ ...config });
    this.routingPoints = Object.freeze(transformerRoutingPoints(config.numLayers));
    // A missing parameter or a region that does not fit is found after some variables exist;
    // they are freed before the error propagates.
    const created: tf.Variable[] = [];
    const take = (name: string): tf.Variable => {
      const value = values.get(name);
      if (value === undefined) {
        throw new GradientRoutingError(`transformer parameter '${name}' is missing.`);
      }
      const variable = tf.variable(value, true);
      created.push(variable);
      return variable;
    };
    try {
      this.embedding = take('embed.tokens');
      this.positions = take('embed.positions');
      this.blocks = [];
      for (let i = 0; i < config.numLayers; i++) {
        const p = `blocks.${i}`;
        const block: BlockVariables = {
          ln1Gain: take(`${p}.ln1.gain`),
          ln1Bias: take(`${p}.ln1.bias`),
          qkvWeight: take(`${p}.attn.qkv.weight`),
          qkvBias: take(`${p}.attn.qkv.bias`),
          attnOutWeight: take(`${p}.attn.out.weight`),
          attnOutBias: take(`${p}.attn.out.bias`),
          ln2Gain: take(`${p}.ln2.gain`),
          ln2Bias: take(`${p}.ln2.bias`),
          mlp: {
            inWeight: take(`${p}.mlp.in.weight`),
            inBias: take(`${p}.mlp.in.bias`),
            outWeight: take(`${p}.mlp.out.weight`),
            outBias: take(`${p}.mlp.out.bias`),
          },
          regions: [...(regions.get(i) ?? [])],
        };
        const hidden = block.mlp.inWeight.shape[1]!;
        for (const region of block.regions) {
          if (!(region.start >= 0 && region.start < region.end && region.end <= hidden)) {
            throw new GradientRoutingError(
              `region '${region.name}' [${region.start}, ${region.end}) of block ${i} ` +
                `does not fit its ${hidden} hidden units.`,
            );
          }
        }
        this.blocks.push(block);
      }
      this.finalGain = take('final.gain');
      this.finalBias = take('final.bias');
      this.unembedding = take('unembed');
    } catch (error) {
      for (const variable of created) variable.dispose();
      throw error;
    }
    const T = config.contextLength;
    const bias = new Float32Array(T * T);
    for (let q = 0; q < T; q++) for (let k = q + 1; k < T; k++) bias[q * T + k] = -1e9;
    this.causalBias = tf.keep(tf.tensor2d(bias, [T, T]));
  }

  /** Hidden width of block `layer`'s MLP (`mlpDim`, plus any expansion). */
  mlpWidth(layer: number): number {
    return this.block(layer).mlp.inWeight.shape[1]!;
  }

  /** The named unit regions of block `layer`'s MLP hidden layer (e.g. `expanded`). */
  mlpRegions(layer: number): readonly UnitRegion[] {
    return this.block(layer).regions;
  }

  /** The MLP weights of block `layer` (the live variables; do not dispose them). */
  mlpWeights(layer: number): MlpWeights<tf.Variable> {
    return this.block(layer).mlp;
  }

  private block(layer: number): BlockVariables {
    const block = this.blocks[layer];
    if (block === undefined) {
      throw new GradientRoutingError(
        `the transformer has blocks 0..${this.blocks.length - 1}, not ${layer}.`,
      );
    }
    return block;
  }

  /** Every parameter by path name (`blocks.0.mlp.in.weight`, …); the live variables. */
  namedParameters(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>([
      ['embed.tokens', this.embedding],
      ['embed.positions', this.positions],
    ]);
    this.blocks.forEach((b, i) => {
      const p = `blocks.${i}`;
      out.set(`${p}.ln1.gain`, b.ln1Gain);
      out.set(`${p}.ln1.bias`, b.ln1Bias);
      out.set(`${p}.attn.qkv.weight`, b.qkvWeight);
      out.set(`${p}.attn.qkv.bias`, b.qkvBias);
      out.set(`${p}.attn.out.weight`, b.attnOutWeight);
      out.set(`${p}.attn.out.bias`, b.attnOutBias);
      out.set(`${p}.ln2.gain`, b.ln2Gain);
      out.set(`${p}.ln2.bias`, b.ln2Bias);
      out.set(`${p}.mlp.in.weight`, b.mlp.inWeight);
      out.set(`${p}.mlp.in.bias`, b.mlp.inBias);
      out.set(`${p}.mlp.out.weight`, b.mlp.outWeight);
      out.set(`${p}.mlp.out.bias`, b.mlp.outBias);
    });
    out.set('final.gain', this.finalGain);
    out.set('final.bias', this.finalBias);
    out.set('unembed', this.unembedding);
    return out;
  }

  /** The trainable variables, for `optimizer.minimize(f, false, vars)`. */
  trainableVariables(): tf.Variable[] {
    return [...this.namedParameters().values()];
  }

  /** A copy with its own variables (same values, regions and config). */
  clone(): TinyTransformer {
    // New variables share the values' data until either side is assigned (tfjs copy-on-assign).
    const regions = new Map(this.blocks.map((b, i) => [i, b.regions] as const));
    return new TinyTransformer(this.config, this.namedParameters(), regions);
  }

  /** Copies every parameter value from `other`, which must have the same shapes. */
  assignFrom(other: TinyTransformer): void {
    const mine = this.namedParameters();
    for (const [name, value] of other.namedParameters()) {
      const target = mine.get(name);
      if (target === undefined || !tf.util.arraysEqual(target.shape, value.shape)) {
        throw new GradientRoutingError(
          `assignFrom needs a transformer of the same shapes; '${name}' differs.`,
        );
      }
      target.assign(value);
    }
  }

  /**
   * The next-token logits `[B, T, V]` of `tokens` (`int32 [B, T]`, `T <= contextLength`).
   * Position t attends to positions 0..t only. With a context (see `forwardContext`), its
   * `point` is called at every routing point; call it inside `tf.tidy` then, since activations
   * the context captures live in your scope.
   */
  forward(tokens: tf.Tensor2D, context?: ForwardContext): tf.Tensor3D {
    this.assertLive();
    const [batch, length] = tokens.shape;
    if (tokens.dtype !== 'int32') {
      throw new GradientRoutingError(
        `transformer tokens must be int32, got ${tokens.dtype}; build them with tf.tensor2d(ids, shape, 'int32').`,
      );
    }
    if (length > this.config.contextLength) {
      throw new GradientRoutingError(
        `sequence length ${length} exceeds the model's contextLength ${this.config.contextLength}; truncate the tokens.`,
      );
    }
    const { modelDim: d, numHeads: heads } = this.config;
    const point = <T extends tf.Tensor>(name: string, x: T): T =>
      context === undefined ? x : context.point(name, x);
    const run = () => {
      let x = embedTokensAndPositions(this.embedding, this.positions, tokens);
      x = point('embed', x);
      this.blocks.forEach((b, i) => {
        const h1 = layerNorm(x, b.ln1Gain, b.ln1Bias);
        const qkv = dense(h1, b.qkvWeight, b.qkvBias) as tf.Tensor3D;
        const merged = causalSelfAttention(qkv, heads, this.causalBias);
        const attnOut = point(
          `blocks.${i}.attn.out`,
          dense(merged, b.attnOutWeight, b.attnOutBias),
        );
        x = tf.add(x, attnOut);
        const h2 = layerNorm(x, b.ln2Gain, b.ln2Bias);
        const hidden = point(
          `blocks.${i}.mlp.hidden`,
          gelu(dense(h2, b.mlp.inWeight, b.mlp.inBias)),
        );
        const mlpOut = point(`blocks.${i}.mlp.out`, dense(hidden, b.mlp.outWeight, b.mlp.outBias));
        x = point(`blocks.${i}.resid`, tf.add(x, mlpOut));
      });
      const final = point('final', layerNorm(x, this.finalGain, this.finalBias));
      return tf.reshape(
        tf.matMul(tf.reshape(final, [-1, d]) as tf.Tensor2D, this.unembedding as tf.Tensor2D),
        [batch, length, this.config.vocabSize],
      ) as tf.Tensor3D;
    };
    // With a context, no inner tidy: captured activations must outlive this call.
    return context === undefined ? tf.tidy(run) : run();
  }

  private assertLive(): void {
    if (this.disposed) {
      throw new GradientRoutingError('this transformer was disposed; build a new one.', 'disposed');
    }
  }

  /** Frees the variables. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.namedParameters().values()) v.dispose();
    this.causalBias.dispose();
  }
}

/**
 * The initial parameter values of a transformer of this config (GPT-2's scheme: normal 0.02
 * weights, output projections scaled by `1/sqrt(2·numLayers)`, zero biases, unit gains), as
 * host-seeded tensors. Mostly internal; {@link createTransformer} uses it.
 */
export function initialTransformerValues(config: TransformerConfig): Map<string, tf.Tensor> {
  validateTransformerConfig(config);
  const { vocabSize: V, contextLength: T, modelDim: d, numLayers: L, mlpDim: h } = config;
  const normal = seededNormal(config.seed);
  const residualStd = INIT_STD / Math.sqrt(2 * L);
  const values = new Map<string, tf.Tensor>();
  const randn = (shape: number[], std: number) =>
    tf.tensor(
      normal(
        shape.reduce((a, b) => a * b, 1),
        std,
      ),
      shape,
    );
  values.set('embed.tokens', randn([V, d], INIT_STD));
  values.set('embed.positions', randn([T, d], INIT_STD / 2));
  for (let i = 0; i < L; i++) {
    const p = `blocks.${i}`;
    values.set(`${p}.ln1.gain`, tf.ones([d]));
    values.set(`${p}.ln1.bias`, tf.zeros([d]));
    values.set(`${p}.attn.qkv.weight`, randn([d, 3 * d], INIT_STD));
    values.set(`${p}.attn.qkv.bias`, tf.zeros([3 * d]));
    values.set(`${p}.attn.out.weight`, randn([d, d], residualStd));
    values.set(`${p}.attn.out.bias`, tf.zeros([d]));
    values.set(`${p}.ln2.gain`, tf.ones([d]));
    values.set(`${p}.ln2.bias`, tf.zeros([d]));
    values.set(`${p}.mlp.in.weight`, randn([d, h], INIT_STD));
    values.set(`${p}.mlp.in.bias`, tf.zeros([h]));
    values.set(`${p}.mlp.out.weight`, randn([h, d], residualStd));
    values.set(`${p}.mlp.out.bias`, tf.zeros([d]));
  }
  values.set('final.gain', tf.ones([d]));
  values.set('final.bias', tf.zeros([d]));
  values.set('unembed', randn([d, V], INIT_STD));
  return values;
}

/**
 * A new {@link TinyTransformer} with seeded initial weights (equal seeds give equal weights on
 * every backend).
 *
 * @example
 * ```ts
 * const model = createTransformer({
 *   vocabSize: 512, contextLength: 32, modelDim: 64, numLayers: 2, numHeads: 4, mlpDim: 256, seed: 0,
 * });
 * const logits = model.apply(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')); // [1, 3, 512]
 * ```
 */
export function createTransformer(config: TransformerConfig): TinyTransformer {
  const values = initialTransformerValues(config);
  try {
    return new TinyTransformer(config, values);
  } finally {
    for (const v of values.values()) v.dispose();
  }
}
