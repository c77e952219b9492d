import {
  describeAdapter,
  type GpuAdapterDescription,
  isSoftwareAdapter,
} from '../core/backend/adapter.js';
import { countStepsPerEpoch } from '../core/training/fit.js';
import { type SplitPresetName, type StepTiming, splitPresets } from './split.js';

/** Inputs of {@link proposePaperPreset}. */
export interface PaperPresetProposalInput {
  /** The WebGPU adapter training runs on, or null when the backend is not WebGPU. */
  adapter: { readonly info: GpuAdapterDescription; readonly software?: boolean } | null;
  /** The preset the user chose; `'paper'` needs no proposal. */
  chosenPreset: SplitPresetName;
  /** Training examples the run has (60 000 for MNIST). */
  trainCount: number;
  /**
   * Times a few warm steps of the paper preset's model on this device, e.g.
   * `() => timeSplitSteps(splitPresets.paper, train)`. Called only when a proposal is made.
   */
  measure: () => Promise<StepTiming>;
}

/** A proposal to run the paper preset, with the training time it was measured to need. */
export interface PaperPresetProposal {
  /** One line for the user. */
  message: string;
  /** Expected training seconds of the paper preset: measured seconds per step × its steps. */
  expectedSeconds: number;
  /** Steps the paper preset trains for with `trainCount` examples. */
  totalSteps: number;
  /** What the estimate rests on. */
  measured: StepTiming;
}

/** `seconds` as a short duration: seconds, minutes or hours, two significant figures. */
export function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Number(seconds.toPrecision(2))} s`;
  if (seconds < 90 * 60) return `${Number((seconds / 60).toPrecision(2))} min`;
  return `${Number((seconds / 3600).toPrecision(2))} h`;
}

/**
 * On a real (not software) GPU, proposes the paper preset, with the training time it would take
 * here: a few warm steps of its model are timed on this device and extrapolated to the preset's
 * steps. Returns null, measuring nothing, when there is no GPU adapter, it is a software one
 * (llvmpipe, SwiftShader, …), or the paper preset was chosen already.
 */
export async function proposePaperPreset(
  input: PaperPresetProposalInput,
): Promise<PaperPresetProposal | null> {
  const { adapter, chosenPreset, trainCount } = input;
  if (adapter === null || adapter.software === true || isSoftwareAdapter(adapter.info)) {
    return null;
  }
  if (chosenPreset === 'paper') return null;
  const paper = splitPresets.paper;
  const measured = await input.measure();
  const totalSteps = paper.fit.epochs * countStepsPerEpoch(trainCount, paper.fit.batchSize);
  const secondsPerStep = measured.seconds / measured.steps;
  const expectedSeconds = secondsPerStep * totalSteps;
  const message =
    `a GPU was found (${describeAdapter(adapter.info)}): --preset paper, the paper's ` +
    `configuration (${paper.fit.epochs} epochs of batch ${paper.fit.batchSize}), would train ` +
    `for about ${formatDuration(expectedSeconds)} here, estimated from ${measured.steps} ` +
    `measured steps of its model (${(secondsPerStep * 1000).toFixed(1)} ms per step × ` +
    `${totalSteps} steps).`;
  return { message, expectedSeconds, totalSteps, measured };
}
