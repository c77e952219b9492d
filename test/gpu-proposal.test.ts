// A GPU by default: on a real GPU the CLI proposes the paper preset with the training time
// measured on it; never on a software adapter or when the paper preset is already chosen.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  formatDuration,
  type PaperPresetProposalInput,
  proposePaperPreset,
} from '../src/experiments/gpu-proposal.js';
import { splitPresets, timeSplitSteps } from '../src/experiments/split.js';
import { expectNoLeak, useBackend } from './helpers/backends.js';
import { columnBlockImages } from './helpers/random.js';

const H200 = { vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H200' };
const LLVMPIPE = { vendor: 'mesa', device: 'llvmpipe-llvm-15-0-6-256-bits-' };

/** A step timer that records its calls and reports `seconds` for `steps` steps. */
function fakeTimer(steps: number, seconds: number) {
  const calls: number[] = [];
  return {
    calls,
    measure: async () => {
      calls.push(1);
      return { steps, seconds };
    },
  };
}

function input(
  overrides: Partial<PaperPresetProposalInput>,
  timer = fakeTimer(5, 0.5),
): PaperPresetProposalInput {
  return {
    adapter: { info: H200, software: false },
    chosenPreset: 'quick',
    trainCount: 60000,
    measure: timer.measure,
    ...overrides,
  };
}

describe('proposePaperPreset', () => {
  it('on a real GPU, extrapolates the measured steps to the paper preset’s 200 epochs', async () => {
    // 60 000 examples in batches of 2048: 29 full batches and one of 608, 30 steps an epoch.
    const timer = fakeTimer(5, 0.5);
    const proposal = await proposePaperPreset(input({}, timer));
    expect(timer.calls).toHaveLength(1);
    expect(proposal).not.toBeNull();
    expect(proposal!.totalSteps).toBe(200 * 30);
    expect(proposal!.expectedSeconds).toBeCloseTo(0.1 * 6000, 9);
    expect(proposal!.message).toBe(
      "a GPU was found (nvidia, hopper, NVIDIA H200): --preset paper, the paper's configuration " +
        '(200 epochs of batch 2048), would train for about 10 min here, estimated from 5 measured ' +
        'steps of its model (100.0 ms per step × 6000 steps).',
    );
  });

  it('scales with the measured time and the number of examples', async () => {
    const slow = await proposePaperPreset(input({ trainCount: 4096 }, fakeTimer(4, 8)));
    // 4096 examples: 2 steps an epoch, 400 steps at 2 s each.
    expect(slow!.totalSteps).toBe(400);
    expect(slow!.expectedSeconds).toBeCloseTo(800, 9);
    expect(slow!.message).toContain('about 13 min here, estimated from 4 measured steps');
  });

  it('proposes nothing, and measures nothing, without a real GPU or when paper is chosen', async () => {
    for (const overrides of [
      { adapter: null },
      { adapter: { info: LLVMPIPE } },
      { adapter: { info: H200, software: true } },
      { adapter: { info: { ...H200, isFallbackAdapter: true } } },
      { chosenPreset: 'paper' as const },
    ]) {
      const timer = fakeTimer(5, 0.5);
      expect(await proposePaperPreset(input(overrides, timer))).toBeNull();
      expect(timer.calls).toEqual([]);
    }
  });

  it('formats durations in seconds, minutes and hours', () => {
    expect(formatDuration(42.4)).toBe('42 s');
    expect(formatDuration(600)).toBe('10 min');
    expect(formatDuration(95)).toBe('1.6 min');
    expect(formatDuration(3 * 3600)).toBe('3 h');
  });
});

describe('timeSplitSteps', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('times the given number of steps of the configuration’s model and leaks nothing', async () => {
    const train = columnBlockImages(40, 2);
    const config = {
      ...splitPresets.smoke,
      partition: [[0], [1, 2]],
      fit: { ...splitPresets.smoke.fit, batchSize: 16 },
    };
    let timing: Awaited<ReturnType<typeof timeSplitSteps>> | undefined;
    await expectNoLeak(async () => {
      timing = await timeSplitSteps(config, train, { warmupSteps: 1, steps: 3 });
    });
    expect(timing!.steps).toBe(3);
    expect(timing!.seconds).toBeGreaterThan(0);
    await expect(timeSplitSteps(config, train, { steps: 0 })).rejects.toThrow(/steps must be/);
  });

  it('really trains: each more step (timed or warm-up) runs one more training step’s kernels', async () => {
    const train = columnBlockImages(40, 2);
    const config = { ...splitPresets.smoke, partition: [[0], [1, 2]] };
    const kernelsOf = async (warmupSteps: number, steps: number) =>
      (
        await tf.profile(async () => {
          await timeSplitSteps(config, train, { warmupSteps, steps });
          return [];
        })
      ).kernels.length;
    const one = await kernelsOf(0, 1);
    const two = await kernelsOf(0, 2);
    const three = await kernelsOf(0, 3);
    const warmed = await kernelsOf(1, 2);
    expect(two - one).toBeGreaterThan(50);
    expect(three - two).toBe(two - one);
    expect(warmed).toBe(three);
  });
});
