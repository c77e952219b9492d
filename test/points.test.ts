import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { labelRule } from '../src/core/masks/table.js';
import {
  forwardContext,
  matchesPoint,
  type RoutingBatch,
  type RoutingRule,
} from '../src/core/routing/points.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

const POINTS = ['embed', 'blocks.0.mlp.hidden', 'blocks.1.mlp.hidden', 'blocks.1.attn', 'latent'];
const model = { routingPoints: POINTS };

/** A rule that blocks everything and records which points asked it for masks. */
function blockingRule(seen: string[]): RoutingRule {
  return {
    description: 'block all',
    masks(_batch: RoutingBatch, activation: tf.Tensor) {
      seen.push(activation.shape.join('x'));
      return tf.zerosLike(activation);
    },
  };
}

describe('matchesPoint', () => {
  it('matches segment by segment, * standing for exactly one segment', () => {
    expect(matchesPoint('blocks.*.mlp.hidden', 'blocks.3.mlp.hidden')).toBe(true);
    expect(matchesPoint('blocks.*.mlp.hidden', 'blocks.3.attn.hidden')).toBe(false);
    expect(matchesPoint('blocks.*', 'blocks.3.mlp.hidden')).toBe(false);
    expect(matchesPoint('*', 'latent')).toBe(true);
    expect(matchesPoint('*', 'encoder.0')).toBe(false);
    expect(matchesPoint('latent', 'latent')).toBe(true);
    expect(matchesPoint('latent', 'latents')).toBe(false);
    expect(matchesPoint('encoder.0', 'encoder.0.x')).toBe(false);
  });
});

describe('forwardContext', () => {
  it('resolves a pattern to every point it matches, and only those', () => {
    const rule = blockingRule([]);
    const context = forwardContext(model, {
      plan: { 'blocks.*.mlp.hidden': rule },
      batch: {},
    });
    expect(context.routedPoints).toEqual(['blocks.0.mlp.hidden', 'blocks.1.mlp.hidden']);
  });

  it('rejects a pattern that matches no point, listing the points', () => {
    const rule = blockingRule([]);
    expect(() => forwardContext(model, { plan: { 'blocks.*.mlp': rule }, batch: {} })).toThrow(
      /the plan names 'blocks\.\*\.mlp', which matches no routing point of this model; its points are 'embed', 'blocks\.0\.mlp\.hidden', 'blocks\.1\.mlp\.hidden', 'blocks\.1\.attn', 'latent'\./,
    );
    expect(() => forwardContext(model, { capture: ['hidden'] })).toThrow(
      /the capture list names 'hidden', which matches no routing point/,
    );
    expect(() => forwardContext(model, { edit: { 'decoder.*': (x) => x } })).toThrow(
      /the edits names 'decoder\.\*'/,
    );
  });

  it('rejects a point that two patterns match', () => {
    const rule = blockingRule([]);
    expect(() =>
      forwardContext(model, {
        plan: { 'blocks.*.mlp.hidden': rule, 'blocks.1.*.hidden': rule },
        batch: {},
      }),
    ).toThrow(
      /routing point 'blocks\.1\.mlp\.hidden' matches both 'blocks\.\*\.mlp\.hidden' and 'blocks\.1\.\*\.hidden' in the plan; make the patterns disjoint/,
    );
  });

  it('needs a batch when there is a plan', () => {
    expect(() => forwardContext(model, { plan: { latent: blockingRule([]) } })).toThrow(
      /a routing plan needs the batch its rules read; pass \{ plan, batch: \{ labels \} \}/,
    );
    // Without a plan, no batch is needed.
    expect(forwardContext(model, { capture: ['latent'] }).routedPoints).toEqual([]);
    expect(forwardContext(model).routedPoints).toEqual([]);
  });

  describe.each(TEST_BACKENDS)('on %s', (backend) => {
    it('routes, captures and edits at the named points only', async () => {
      await useBackend(backend);
      await expectNoLeak(() => {
        const seen: string[] = [];
        const x = tf.tensor2d([
          [1, 2],
          [3, 4],
        ]);
        const gradients = tf.tidy(() => {
          const grad = tf.grad((v: tf.Tensor) => {
            const context = forwardContext(model, {
              plan: { 'blocks.*.mlp.hidden': blockingRule(seen) },
              batch: {},
              capture: ['embed', 'blocks.1.*.hidden'],
              edit: {
                'blocks.1.attn': (a, point) => (point === 'blocks.1.attn' ? tf.mul(a, 10) : a),
              },
            });
            const embedded = context.point('embed', v);
            // Not routed: 'embed' is only captured.
            expect(context.captured.get('embed')).toBe(embedded);
            const attn = context.point('blocks.1.attn', v);
            // The edit replaced the activation (forward ×10).
            expect(Array.from(attn.dataSync())).toEqual([10, 20, 30, 40]);
            const hidden = context.point('blocks.1.mlp.hidden', tf.mul(v, 2));
            expect(context.captured.get('blocks.1.mlp.hidden')).toBeDefined();
            // Routing leaves the forward value alone.
            expect(Array.from(hidden.dataSync())).toEqual([2, 4, 6, 8]);
            // A point nobody names passes through untouched.
            const latent = context.point('latent', v);
            expect(latent).toBe(v);
            // Only the points named in capture are recorded.
            expect([...context.captured.keys()]).toEqual(['embed', 'blocks.1.mlp.hidden']);
            return tf.sum(tf.addN([embedded, attn, hidden, latent]));
          });
          return grad(x);
        });
        // embed 1 + attn 10 + hidden blocked (0) + latent 1.
        expect(Array.from(gradients.dataSync())).toEqual([12, 12, 12, 12]);
        expect(seen).toEqual(['2x2']);
        tf.dispose([x, gradients]);
      });
    });

    it('prefixes a rule error with the point and the rule', async () => {
      await useBackend(backend);
      const rule = labelRule(2, [{ labels: [0], region: [0, 1] }]);
      const context = forwardContext(model, { plan: { latent: rule }, batch: {} });
      const x = tf.zeros([1, 2]);
      expect(() => context.point('latent', x)).toThrow(
        /^gradient-routing: at routing point 'latent' \(label rule over 1 classes\): the rule 'label rule over 1 classes' reads batch\.labels, which is missing/,
      );
      x.dispose();
      rule.dispose();
    });
  });
});
