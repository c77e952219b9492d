import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import { type MaskRange, routeGradients } from './route.js';

/**
 * What a rule may read to decide the masks of a batch. Every field is optional: each rule says
 * which it needs and throws, naming the field, when it is missing.
 */
export interface RoutingBatch {
  /** Integer labels: `[B]` one per example, or `[B, T]` one per token. */
  readonly labels?: tf.Tensor;
  /** The dataset index of each example, `[B]` (for oversight: which examples are labelled). */
  readonly indices?: tf.Tensor1D;
  /** Weights in [0, 1], `[B]` or `[B, T]`, for soft rules. */
  readonly weights?: tf.Tensor;
}

/**
 * A rule maps a batch to the masks of a routing point: where each example's (or token's)
 * gradient may go. Table rules ({@link MaskTable}-based, such as `labelRule`) look the masks up
 * as rows of a table resident on the backend.
 */
export interface RoutingRule {
  /** A short description, used in error messages. */
  readonly description: string;
  /**
   * The range the rule's mask values lie in, checked when mask validation is on. Default
   * `[0, 1]`; table rules report their table's range.
   */
  readonly range?: MaskRange;
  /**
   * The masks of `batch`, a tensor that broadcasts to `activation`'s shape. Called inside a
   * `tf.tidy`, so the rule need not dispose what it creates.
   */
  masks(batch: RoutingBatch, activation: tf.Tensor): tf.Tensor;
}

/**
 * Which rule routes each routing point. Keys are point names (`latent`) or patterns in which `*`
 * stands for one dotted segment (`blocks.*.mlp.hidden`); every key must match at least one
 * point, and no point may match two keys.
 */
export type RoutingPlan = Readonly<Record<string, RoutingRule>>;

/** A forward-pass edit at a routing point, such as an ablation: gets the activation, returns its replacement. */
export type PointEdit = (activation: tf.Tensor, point: string) => tf.Tensor;

/** Options of {@link forwardContext}. */
export interface ForwardContextOptions {
  /** The routing plan; without one, nothing is routed. */
  plan?: RoutingPlan;
  /** The batch the plan's rules read. Needed when `plan` is given. */
  batch?: RoutingBatch;
  /** Point names or patterns whose activations to record in {@link ForwardContext.captured}. */
  capture?: readonly string[];
  /** Forward edits by point name or pattern (applied before capture and routing). */
  edit?: Readonly<Record<string, PointEdit>>;
}

/** Splits a name or pattern into its dotted segments. */
function segments(name: string): string[] {
  return name.split('.');
}

/**
 * Whether a point name matches a pattern: segment by segment, `*` matching any one segment.
 *
 * @example
 * ```ts
 * matchesPoint('blocks.*.mlp.hidden', 'blocks.3.mlp.hidden'); // true
 * matchesPoint('blocks.*', 'blocks.3.mlp.hidden');            // false: * is one segment
 * ```
 */
export function matchesPoint(pattern: string, point: string): boolean {
  const want = segments(pattern);
  const have = segments(point);
  return want.length === have.length && want.every((part, i) => part === '*' || part === have[i]);
}

/**
 * Resolves patterns against a model's routing points: for each pattern, the points it matches.
 * @throws {@link GradientRoutingError} when a pattern matches no point (listing the points) or a
 *   point matches two patterns.
 */
function resolvePatterns<T>(
  points: readonly string[],
  byPattern: Readonly<Record<string, T>>,
  what: string,
): Map<string, T> {
  const resolved = new Map<string, T>();
  const owner = new Map<string, string>();
  for (const [pattern, value] of Object.entries(byPattern)) {
    const matched = points.filter((point) => matchesPoint(pattern, point));
    if (matched.length === 0) {
      throw new GradientRoutingError(
        `the ${what} names '${pattern}', which matches no routing point of this model; ` +
          `its points are ${points.map((p) => `'${p}'`).join(', ')}.`,
        'invalid-argument',
        pattern,
      );
    }
    for (const point of matched) {
      const previous = owner.get(point);
      if (previous !== undefined) {
        throw new GradientRoutingError(
          `routing point '${point}' matches both '${previous}' and '${pattern}' in the ${what}; ` +
            'make the patterns disjoint.',
          'invalid-argument',
          point,
        );
      }
      owner.set(point, pattern);
      resolved.set(point, value);
    }
  }
  return resolved;
}

/**
 * The context of one forward pass through a model with routing points: which rule routes each
 * point, which activations to record and which to edit. Models call {@link ForwardContext.point}
 * at each of their points; without a context a forward pass is plain.
 */
export class ForwardContext {
  /** Activations recorded at the points named in `capture`, by point name. */
  readonly captured = new Map<string, tf.Tensor>();
  private readonly rules: Map<string, RoutingRule>;
  private readonly edits: Map<string, PointEdit>;
  private readonly capturing: Set<string>;
  private readonly batch: RoutingBatch;

  /** Use {@link forwardContext}, which validates the plan against the model's points. */
  constructor(points: readonly string[], options: ForwardContextOptions = {}) {
    if (options.plan !== undefined && options.batch === undefined) {
      throw new GradientRoutingError(
        'a routing plan needs the batch its rules read; pass { plan, batch: { labels } }.',
      );
    }
    this.rules = resolvePatterns(points, options.plan ?? {}, 'plan');
    this.edits = resolvePatterns(points, options.edit ?? {}, 'edits');
    const capture = Object.fromEntries((options.capture ?? []).map((p) => [p, p]));
    this.capturing = new Set(resolvePatterns(points, capture, 'capture list').keys());
    this.batch = options.batch ?? {};
  }

  /** The points the plan routes. */
  get routedPoints(): string[] {
    return [...this.rules.keys()];
  }

  /**
   * What a model calls at a routing point: applies the point's edit, records the activation if
   * asked, and routes its gradient by the point's rule. Returns the activation to carry on with.
   */
  point<T extends tf.Tensor>(name: string, activation: T): T {
    const edit = this.edits.get(name);
    const value = (edit === undefined ? activation : edit(activation, name)) as T;
    if (this.capturing.has(name)) this.captured.set(name, value);
    const rule = this.rules.get(name);
    if (rule === undefined) return value;
    return tf.tidy(() => {
      try {
        return routeGradients(
          value,
          rule.masks(this.batch, value),
          rule.range === undefined ? {} : { range: rule.range },
        );
      } catch (error) {
        if (!(error instanceof GradientRoutingError)) throw error;
        throw new GradientRoutingError(
          `at routing point '${name}' (${rule.description}): ${error.message.replace('gradient-routing: ', '')}`,
          error.code,
          error.value,
          { cause: error },
        );
      }
    }) as T;
  }
}

/** Anything with named routing points: models, or a list of names. */
export interface HasRoutingPoints {
  /** The names of the places where gradients can be routed, in forward order. */
  readonly routingPoints: readonly string[];
}

/**
 * The context for one forward pass of `model` with a routing plan, edits and captures.
 * @throws {@link GradientRoutingError} when a plan, edit or capture key matches no point of the
 *   model, or a point matches two keys.
 *
 * @example
 * ```ts
 * const plan = { latent: labelRule(32, routes) };
 * const context = forwardContext(model, { plan, batch: { labels } });
 * const out = model.forward(x, context); // routed in the backward pass
 * ```
 */
export function forwardContext(
  model: HasRoutingPoints,
  options: ForwardContextOptions = {},
): ForwardContext {
  return new ForwardContext(model.routingPoints, options);
}
