import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { TorchAdamOptimizer, torchAdam } from '../src/core/optim/adam.js';
import { expectNoLeak, TEST_BACKENDS, useBackend } from './helpers/backends.js';

/**
 * Loss `sum(a * p^2 + b * p)` per parameter, so the gradient is `2 a p + b`, known in closed
 * form for the plain-JS reference.
 */
const problem = {
  w: { init: [0.5, -1.5, 2.0, 0.25], a: [1, 0.5, 2, 3], b: [0.3, -0.2, 0.1, 1] },
  // u[0] has a tiny gradient (-0.02) that weight decay (0.05 * 1) flips, so decay shows.
  u: { init: [1.0, -0.75], a: [0, 4], b: [-0.02, 0.5] },
};
type Name = keyof typeof problem;

/** torch.optim.Adam's update, written out in float64 with a step count per parameter. */
class ReferenceAdam {
  readonly p: Record<Name, number[]>;
  private readonly m: Record<Name, number[]>;
  private readonly v: Record<Name, number[]>;
  private readonly t: Record<Name, number> = { w: 0, u: 0 };

  constructor(
    private readonly lr: number,
    private readonly wd: number,
    private readonly eps = 1e-8,
    private readonly b1 = 0.9,
    private readonly b2 = 0.999,
  ) {
    this.p = { w: [...problem.w.init], u: [...problem.u.init] };
    this.m = { w: [0, 0, 0, 0], u: [0, 0] };
    this.v = { w: [0, 0, 0, 0], u: [0, 0] };
  }

  step(names: Name[]): void {
    for (const name of names) {
      const { a, b } = problem[name];
      const t = ++this.t[name];
      const p = this.p[name];
      for (let i = 0; i < p.length; i++) {
        let g = 2 * a[i]! * p[i]! + b[i]!;
        g += this.wd * p[i]!; // PyTorch's weight_decay: L2 added to the gradient
        this.m[name][i] = this.b1 * this.m[name][i]! + (1 - this.b1) * g;
        this.v[name][i] = this.b2 * this.v[name][i]! + (1 - this.b2) * g * g;
        const mHat = this.m[name][i]! / (1 - this.b1 ** t);
        const vHat = this.v[name][i]! / (1 - this.b2 ** t);
        p[i] = p[i]! - (this.lr * mHat) / (Math.sqrt(vHat) + this.eps);
      }
    }
  }
}

function makeVariables(): Record<Name, tf.Variable> {
  return {
    w: tf.variable(tf.tensor2d(problem.w.init, [2, 2])),
    u: tf.variable(tf.tensor1d(problem.u.init)),
  };
}

function lossOf(vars: Record<Name, tf.Variable>, names: Name[] = ['w', 'u']): tf.Scalar {
  return tf.tidy(() =>
    tf.addN(
      names.map((name) => {
        const { a, b } = problem[name];
        const p = tf.reshape(vars[name], [-1]);
        return tf.sum(tf.add(tf.mul(tf.tensor1d(a), tf.square(p)), tf.mul(tf.tensor1d(b), p)));
      }),
    ),
  ) as tf.Scalar;
}

function expectClose(got: ArrayLike<number>, want: readonly number[], tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(tol);
}

