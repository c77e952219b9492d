// The reconstruction grid and its switches: one switch per latent dim and one per half. A switch
// turned off zeroes its dims in the latent (`ablate`) before the decoder runs, and the
// reconstructions are redrawn at once.
import * as tf from '@tensorflow/tfjs-core';
import { type Autoencoder, ablate } from 'gradient-routing';
import { imageGrid, type NumericArray } from 'gradient-routing/experiments';

/** How the latent is split: each half's dims and the digits routed to it. */
export interface LatentHalf {
  key: 'low' | 'high';
  start: number;
  end: number;
  digits: string;
}

/** The two halves of a latent of `latentDim` dims, as the split experiment routes them. */
export function latentHalves(latentDim: number): LatentHalf[] {
  const middle = Math.floor(latentDim / 2);
  return [
    { key: 'low', start: 0, end: middle, digits: '0–4' },
    { key: 'high', start: middle, end: latentDim, digits: '5–9' },
  ];
}

/** Consecutive switched-off dims as `[start, end)` regions, the form `ablate` takes. */
export function offRegions(off: ReadonlySet<number>): Array<readonly [number, number]> {
  const dims = [...off].sort((a, b) => a - b);
  const regions: Array<[number, number]> = [];
  for (const dim of dims) {
    const last = regions[regions.length - 1];
    if (last !== undefined && last[1] === dim) last[1] = dim + 1;
    else regions.push([dim, dim + 1]);
  }
  return regions;
}

function drawImages(canvas: HTMLCanvasElement, images: NumericArray): void {
  const grid = imageGrid({
    rows: [images],
    imageWidth: 28,
    imageHeight: 28,
    range: [-1, 1],
    scale: 2,
    padding: 2,
    background: [217, 221, 228],
  });
  canvas.width = grid.width;
  canvas.height = grid.height;
  const context = canvas.getContext('2d');
  if (context === null) return;
  context.putImageData(
    new ImageData(Uint8ClampedArray.from(grid.data), grid.width, grid.height),
    0,
    0,
  );
}

/** Owns the test digits shown, the switches and the model they are decoded with. */
export class AblationView {
  private readonly off = new Set<number>();
  private model: Autoencoder | undefined;
  private sample: tf.Tensor2D | undefined;
  /** Counts redraws, so that a slow one finishing late cannot overwrite a newer one. */
  private generation = 0;

  constructor(
    private readonly originals: HTMLCanvasElement,
    private readonly reconstructions: HTMLCanvasElement,
    private readonly switches: HTMLElement,
    private readonly onError: (error: unknown) => void,
  ) {}

  /**
   * Shows `model`'s reconstructions of `images` (one flattened 28×28 digit after another, in
   * [-1, 1]) with every dim on. The view keeps the images' tensor; `model` stays the caller's.
   */
  async show(model: Autoencoder, images: Float32Array): Promise<void> {
    this.clear();
    this.model = model;
    this.sample = tf.tensor2d(images, [images.length / 784, 784]);
    drawImages(this.originals, images);
    this.buildSwitches(model.config.latentDim);
    await this.redraw();
  }

  /** Forgets the model and digits, and removes the switches. */
  clear(): void {
    this.generation += 1;
    this.sample?.dispose();
    this.sample = undefined;
    this.model = undefined;
    this.off.clear();
    this.switches.replaceChildren();
  }

  private buildSwitches(latentDim: number): void {
    const fieldsets = latentHalves(latentDim).map((half) => {
      const fieldset = document.createElement('fieldset');
      fieldset.className = half.key;
      const legend = document.createElement('legend');
      legend.textContent = `Dims ${half.start}–${half.end - 1}, routed from digits ${half.digits}`;
      const whole = this.switchElement(
        `half-${half.key}`,
        'whole half',
        `All dims ${half.start}–${half.end - 1}`,
      );
      whole.label.classList.add('half');
      const dims = document.createElement('div');
      dims.className = 'dims';
      const dimInputs: HTMLInputElement[] = [];
      for (let dim = half.start; dim < half.end; dim++) {
        const sw = this.switchElement(`dim-${dim}`, String(dim), `Latent dim ${dim}`);
        dimInputs.push(sw.input);
        sw.input.addEventListener('change', () => {
          this.setDim(dim, sw.input.checked);
          syncWhole();
          void this.redraw();
        });
        dims.append(sw.label);
      }
      const syncWhole = () => {
        const on = dimInputs.filter((input) => input.checked).length;
        whole.input.checked = on === dimInputs.length;
        whole.input.indeterminate = on > 0 && on < dimInputs.length;
      };
      whole.input.addEventListener('change', () => {
        for (const input of dimInputs) input.checked = whole.input.checked;
        for (let dim = half.start; dim < half.end; dim++) this.setDim(dim, whole.input.checked);
        whole.input.indeterminate = false;
        void this.redraw();
      });
      fieldset.append(legend, whole.label, dims);
      return fieldset;
    });
    this.switches.replaceChildren(...fieldsets);
  }

  private switchElement(testId: string, text: string, accessibleName: string) {
    const label = document.createElement('label');
    label.className = 'switch';
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.checked = true;
    input.dataset.testid = testId;
    input.setAttribute('aria-label', `${accessibleName}: on`);
    input.addEventListener('change', () =>
      input.setAttribute('aria-label', `${accessibleName}: ${input.checked ? 'on' : 'off'}`),
    );
    const span = document.createElement('span');
    span.textContent = text;
    span.setAttribute('aria-hidden', 'true');
    label.append(input, span);
    return { label, input };
  }

  private setDim(dim: number, on: boolean): void {
    if (on) this.off.delete(dim);
    else this.off.add(dim);
  }

  /** Decodes the digits from the latent with the switched-off dims zeroed, then draws them. */
  private async redraw(): Promise<void> {
    const { model, sample } = this;
    if (model === undefined || sample === undefined) return;
    const generation = ++this.generation;
    const regions = offRegions(this.off);
    let output: tf.Tensor | undefined;
    try {
      output = tf.tidy(() => {
        const latent = model.encode(sample);
        return model.decode(regions.length === 0 ? latent : ablate(latent, regions));
      });
      // An asynchronous read: WebGPU cannot read synchronously, and the page stays responsive.
      const values = (await output.data()) as Float32Array;
      if (generation === this.generation) drawImages(this.reconstructions, values);
    } catch (error) {
      this.onError(error);
    } finally {
      output?.dispose();
    }
  }
}
