// The in-browser split autoencoder: trains the paper's MNIST split (section 4.1) in the tab, or
// loads a model saved by `npm run mnist-split -- --save-model DIR`, and lets the user switch
// latent dims off. Uses only the library's public entry points.
//
// Automation contract (the browser tests rely on it):
//   ?preset=smoke&autostart=1   starts training at once (also: backend=, epochs=, train=, test=)
//   document.body.dataset.state loading | ready | training | done | error
//   [data-testid=backend]       the backend in use
//   [data-testid=split-low], [data-testid=split-high]   the split ratios, when done
//   [data-testid=error]         the error's message
//   document.body.dataset.trainSteps, .trainSeconds   the training's size and time, when done

// The GPU backends register themselves when imported; selectBackend then finds them.
import '@tensorflow/tfjs-backend-webgpu';
import '@tensorflow/tfjs-backend-webgl';
import * as tf from '@tensorflow/tfjs-core';
import {
  type Autoencoder,
  type BackendChoice,
  type BackendName,
  GradientRoutingError,
  type ImageDataset,
  loadAutoencoder,
  perLabelErrors,
  selectBackend,
  splitRatio,
} from 'gradient-routing';
import {
  runSplitExperiment,
  type SplitExperimentConfig,
  type SplitPresetName,
  splitPresets,
  summarizeSplitExperiment,
} from 'gradient-routing/experiments';
import { AblationView, latentHalves } from './ablation.js';
import {
  automaticOrder,
  type BackendSurvey,
  type BrowserBackend,
  surveyBackends,
} from './backends.js';
import { type BarSeries, type CurvePoint, drawLossCurve, drawPerDigitBars } from './charts.js';
import { loadMnistSplit, PageError } from './data.js';
import { watchWebGpuDevice, webGpuFailure } from './gpu-errors.js';

type PageState = 'loading' | 'ready' | 'training' | 'done' | 'error';

const PRESET_HELP: Record<SplitPresetName, string> = {
  smoke:
    '2,048 training digits, one epoch, a tiny network: checks that everything runs, in seconds. Its numbers mean little.',
  quick:
    'All 60,000 training digits, 9 epochs of batch 128, encoder [512, 128]; the split is measured by probes on the frozen encoder. About 15 minutes on WebAssembly with two CPU cores; fastest on a GPU.',
  paper:
    "The paper's configuration: encoder [2048, 512], 200 epochs of batch 2048, half-decoders trained alongside. Many hours on a CPU; meant for a fast GPU.",
};

const BACKEND_LABELS: Record<BrowserBackend, string> = {
  webgpu: 'WebGPU',
  webgl: 'WebGL',
  wasm: 'WebAssembly',
  cpu: 'plain JavaScript (cpu)',
};

/** The digits of each group, as the experiment routes them. */
const PARTITION = [
  [0, 1, 2, 3, 4],
  [5, 6, 7, 8, 9],
];

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new PageError(`The page is missing its #${id} element; rebuild it.`);
  return found as T;
}

const ui = {
  preset: element<HTMLSelectElement>('preset'),
  presetHelp: element<HTMLParagraphElement>('preset-help'),
  backendChoice: element<HTMLSelectElement>('backend-choice'),
  backend: element<HTMLElement>('backend'),
  backendNote: element<HTMLElement>('backend-note'),
  train: element<HTMLButtonElement>('train'),
  stop: element<HTMLButtonElement>('stop'),
  modelFiles: element<HTMLInputElement>('model-files'),
  loadLabel: element<HTMLLabelElement>('load-label'),
  error: element<HTMLDivElement>('error'),
  progress: element<HTMLProgressElement>('progress'),
  status: element<HTMLParagraphElement>('status'),
  progressText: element<HTMLParagraphElement>('progress-text'),
  lossCurve: element<HTMLElement>('loss-curve') as unknown as SVGSVGElement,
  perDigit: element<HTMLElement>('per-digit') as unknown as SVGSVGElement,
  splitLow: element<HTMLElement>('split-low'),
  splitHigh: element<HTMLElement>('split-high'),
  ratioSource: element<HTMLElement>('ratio-source'),
};

const ablation = new AblationView(
  element<HTMLCanvasElement>('originals'),
  element<HTMLCanvasElement>('reconstructions'),
  element<HTMLElement>('switches'),
  (error) => showError(error),
);

