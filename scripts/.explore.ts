import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { runSplitExperiment, splitPresets } from '../src/experiments/index.js';
await tf.setBackend('cpu');
const CLASSES = Number(process.env.CLASSES ?? 3);
function syntheticDataset(count: number, seed: number) {
  const images = new Float32Array(count * 36);
  const labels = new Int32Array(count);
  let state = seed;
  const random = () => { state = (state * 1103515245 + 12345) % 2147483648; return state / 2147483648; };
  for (let i = 0; i < count; i++) {
    const label = i % CLASSES; labels[i] = label;
    const a = random() * 2 - 1; const b = random() * 2 - 1;
    for (let p = 0; p < 36; p++) { const column = p % 6; const row = Math.floor(p / 6); const lit = Math.floor(column / 2) === label; images[i * 36 + p] = lit ? (row < 3 ? a : b) : -1; }
  }
  return { images, labels, count, rows: 6, cols: 6 };
}
const data = { train: syntheticDataset(Number(process.env.N ?? 96), 1), test: syntheticDataset(30, 2) };
for (const epochs of [Number(process.env.EPOCHS ?? 10)]) for (const routed of [true, false]) {
  const t0 = performance.now();
  const r = await runSplitExperiment(data, { ...splitPresets.smoke, model: { hidden: [24, 12], latentDim: CLASSES === 2 ? 4 : 6, seed: 0 }, optimizer: { learningRate: 1e-2, weightDecay: 5e-5 }, fit: { epochs, batchSize: 16, seed: 0 }, probe: { epochs: 0, batchSize: 16, learningRate: 1e-3 }, partition: CLASSES === 2 ? [[0], [1]] : [[0], [1], [2]], objective: { ...splitPresets.smoke.objective, routed } });
  console.log(epochs, routed, r.certificates.map((c) => c.ratio.toFixed(3)).join(' '), ((performance.now() - t0) / 1000).toFixed(1));
  r.model.dispose();
}
