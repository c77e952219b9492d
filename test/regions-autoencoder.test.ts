/**
 * Feature regions (validation, masks, slices) and the Autoencoder's architecture: its seeds,
 * its decoder routing points and its certificate inputs. Written against the survivors of a
 * mutation run over regions.ts and autoencoder.ts (scripts/mutation/regions-autoencoder.json).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { GradientRoutingError } from '../src/core/errors.js';
import {
  type Region,
  regionMask,
  regionMaskValues,
  validateRegions,
} from '../src/core/masks/regions.js';
import { labelRule } from '../src/core/masks/table.js';
import { Autoencoder } from '../src/core/models/autoencoder.js';
import { forwardContext } from '../src/core/routing/points.js';
// From the public entry: docs/troubleshooting.md tells users to import it from there.
import { sliceRegions } from '../src/index.js';
import { expectNoLeak } from './helpers/backends.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('validateRegions', () => {
  it.each([
    [0, [[0, 1]], /feature size must be a positive integer, got 0/],
    [2.5, [[0, 1]], /feature size must be a positive integer, got 2.5/],
    [4, [], /give at least one region/],
    [4, [[0, 1, 2]], /a region is a pair \[start, end\), got \[0,1,2\]/],
    [4, [[0.5, 2]], /region \[0.5, 2\) must have integer bounds/],
    [4, [[0, 2.5]], /region \[0, 2.5\) must have integer bounds/],
    [4, [[-1, 2]], /region \[-1, 2\) is out of bounds or empty/],
    [4, [[2, 5]], /region \[2, 5\) is out of bounds or empty/],
    [4, [[2, 2]], /region \[2, 2\) is out of bounds or empty/],
    [4, [[3, 1]], /region \[3, 1\) is out of bounds or empty/],
    [
      8,
      [
        [4, 6],
        [0, 5],
      ],
      /regions \[0, 5\) and \[4, 6\) overlap/,
    ],
  ])('size %s, regions %j: %s', (size, regions, message) => {
    expect(() => validateRegions(size, regions as unknown as Region[])).toThrow(message);
    expect(() => validateRegions(size, regions as unknown as Region[])).toThrow(
      GradientRoutingError,
    );
  });

  it('accepts regions that touch, in any order, and the whole axis', () => {
    expect(() =>
      validateRegions(8, [
        [4, 8],
        [0, 4],
      ]),
    ).not.toThrow();
    expect(() => validateRegions(8, [[0, 8]])).not.toThrow();
    expect(() => validateRegions(1, [[0, 1]])).not.toThrow();
  });
});

describe('region masks and slices', () => {
  it('regionMask is 1 inside the regions and 0 elsewhere, as a float32 tensor', async () => {
    const mask = regionMask(8, [
      [0, 2],
      [6, 8],
    ]);
    expect(mask.dtype).toBe('float32');
    expect(mask.shape).toEqual([8]);
    expect(Array.from(await mask.data())).toEqual([1, 1, 0, 0, 0, 0, 1, 1]);
    expect(Array.from(regionMaskValues(5, [1, 3]))).toEqual([0, 1, 1, 0, 0]);
    mask.dispose();
  });

  it('sliceRegions concatenates the regions of the last axis in the order given', async () => {
    await expectNoLeak(async () => {
      const x = tf.tensor2d([
        [0, 1, 2, 3, 4, 5],
        [10, 11, 12, 13, 14, 15],
      ]);
      const one = sliceRegions(x, [1, 3]);
      const two = sliceRegions(x, [
        [4, 6],
        [0, 1],
      ]);
      expect(await one.array()).toEqual([
        [1, 2],
        [11, 12],
      ]);
      expect(await two.array()).toEqual([
        [4, 5, 0],
        [14, 15, 10],
      ]);
      tf.dispose([x, one, two]);
    });
  });

  it('sliceRegions rejects a scalar and regions outside the axis', () => {
    const scalar = tf.scalar(1);
    const x = tf.zeros([2, 4]);
    expect(() => sliceRegions(scalar, [0, 1])).toThrow(/needs a tensor with at least one axis/);
    expect(() => sliceRegions(x, [2, 5])).toThrow(/out of bounds/);
    tf.dispose([scalar, x]);
  });
});

/** Every weight of a network, flattened, in order. */
async function weightsOf(net: { getWeights(): tf.Tensor[] }): Promise<number[]> {
  const parts = await Promise.all(net.getWeights().map(async (w) => Array.from(await w.data())));
  return parts.flat();
}