/** The model whose reconstructions are shown; disposed when another replaces it. */
let currentModel: Autoencoder | undefined;
let activeBackend: BackendName | undefined;
let stopRequested = false;
/** Where training stands ("Epoch 2 of 9, step 700 of 4221"), for the line left after a stop. */
let trainPosition = '';

/** Thrown from the progress callback to stop training; `runSplitExperiment` cleans up. */
class StopTraining extends Error {}

/** Stops a run whose numbers came from a failed WebGPU device (see gpu-errors.ts). */
function throwIfGpuFailed(): void {
  const failure = webGpuFailure();
  if (failure !== undefined) throw failure;
}

function setState(state: PageState): void {
  const focused = document.activeElement;
  // Disabling or hiding the focused control would drop keyboard focus to the page's start.
  const focusWillDrop = focused === null || focused === document.body || focused === ui.train;
  document.body.dataset.state = state;
  const busy = state === 'loading' || state === 'training';
  ui.train.disabled = busy;
  ui.preset.disabled = busy;
  ui.backendChoice.disabled = busy;
  ui.modelFiles.disabled = busy;
  ui.loadLabel.toggleAttribute('aria-disabled', busy);
  ui.stop.hidden = state !== 'training';
  if (state === 'training' && focusWillDrop) ui.stop.focus();
  if (!busy && (focusWillDrop || focused === ui.stop)) ui.train.focus();
}

function setStatus(text: string): void {
  ui.status.textContent = text;
}

