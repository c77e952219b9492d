/** ERA's retraining attack: fine-tune copies of a final model on held-out forget documents. */
import type { TinyTransformer } from '../../core/models/transformer.js';
import { AdamW } from '../../core/optim/adamw.js';
import { seededRandom } from '../../core/util/random.js';
import type { EraConfig } from './config.js';
import { documentLoss, type Prepared } from './data.js';
import { trainStep } from './training.js';

/** The retraining attack on a copy of `model`, per seed; `model` is not changed. */
export async function retrainingAttack(
  model: TinyTransformer,
  data: Prepared,
  config: EraConfig,
  onStep: () => void,
): Promise<{ steps: number[]; curves: number[][]; retainAtMin: number[] }> {
  const { attack } = config;
  const steps: number[] = [];
  for (let s = 0; s <= attack.steps; s += attack.evalEvery) steps.push(s);
  if (steps[steps.length - 1] !== attack.steps) steps.push(attack.steps);
  const curves: number[][] = [];
  const retainAtMin: number[] = [];
  const pool = data.attackForget.map((_, i) => i);
  const start = await documentLoss(model, data.evalForget);
  for (let seed = 0; seed < attack.seeds; seed++) {
    const attacked = model.clone();
    const optimizer = new AdamW({ weightDecay: config.weightDecay });
    const variables = attacked.trainableVariables();
    const random = seededRandom(config.seed * 1000 + 7919 * (seed + 1));
    const curve = [start];
    let best = start;
    let bestRetain = Number.NaN;
    try {
      for (let step = 1; step <= attack.steps; step++) {
        trainStep(
          attacked,
          variables,
          optimizer,
          data.attackForget,
          pool,
          attack.batchSize,
          random,
          attack.learningRate,
        );
        onStep();
        if (steps.includes(step)) {
          const loss = await documentLoss(attacked, data.evalForget);
          curve.push(loss);
          if (loss < best) {
            best = loss;
            bestRetain = await documentLoss(attacked, data.evalRetain);
          }
        }
      }
    } finally {
      optimizer.dispose();
      attacked.dispose();
    }
    curves.push(curve);
    retainAtMin.push(bestRetain);
  }
  return { steps, curves, retainAtMin };
}
