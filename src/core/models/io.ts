import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../errors.js';
import type { LabelRoute } from '../masks/labels.js';
import type { Region } from '../masks/regions.js';
import { Autoencoder, type AutoencoderConfig } from './autoencoder.js';

const FORMAT = 'gradient-routing/Autoencoder';
const VERSION = 2;
/** What 0.1.0 saved: the routes lived in the model then. */
const FORMAT_0_1 = 'gradient-routing/RoutedAutoencoder';

/**
 * The class name a saved Autoencoder's topology carries. tfjs-layers' `loadLayersModel` looks it
 * up in the class registry, where {@link AutoencoderArtifacts} stands, and gets an error that
 * says what to call instead of its own `Improper config format`.
 */
const CLASS_NAME = 'GradientRoutingAutoencoder';

/** Registered under {@link CLASS_NAME}; never built: `fromConfig` only explains the mistake. */
class AutoencoderArtifacts extends tf.serialization.Serializable {
  static className = CLASS_NAME;

  override getClassName(): string {
    return CLASS_NAME;
  }

  getConfig(): tf.serialization.ConfigDict {
    return {};
  }

  static override fromConfig<T extends tf.serialization.Serializable>(): T {
    throw new GradientRoutingError(
      'these artifacts hold a gradient-routing Autoencoder (saved by saveAutoencoder), not a ' +
        "tfjs-layers model; load them with loadAutoencoder(handler) from 'gradient-routing', " +
        'e.g. loadAutoencoder(loadFromDirectory(dir)).',
      'invalid-data',
      CLASS_NAME,
    );
  }
}
tf.serialization.registerClass(AutoencoderArtifacts);

interface SavedTopology {
  format?: string;
  version?: number;
  config?: AutoencoderConfig & {
    routes?: LabelRoute[];
    certificates?: 'routes' | Array<Region | Region[]>;
  };
}

/**
 * Saves an {@link Autoencoder}'s config and every weight through any tfjs IO handler (bit-exact):
 * `tf.io.browserLocalStorage`, `tf.io.withSaveHandler`, or `saveToDirectory` from
 * `gradient-routing/node`.
 *
 * @example
 * ```ts
 * await saveAutoencoder(model, tf.io.browserLocalStorage('split-autoencoder'));
 * ```
 */
export async function saveAutoencoder(
  model: Autoencoder,
  handler: tf.io.IOHandler,
): Promise<tf.io.SaveResult> {
  if (handler.save === undefined) {
    throw new GradientRoutingError('this IO handler cannot save; pass one made for saving.');
  }
  const named: tf.NamedTensorMap = {};
  model.networks().forEach((net, n) => {
    net.getWeights().forEach((w, i) => {
      named[`${n}/${i}`] = w;
    });
  });
  const { data, specs } = await tf.io.encodeWeights(named);
  return handler.save({
    modelTopology: {
      // For tf.loadLayersModel, which reads class_name and config: see AutoencoderArtifacts.
      class_name: CLASS_NAME,
      format: FORMAT,
      version: VERSION,
      config: model.getConfig(),
    },
    weightSpecs: specs,
    weightData: data,
    format: FORMAT,
    generatedBy: 'gradient-routing',
  });
}

/**
 * Loads an {@link Autoencoder} saved with {@link saveAutoencoder} (or a `RoutedAutoencoder` saved
 * by 0.1.0, whose certificates then read its routes' regions).
 * @throws {@link GradientRoutingError} when the artifacts are not an autoencoder or lack weights.
 */
export async function loadAutoencoder(handler: tf.io.IOHandler): Promise<Autoencoder> {
  if (handler.load === undefined) {
    throw new GradientRoutingError('this IO handler cannot load; pass one made for loading.');
  }
  const artifacts = await handler.load();
  const topology = artifacts.modelTopology as SavedTopology | undefined;
  const format = topology?.format;
  if ((format !== FORMAT && format !== FORMAT_0_1) || topology?.config === undefined) {
    throw new GradientRoutingError(
      `these artifacts are not a gradient-routing Autoencoder (format '${String(format)}'); ` +
        'load a tfjs-layers model with tf.loadLayersModel instead.',
      'invalid-data',
      format,
    );
  }
  if (artifacts.weightData === undefined || artifacts.weightSpecs === undefined) {
    throw new GradientRoutingError(
      'the saved Autoencoder has no weights; save it again.',
      'invalid-data',
    );
  }
  const model = new Autoencoder(configOf(topology.config));
  const weights = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
  try {
    model.networks().forEach((net, n) => {
      net.setWeights(
        net.getWeights().map((_, i) => {
          const weight = weights[`${n}/${i}`];
          if (weight === undefined) {
            throw new GradientRoutingError(
              `the saved weights lack '${n}/${i}'; the file is incomplete.`,
              'invalid-data',
            );
          }
          return weight;
        }),
      );
    });
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    tf.dispose(weights);
  }
  return model;
}

/** The 0.2 config of a saved config, converting 0.1's route-bound certificates. */
function configOf(saved: NonNullable<SavedTopology['config']>): AutoencoderConfig {
  const { inputDim, hidden, latentDim, seed } = saved;
  const certificates =
    saved.certificates === undefined || saved.certificates === 'routes'
      ? (saved.routes ?? []).map((route) => route.region as Region | Region[])
      : saved.certificates;
  return { inputDim, hidden, latentDim, certificates, ...(seed === undefined ? {} : { seed }) };
}