describe.each(TEST_BACKENDS)('TorchAdamOptimizer on %s', (backend) => {
  /** Three `minimize` steps against the reference, compared after every step. */
  function checkThreeSteps(learningRate: number, weightDecay: number, epsilon?: number) {
    const vars = makeVariables();
    const optimizer = torchAdam({ learningRate, weightDecay, ...(epsilon ? { epsilon } : {}) });
    const reference = new ReferenceAdam(learningRate, weightDecay, epsilon);
    for (let step = 0; step < 3; step++) {
      optimizer.minimize(() => lossOf(vars), false, [vars.w, vars.u]);
      reference.step(['w', 'u']);
      expectClose(vars.w.dataSync(), reference.p.w);
      expectClose(vars.u.dataSync(), reference.p.u);
    }
    optimizer.dispose();
    tf.dispose([vars.w, vars.u]);
    return reference;
  }

  it('matches torch.optim.Adam with weight decay for 3 steps via minimize', async () => {
    await useBackend(backend);
    const reference = checkThreeSteps(0.1, 0.05);
    // Weight decay must matter here: without it u[0] moves up instead of down.
    expect(reference.p.u[0]!).toBeLessThan(problem.u.init[0]! - 0.2);
    const noDecay = new ReferenceAdam(0.1, 0);
    for (let step = 0; step < 3; step++) noDecay.step(['w', 'u']);
    expect(noDecay.p.u[0]!).toBeGreaterThan(problem.u.init[0]! + 0.2);
  });

  it('adds epsilon after the bias-corrected sqrt (checked with a large epsilon)', async () => {
    await useBackend(backend);
    checkThreeSteps(0.1, 0.05, 0.5);
  });

  it('accepts a name->gradient map and a list, and counts steps per variable', async () => {
    await useBackend(backend);
    const vars = makeVariables();
    const optimizer = torchAdam({ learningRate: 0.05, weightDecay: 0.1 });
    const reference = new ReferenceAdam(0.05, 0.1);
    const grads = (names: Name[]) =>
      tf.variableGrads(
        () => lossOf(vars, names),
        names.map((n) => vars[n]),
      );
    // Step 1: both, as a map.
    let g = grads(['w', 'u']);
    optimizer.applyGradients(g.grads);
    reference.step(['w', 'u']);
    tf.dispose([g.value, ...Object.values(g.grads)]);
    // Step 2: only u, as a list (w has no gradient, so PyTorch skips it and its step count).
    g = grads(['u']);
    optimizer.applyGradients([
      { name: vars.u.name, tensor: g.grads[vars.u.name] },
      { name: vars.w.name, tensor: null },
    ]);
    reference.step(['u']);
    tf.dispose([g.value, ...Object.values(g.grads)]);
    // Step 3: both again; w is at its own step 2, u at step 3.
    g = grads(['w', 'u']);
    optimizer.applyGradients(g.grads);
    reference.step(['w', 'u']);
    tf.dispose([g.value, ...Object.values(g.grads)]);
    expectClose(vars.w.dataSync(), reference.p.w);
    expectClose(vars.u.dataSync(), reference.p.u);
    optimizer.dispose();
    tf.dispose([vars.w, vars.u]);
  });

  it('equals tfjs Adam when weight decay is 0 and epsilon is the same', async () => {
    await useBackend(backend);
    const ours = makeVariables();
    const theirs = makeVariables();
    const a = torchAdam({ learningRate: 0.02, epsilon: 1e-7 });
    const b = tf.train.adam(0.02, 0.9, 0.999, 1e-7);
    for (let step = 0; step < 5; step++) {
      a.minimize(() => lossOf(ours), false, [ours.w, ours.u]);
      b.minimize(() => lossOf(theirs), false, [theirs.w, theirs.u]);
    }
    expectClose(ours.w.dataSync(), Array.from(theirs.w.dataSync()));
    expectClose(ours.u.dataSync(), Array.from(theirs.u.dataSync()));
    a.dispose();
    b.dispose();
    tf.dispose([ours.w, ours.u, theirs.w, theirs.u]);
  });

  it('creates its state once and frees it on dispose', async () => {
    await useBackend(backend);
    const vars = makeVariables();
    await expectNoLeak(() => {
      const optimizer = torchAdam({ learningRate: 0.01, weightDecay: 5e-5 });
      const before = tf.memory().numTensors;
      optimizer.minimize(() => lossOf(vars), false, [vars.w, vars.u]);
      // Two moments per trained variable.
      expect(tf.memory().numTensors).toBe(before + 4);
      for (let step = 0; step < 50; step++) {
        const cost = optimizer.minimize(() => lossOf(vars), true, [vars.w, vars.u]);
        cost?.dispose();
      }
      expect(tf.memory().numTensors).toBe(before + 4);
      optimizer.dispose();
    });
    tf.dispose([vars.w, vars.u]);
  });

  it('trains a tfjs-layers model through compile/fit', async () => {
    await useBackend(backend);
    const model = tfl.sequential({
      layers: [tfl.layers.dense({ units: 1, inputShape: [2], kernelInitializer: 'zeros' })],
    });
    const optimizer = new TorchAdamOptimizer({ learningRate: 0.1 });
    model.compile({ optimizer, loss: 'meanSquaredError' });
    const x = tf.tensor2d([
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    const y = tf.tensor2d([[1], [2], [3]]);
    const history = await model.fit(x, y, { epochs: 30, batchSize: 3, shuffle: false, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! / 2);
    model.dispose();
    optimizer.dispose();
    tf.dispose([x, y]);
  });

  it('rejects bad settings and unknown variables', async () => {
    await useBackend(backend);
    expect(() => torchAdam({ beta1: 1 })).toThrow(
      /gradient-routing: invalid Adam setting: beta1 1/,
    );
    expect(() => torchAdam({ weightDecay: -1 })).toThrow(/weightDecay -1/);
    const optimizer = torchAdam();
    const g = tf.zeros([2]);
    expect(() => optimizer.applyGradients({ 'no-such-variable': g })).toThrow(
      /gradient-routing: TorchAdamOptimizer got a gradient for "no-such-variable"/,
    );
    const v = tf.variable(tf.zeros([3]));
    expect(() => optimizer.applyGradients({ [v.name]: g })).toThrow(/shape \[2\] for variable/);
    optimizer.dispose();
    tf.dispose([g, v]);
  });
});
