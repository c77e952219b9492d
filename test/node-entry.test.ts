// This file imports gradient-routing/node and tfjs-layers only, never the main entry: it checks
// that the node entry alone registers the layer classes that loadFromDirectory may meet.

import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { loadFromDirectory } from '../src/node/index.js';
import { useBackend } from './helpers/backends.js';

describe('gradient-routing/node on its own', () => {
  it('loads a saved tfjs-layers model that contains a RouteGradients layer', async () => {
    await useBackend('cpu');
    // Saved with saveToDirectory from a Sequential of dense, routeGradientsLayer({ regions }), dense.
    const dir = path.join(import.meta.dirname, 'fixtures', 'routed-layers-model');
    const model = await tfl.loadLayersModel(loadFromDirectory(dir));
    expect(model.layers.map((layer) => layer.getClassName())).toEqual([
      'Dense',
      'RouteGradients',
      'Dense',
    ]);
    const x = tf.tensor2d([[1, -2, 0.5]]);
    const y = model.predict(x) as tf.Tensor;
    // The outputs the saved model gave when it was written.
    const expected = [0.35649871826171875, 0.6600959300994873];
    Array.from(y.dataSync()).forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i]!, 6);
    });
    tf.dispose([x, y]);
    model.dispose();
  });
});