describe('Autoencoder architecture', () => {
  it('seeds the encoder, decoder and each certificate differently, and reproducibly', async () => {
    const config = {
      inputDim: 6,
      hidden: [6],
      latentDim: 6,
      certificates: [
        [0, 3],
        [3, 6],
      ],
    };
    const a = new Autoencoder({ ...config, seed: 4 } as never);
    const b = new Autoencoder({ ...config, seed: 4 } as never);
    const c = new Autoencoder({ ...config, seed: 5 } as never);
    // Same shapes everywhere (6 → 6 → 6), so only the seeds tell the networks apart.
    expect(await weightsOf(a.encoder)).toEqual(await weightsOf(b.encoder));
    expect(await weightsOf(a.decoder)).toEqual(await weightsOf(b.decoder));
    expect(await weightsOf(a.encoder)).not.toEqual(await weightsOf(c.encoder));
    expect(await weightsOf(a.decoder)).not.toEqual(await weightsOf(a.encoder));
    // Model seed 4: decoder seed 5 equals the encoder of the model with seed 5, whose shapes
    // differ only in the latent layer's bias (none in the encoder).
    const [first] = a.decoder.getWeights();
    const [otherFirst] = c.encoder.getWeights();
    expect(Array.from(await first!.data())).toEqual(Array.from(await otherFirst!.data()));
    const [cert0, cert1] = a.certificateDecoders;
    expect(cert0!.inputs[0]!.shape).toEqual([null, 3]);
    expect(await weightsOf(cert0!)).not.toEqual(await weightsOf(cert1!));
    for (const model of [a, b, c]) model.dispose();
  });

  it('names its points after the encoder and decoder hidden layers, and routes at decoder.0', async () => {
    const model = new Autoencoder({ inputDim: 5, hidden: [4, 3], latentDim: 2, seed: 1 });
    expect(model.routingPoints).toEqual([
      'encoder.0',
      'encoder.1',
      'latent',
      'decoder.0',
      'decoder.1',
    ]);
    // Route the decoder's first hidden layer: no example may send gradient into units 1 and 2,
    // so the latent-to-hidden kernel's columns 1 and 2 get exactly zero gradient.
    const rule = labelRule(3, [{ labels: [0], region: [0, 1] }]);
    const x = tf.randomUniform([4, 5], -1, 1, 'float32', 3) as tf.Tensor2D;
    const labels = tf.tensor1d([0, 0, 0, 0], 'int32');
    const kernel = model.decoder.layers[0]!.getWeights()[0] as tf.Variable;
    const grads = tf.tidy(() => {
      const context = forwardContext(model, {
        plan: { 'decoder.0': rule },
        batch: { labels },
      });
      return tf.variableGrads(() => tf.sum(model.reconstruct(x, context)) as tf.Scalar, [kernel])
        .grads;
    });
    const gradient = (await grads[kernel.name]!.array()) as number[][];
    expect(gradient.every((row) => row[1] === 0 && row[2] === 0)).toBe(true);
    expect(gradient.some((row) => row[0] !== 0)).toBe(true);
    tf.dispose([x, labels, ...Object.values(grads)]);
    rule.dispose();
    model.dispose();
  });

  it('certificates read their slice of the latent: a changed dim outside it changes nothing', async () => {
    const model = new Autoencoder({
      inputDim: 4,
      hidden: [3],
      latentDim: 4,
      certificates: [[0, 2]],
      seed: 2,
    });
    const z = tf.tensor2d([[0.1, 0.2, 0.3, 0.4]]);
    const zOther = tf.tensor2d([[0.1, 0.2, 9, -9]]);
    const zInside = tf.tensor2d([[5, 0.2, 0.3, 0.4]]);
    const [base] = model.certify(z);
    const [outside] = model.certify(zOther);
    const [inside] = model.certify(zInside);
    expect(Array.from(await outside!.data())).toEqual(Array.from(await base!.data()));
    expect(Array.from(await inside!.data())).not.toEqual(Array.from(await base!.data()));
    tf.dispose([z, zOther, zInside, base!, outside!, inside!]);
    model.dispose();
  });
});