/** The message of an error in plain words, without the library's prefix. */
function plainMessage(error: unknown): string {
  if (error instanceof PageError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  const plain = message.replace(/^gradient-routing: /, '');
  if (error instanceof GradientRoutingError) return plain;
  return `Something went wrong: ${plain}`;
}

/** Replaces the per-step line, whose "training ends in about …" would outlive the run. */
function settleProgressText(how: string): void {
  ui.progressText.textContent = trainPosition === '' ? '' : `${trainPosition}: ${how}.`;
  trainPosition = '';
}

function showError(error: unknown): void {
  console.warn(error);
  ui.error.textContent = plainMessage(error);
  ui.error.hidden = false;
  settleProgressText('stopped by an error');
  setStatus('Stopped by an error (see above).');
  setState('error');
}

/**
 * A failed WebGPU device. While a run is on, the message shows at once and the run stops at its
 * next step (or at its end), which then shows the error as any other; when idle, it shows now.
 */
function showGpuFailure(error: PageError): void {
  const state = document.body.dataset.state;
  if (state !== 'loading' && state !== 'training') {
    showError(error);
    return;
  }
  ui.error.textContent = error.message;
  ui.error.hidden = false;
  setStatus('Stopping: the GPU failed (see above)…');
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '…';
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** What the browser offers; filled in before the first backend is chosen. */
let survey: Record<BrowserBackend, BackendSurvey> | undefined;

/** Marks the backends that cannot work here, and those that would run on a software renderer. */
function markBackendOptions(found: Record<BrowserBackend, BackendSurvey>): void {
  for (const option of Array.from(ui.backendChoice.options)) {
    if (option.value === 'auto') continue;
    const name = option.value as BrowserBackend;
    const { unavailable, software } = found[name];
    if (unavailable !== undefined) {
      option.disabled = true;
      option.textContent = `${BACKEND_LABELS[name]} (${unavailable})`;
    } else if (software) {
      option.textContent = `${BACKEND_LABELS[name]} (software renderer, no GPU: slow)`;
    }
  }
}

const WASM_PATHS = () => new URL('tfjs-wasm/', document.baseURI).href;

/**
 * Activates the chosen backend and shows which. "Fastest available" tries them in
 * {@link automaticOrder}: a GPU backend first only when the GPU is real hardware.
 */
async function useBackend(choice: BackendChoice): Promise<BackendName> {
  ui.backend.textContent = '…';
  survey ??= await surveyBackends();
  let name: BackendName | undefined;
  if (choice === 'auto') {
    const failures: string[] = [];
    for (const candidate of automaticOrder(survey)) {
      try {
        name = await selectBackend({ backend: candidate, wasmPaths: WASM_PATHS() });
        break;
      } catch (error) {
        failures.push(plainMessage(error));
      }
    }
    if (name === undefined) {
      throw new PageError(
        `No TensorFlow.js backend could start in this browser:\n${failures.join('\n')}`,
      );
    }
  } else {
    name = await selectBackend({ backend: choice, wasmPaths: WASM_PATHS() });
  }
  activeBackend = name;
  // selectBackend has installed the library's WebGPU kernels; this makes the device's errors loud.
  watchWebGpuDevice(showGpuFailure);
  ui.backend.textContent = name;
  const found = survey[name as BrowserBackend];
  ui.backendNote.textContent =
    name === 'wasm'
      ? crossOriginIsolated
        ? '(on the CPU, multi-threaded: the page is cross-origin isolated)'
        : '(on the CPU, one thread: the page is not cross-origin isolated)'
      : name === 'cpu'
        ? '(plain JavaScript: the slowest)'
        : found?.software
          ? `(no GPU: a software renderer${found.device ? `, ${found.device}` : ''})`
          : `(GPU${found?.device ? `: ${found.device}` : ''})`;
  return name;
}

function readPositiveInteger(params: URLSearchParams, name: string): number | undefined {
  const text = params.get(name);
  if (text === null) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    throw new PageError(`The address gives ${name}=${text}; use a whole number of at least 1.`);
  }
  return value;
}

/** The preset's configuration with the overrides of the address (epochs=, train=, test=). */
function configFor(preset: SplitPresetName, params: URLSearchParams): SplitExperimentConfig {
  const base = splitPresets[preset];
  const epochs = readPositiveInteger(params, 'epochs');
  const trainLimit = readPositiveInteger(params, 'train') ?? base.trainLimit;
  const testLimit = readPositiveInteger(params, 'test') ?? base.testLimit;
  return {
    ...base,
    fit: { ...base.fit, ...(epochs === undefined ? {} : { epochs }) },
    ...(trainLimit === undefined ? {} : { trainLimit }),
    ...(testLimit === undefined ? {} : { testLimit }),
  };
}

function downloadStatus(what: string, received: number, total: number): void {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  setStatus(`Loading ${what}: ${mb(received)} of ${mb(total)} MB (compressed)`);
}

/** One test digit of each class (the first in the test set), flattened, for the grid. */
function oneDigitEach(test: ImageDataset): Float32Array {
  const pixels = test.rows * test.cols;
  const picked = new Float32Array(10 * pixels);
  for (let digit = 0; digit < 10; digit++) {
    const index = test.labels.indexOf(digit);
    if (index < 0) throw new PageError(`The test set has no digit ${digit}; load all of it.`);
    picked.set(test.images.subarray(index * pixels, (index + 1) * pixels), digit * pixels);
  }
  return picked;
}

function showRatios(ratios: { low?: number; high?: number }, source: string): void {
  ui.splitLow.textContent = ratios.low === undefined ? '–' : ratios.low.toFixed(3);
  ui.splitHigh.textContent = ratios.high === undefined ? '–' : ratios.high.toFixed(3);
  ui.ratioSource.textContent = source;
}

function showPerDigit(decoder: number[], halves: { low?: number[]; high?: number[] }): void {
  const series: BarSeries[] = [{ name: 'decoder (all dims)', color: '#6b7280', values: decoder }];
  if (halves.low) series.push({ name: 'dims 0–15 only', color: '#2f6fdf', values: halves.low });
  if (halves.high) series.push({ name: 'dims 16–31 only', color: '#e07a1f', values: halves.high });
  drawPerDigitBars(ui.perDigit, series);
}

function resetResults(): void {
  delete document.body.dataset.trainSteps;
  delete document.body.dataset.trainSeconds;
  showRatios({}, '');
  drawPerDigitBars(ui.perDigit, []);
  ablation.clear();
  currentModel?.dispose();
  currentModel = undefined;
}

async function train(params: URLSearchParams): Promise<void> {
  clearError();
  stopRequested = false;
  setState('loading');
  resetResults();
  const preset = ui.preset.value as SplitPresetName;
  const config = configFor(preset, params);
  const backend = await useBackend(ui.backendChoice.value as BackendChoice);
  const started = performance.now();
  const train = await loadMnistSplit('train', config.trainLimit, downloadStatus);
  const test = await loadMnistSplit('test', config.testLimit, downloadStatus);
  setState('training');
  ui.progressText.textContent = '';
  trainPosition = '';
  const losses: CurvePoint[] = [];
  const synced: Array<{ step: number; time: number }> = [];
  let trained = { epochs: config.fit.epochs, steps: 0 };
  const trainedText = () =>
    `Training finished: ${trained.steps} steps, ${trained.epochs} ${trained.epochs === 1 ? 'epoch' : 'epochs'}.`;
  drawLossCurve(ui.lossCurve, losses);
  let trainStarted = performance.now();
  setStatus(`Training on ${train.count} digits with ${backend}…`);
  const result = await runSplitExperiment({ train, test }, config, {
    onPhase: (phase) => {
      if (phase === 'train') trainStarted = performance.now();
      // The ETA line would otherwise read "training ends in about 0 s" to the end of the run.
      if (phase !== 'train') {
        trainPosition = '';
        ui.progressText.textContent = trainedText();
      }
      if (phase === 'evaluate') setStatus('Measuring the per-digit errors on the test digits…');
      if (phase === 'probe') {
        setStatus('Training the half-decoders on the frozen encoder to measure the split…');
      }
    },
    onTrainProgress: (p) => {
      if (stopRequested) throw new StopTraining('stopped');
      throwIfGpuFailed();
      const total = p.epochs * p.stepsPerEpoch;
      const now = performance.now();
      trained = { epochs: p.epochs, steps: p.totalSteps };
      // The rate over the last few loss reads: only a read waits for the device, so between
      // reads a GPU backend's steps are merely queued; and the first steps compile shaders.
      if (p.loss !== undefined) synced.push({ step: p.totalSteps, time: now });
      const from = synced.length > 1 ? synced[Math.max(0, synced.length - 6)]! : undefined;
      const last = synced[synced.length - 1];
      const perSecond =
        from !== undefined && last !== undefined && last.time > from.time
          ? ((last.step - from.step) * 1000) / (last.time - from.time)
          : (p.totalSteps * 1000) / (now - trainStarted);
      ui.progress.value = p.totalSteps / total;
      trainPosition = `Epoch ${p.epoch} of ${p.epochs}, step ${p.totalSteps} of ${total}`;
      ui.progressText.textContent =
        `${trainPosition} · ${perSecond.toFixed(1)} steps/s · ` +
        `training ends in about ${formatDuration((total - p.totalSteps) / perSecond)}`;
      if (p.loss !== undefined) {
        losses.push({ step: p.totalSteps, loss: p.loss });
        drawLossCurve(ui.lossCurve, losses);
      }
    },
  });
  const gpuFailure = webGpuFailure();
  if (gpuFailure !== undefined) {
    result.model.dispose(); // trained on a failed device: nothing in it to show
    throw gpuFailure;
  }
  const summary = summarizeSplitExperiment(result, {
    preset,
    backend,
    wallSeconds: (performance.now() - started) / 1000,
  });
  currentModel = result.model;
  const source =
    summary.halfDecoders === 'certificates'
      ? '(Here: half-decoders trained alongside the model.)'
      : '(Here: half-decoders trained afterwards on the frozen encoder, "probes".)';
  showRatios(summary.splitRatio, source);
  const { low, high } = summary.perDigit;
  showPerDigit(summary.perDigit.decoder, {
    ...(low === undefined ? {} : { low }),
    ...(high === undefined ? {} : { high }),
  });
  await ablation.show(result.model, oneDigitEach(test));
  throwIfGpuFailed();
  ui.progress.value = 1;
  ui.progressText.textContent = trainedText();
  document.body.dataset.trainSteps = String(summary.steps);
  document.body.dataset.trainSeconds = String(summary.trainSeconds);
  setStatus(
    `Done: ${summary.steps} steps in ${summary.trainSeconds.toFixed(1)} s ` +
      `(${(summary.steps / summary.trainSeconds).toFixed(1)} steps/s on ${backend}), ` +
      `decoder error ${summary.decoderMae.toFixed(4)}.`,
  );
  setState('done');
}

/** Loads a model saved by `npm run mnist-split -- --save-model DIR` from the picked files. */
async function loadModel(files: File[]): Promise<void> {
  clearError();
  const json = files.find((file) => file.name.endsWith('.json'));
  const weights = files.filter((file) => !file.name.endsWith('.json'));
  if (json === undefined || weights.length === 0) {
    throw new PageError(
      `Pick both files of the saved model, model.json and weights.bin, at once (you picked: ${files.map((f) => f.name).join(', ') || 'nothing'}).`,
    );
  }
  setState('loading');
  resetResults();
  drawLossCurve(ui.lossCurve, []);
  ui.progress.value = 0;
  await useBackend(ui.backendChoice.value as BackendChoice);
  setStatus(`Reading ${json.name}…`);
  const model = await loadAutoencoder(tf.io.browserFiles([json, ...weights]));
  currentModel = model;
  if (model.config.inputDim !== 784) {
    throw new PageError(
      `This model reads ${model.config.inputDim} inputs per image, not MNIST's 784 (28×28); load a model trained on MNIST.`,
    );
  }
  const test = await loadMnistSplit('test', undefined, downloadStatus);
  setStatus('Measuring the per-digit errors on the 10,000 test digits…');
  const x = tf.tensor2d(test.images, [test.count, 784]);
  let errors: Awaited<ReturnType<typeof perLabelErrors>>;
  try {
    errors = await perLabelErrors(model, x, test.labels, { numClasses: 10 });
  } finally {
    x.dispose();
  }
  const halves = latentHalves(model.config.latentDim);
  const certified = errors.certificates.length === 2;
  const [low, high] = errors.certificates;
  if (certified) {
    showRatios(
      { low: splitRatio(low!, PARTITION, 0).ratio, high: splitRatio(high!, PARTITION, 1).ratio },
      '(Here: the loaded model’s own half-decoders.)',
    );
  } else {
    showRatios(
      {},
      `(This model was saved without half-decoders, so its split is not measured here; the ` +
        `"mnist-split" run that trained it printed the probes' ratios. The switches below still show it.)`,
    );
  }
  showPerDigit(errors.decoder, certified ? { low: low!, high: high! } : {});
  await ablation.show(model, oneDigitEach(test));
  throwIfGpuFailed();
  ui.progress.value = 1;
  ui.progressText.textContent = '';
  setStatus(
    `Loaded a model with latent ${model.config.latentDim} (halves ${halves
      .map((h) => `${h.start}–${h.end - 1}`)
      .join(' and ')}), encoder [${model.config.hidden.join(', ')}], on ${activeBackend}.`,
  );
  setState('done');
}

function run(task: Promise<void>): void {
  task.catch((error: unknown) => {
    if (error instanceof StopTraining) {
      settleProgressText('stopped');
      setStatus('Training stopped. Press Train to start again.');
      setState('ready');
      return;
    }
    // A dead GPU makes later calls fail in odd ways; its own message says what happened.
    showError(webGpuFailure() ?? error);
  });
}

async function start(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const preset = params.get('preset');
  if (preset !== null) {
    if (!(preset in splitPresets)) {
      throw new PageError(`The address asks for preset "${preset}"; use smoke, quick or paper.`);
    }
    ui.preset.value = preset;
  }
  const backend = params.get('backend');
  if (backend !== null) {
    if (!Array.from(ui.backendChoice.options).some((o) => o.value === backend)) {
      throw new PageError(
        `The address asks for backend "${backend}"; use auto, webgpu, webgl, wasm or cpu.`,
      );
    }
    ui.backendChoice.value = backend;
  }
  const showPresetHelp = () => {
    ui.presetHelp.textContent = PRESET_HELP[ui.preset.value as SplitPresetName];
  };
  showPresetHelp();
  ui.preset.addEventListener('change', showPresetHelp);
  ui.train.addEventListener('click', () => run(train(params)));
  ui.stop.addEventListener('click', () => {
    stopRequested = true;
    setStatus('Stopping after this step…');
  });
  ui.modelFiles.addEventListener('change', () => {
    const files = Array.from(ui.modelFiles.files ?? []);
    ui.modelFiles.value = '';
    run(loadModel(files));
  });
  ui.backendChoice.addEventListener('change', () =>
    run(
      useBackend(ui.backendChoice.value as BackendChoice).then((name) => {
        clearError();
        setStatus(`Switched to ${name}.`);
        setState(currentModel === undefined ? 'ready' : 'done');
      }),
    ),
  );
  drawLossCurve(ui.lossCurve, []);
  drawPerDigitBars(ui.perDigit, []);
  survey = await surveyBackends();
  markBackendOptions(survey);
  if (params.get('autostart') === '1') {
    await train(params);
    return;
  }
  await useBackend(ui.backendChoice.value as BackendChoice);
  setStatus('Ready: pick a preset and press Train, or load a saved model.');
  setState('ready');
}

window.addEventListener('unhandledrejection', (event) => showError(event.reason));
run(start());
