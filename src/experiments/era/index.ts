/**
 * Expand-Route-Ablate (ERA, Cloud et al. 2024, Section 4.2) on a small transformer trained on
 * labelled text: the runner, its presets, and the summary. Browser-safe: it takes documents,
 * not files (`loadWordNetGlosses` / `loadLabelledCorpus` in `gradient-routing/node` read them).
 * Each step of the protocol is its own module: `config` (types, presets, checks), `data` (split,
 * vocabulary, batches, losses), `training`, `attack`, `runner` and `summary`.
 */
export {
  ERA_METHODS,
  type EraCallbacks,
  type EraConfig,
  type EraDataStats,
  type EraDocument,
  type EraForgetTokens,
  type EraL1Reduction,
  type EraLosses,
  type EraMethod,
  type EraPresetName,
  type EraProgress,
  type EraResult,
  type EraRun,
  type EraRunDetails,
  eraPresets,
  validateEraConfig,
} from './config.js';
export { documentLoss } from './data.js';
export {
  checkpointSteps,
  type EraCheckpoint,
  type EraLayerActivation,
  type EraLayerGradient,
  type EraLocalisation,
  type EraRoutingCoverage,
  type EraUnitActivity,
  expansionActivations,
  forgetGradientProbe,
  ROUTED_WEIGHT,
} from './localisation.js';
export { eraRunPlan, eraTotalSteps, runEraExperiment } from './runner.js';
export {
  type EraSummary,
  formatEraLocalisationTable,
  formatEraTable,
  summarizeEra,
} from './summary.js';
