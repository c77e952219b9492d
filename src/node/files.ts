import { randomBytes } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { GradientRoutingError } from '../core/errors.js';

/** The file names tfjs-node's `file://` handler reads and writes. */
const MODEL_FILE = 'model.json';
const WEIGHTS_FILE = 'weights.bin';

/** Bytes per stored element; `string` weights have no fixed size and are not size-checked. */
const BYTES_PER_ELEMENT: Readonly<Record<string, number>> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

function errorCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error ? String(error.code) : undefined;
}

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await fs.stat(file);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** Writes `data` to a new file and flushes it to disk, so a later rename publishes it whole. */
async function writeDurably(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.open(file, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The `model.json` tfjs writes: the artifacts with the weights replaced by a manifest. */
function modelJSONFor(artifacts: tf.io.ModelArtifacts): tf.io.ModelJSON {
  const json: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
  };
  if (artifacts.trainingConfig != null) json.trainingConfig = artifacts.trainingConfig;
  if (artifacts.signature != null) json.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null) {
    json.userDefinedMetadata = artifacts.userDefinedMetadata;
  }
  if (artifacts.modelInitializer != null) json.modelInitializer = artifacts.modelInitializer;
  if (artifacts.initializerSignature != null) {
    json.initializerSignature = artifacts.initializerSignature;
  }
  return json;
}

async function ensureDirectory(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new GradientRoutingError(
        `gradient-routing: cannot save to ${dir}: it (or a parent) exists as a file. ` +
          'Pass a directory path that does not exist yet or is a directory.',
        'invalid-data',
        undefined,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * A `tf.io.IOHandler` that saves a model to a directory as `model.json` + `weights.bin`, the
 * format tfjs-node's `file://` handler writes and reads, so either can load the other's files.
 *
 * The directory (and its parents) is created if needed. Each file is written to a temporary
 * file in the same directory, flushed, then renamed into place, so a failed save never leaves a
 * half-written file: the directory keeps its previous `model.json` and `weights.bin`.
 * `weights.bin` is renamed first and `model.json` last.
 *
 * @param dir - The directory to save to.
 * @returns A handler for `model.save(handler)`.
 *
 * @example
 * ```ts
 * import { saveToDirectory } from 'gradient-routing/node';
 * await model.save(saveToDirectory('./models/autoencoder'));
 * ```
 */
export function saveToDirectory(dir: string): tf.io.IOHandler {
  const root = path.resolve(dir);
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new GradientRoutingError(
          'gradient-routing: saveToDirectory saves JSON model topologies (tfjs-layers models); ' +
            'this model has a binary topology. Save a tf.LayersModel, or use tfjs-converter.',
        );
      }
      // Serialise before touching the disk, so a model that cannot be saved changes nothing.
      const modelText = JSON.stringify(modelJSONFor(artifacts));
      const weights =
        artifacts.weightData == null
          ? new Uint8Array(0)
          : new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));

      await ensureDirectory(root);
      for (const name of [MODEL_FILE, WEIGHTS_FILE]) {
        const existing = await statOrUndefined(path.join(root, name));
        if (existing !== undefined && !existing.isFile()) {
          throw new GradientRoutingError(
            `gradient-routing: cannot save to ${root}: ${name} there is not a regular file. ` +
              'Remove it or save to another directory.',
          );
        }
      }

      const suffix = `.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
      const weightsTemp = path.join(root, `.${WEIGHTS_FILE}${suffix}`);
      const modelTemp = path.join(root, `.${MODEL_FILE}${suffix}`);
      try {
        await writeDurably(weightsTemp, weights);
        await writeDurably(modelTemp, modelText);
        // model.json last: a reader that sees the new model.json finds the new weights.
        await fs.rename(weightsTemp, path.join(root, WEIGHTS_FILE));
        await fs.rename(modelTemp, path.join(root, MODEL_FILE));
      } catch (error) {
        await Promise.all([weightsTemp, modelTemp].map((file) => fs.rm(file, { force: true })));
        throw new GradientRoutingError(
          `gradient-routing: saving the model to ${root} failed (${String(error)}); the ` +
            'directory keeps its previous files. Check the path, free space and permissions.',
          'invalid-data',
          undefined,
          { cause: error },
        );
      }
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
}

/** Total bytes the weight specs describe, or `undefined` when a string weight makes it unknown. */
function expectedWeightBytes(specs: readonly tf.io.WeightsManifestEntry[]): number | undefined {
  let total = 0;
  for (const spec of specs) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const bytes = BYTES_PER_ELEMENT[dtype];
    if (bytes === undefined) return undefined;
    total += spec.shape.reduce((product, size) => product * size, 1) * bytes;
  }
  return total;
}

function isWeightsGroup(value: unknown): value is tf.io.WeightsManifestConfig[number] {
  if (typeof value !== 'object' || value === null) return false;
  const group = value as { paths?: unknown; weights?: unknown };
  return (
    Array.isArray(group.paths) &&
    group.paths.every((entry) => typeof entry === 'string') &&
    Array.isArray(group.weights)
  );
}

async function readModelJSON(root: string): Promise<tf.io.ModelJSON> {
  const info = await statOrUndefined(root);
  if (info === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: model directory ${root} does not exist. Check the path, or save a ` +
        'model there first with model.save(saveToDirectory(dir)).',
    );
  }
  if (!info.isDirectory()) {
    throw new GradientRoutingError(
      `gradient-routing: ${root} is a file, not a directory. Pass the directory that holds ` +
        `${MODEL_FILE}.`,
    );
  }
  const file = path.join(root, MODEL_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
    throw new GradientRoutingError(
      `gradient-routing: ${root} has no ${MODEL_FILE}. Pass the directory a model was saved ` +
        'to with model.save(saveToDirectory(dir)).',
      'invalid-data',
      undefined,
      { cause: error },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new GradientRoutingError(
      `gradient-routing: ${file} is not valid JSON (${String(error)}); the save was ` +
        'interrupted or the file was edited. Save the model again.',
      'invalid-data',
      undefined,
      { cause: error },
    );
  }
  if (typeof parsed !== 'object' || parsed === null || !('modelTopology' in parsed)) {
    throw new GradientRoutingError(
      `gradient-routing: ${file} has no modelTopology, so it is not a tfjs model.json. Pass ` +
        'the directory of a model saved with model.save().',
    );
  }
  const json = parsed as tf.io.ModelJSON;
  if (
    json.weightsManifest != null &&
    !(Array.isArray(json.weightsManifest) && json.weightsManifest.every(isWeightsGroup))
  ) {
    throw new GradientRoutingError(
      `gradient-routing: ${file} has a malformed weightsManifest; each entry needs paths ` +
        '(strings) and weights (specs). Save the model again.',
    );
  }
  return json;
}

async function readWeights(
  root: string,
  manifest: tf.io.WeightsManifestConfig,
): Promise<[tf.io.WeightsManifestEntry[], ArrayBuffer]> {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  for (const group of manifest) {
    for (const relative of group.paths) {
      const file = path.resolve(root, relative);
      const fromRoot = path.relative(root, file);
      if (fromRoot.startsWith('..') || path.isAbsolute(fromRoot)) {
        throw new GradientRoutingError(
          `gradient-routing: ${path.join(root, MODEL_FILE)} lists the weights file ` +
            `'${relative}', which is outside ${root}. Weights files must sit in the model's ` +
            'directory; fix the paths in weightsManifest.',
        );
      }
      try {
        buffers.push(await fs.readFile(file));
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw error;
        throw new GradientRoutingError(
          `gradient-routing: weights file ${file}, listed in ${MODEL_FILE}, is missing. Copy ` +
            `it next to ${MODEL_FILE}, or save the model again.`,
          'invalid-data',
          undefined,
          { cause: error },
        );
      }
    }
    specs.push(...group.weights);
  }
  const total = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
  const expected = expectedWeightBytes(specs);
  if (expected !== undefined && expected !== total) {
    throw new GradientRoutingError(
      `gradient-routing: the weights files in ${root} hold ${total} bytes but ${MODEL_FILE} ` +
        `describes ${expected}; they come from different saves or were truncated. Save the ` +
        'model again.',
    );
  }
  const data = new Uint8Array(total);
  let offset = 0;
  for (const buffer of buffers) {
    data.set(buffer, offset);
    offset += buffer.byteLength;
  }
  return [specs, data.buffer];
}

/**
 * A `tf.io.IOHandler` that loads a model from a directory holding `model.json` and the weights
 * files it lists (`weights.bin` when saved by {@link saveToDirectory} or tfjs-node).
 *
 * @param dir - The directory the model was saved to.
 * @returns A handler for `tfl.loadLayersModel(handler)`.
 * @throws When loading (not when called): if the directory, `model.json` or a weights file is
 *   missing, `model.json` is malformed, or the weights' size does not match the manifest.
 *
 * @example
 * ```ts
 * import { loadFromDirectory } from 'gradient-routing/node';
 * const model = await tfl.loadLayersModel(loadFromDirectory('./models/autoencoder'));
 * ```
 */
export function loadFromDirectory(dir: string): tf.io.IOHandler {
  const root = path.resolve(dir);
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      const json = await readModelJSON(root);
      return tf.io.getModelArtifactsForJSON(json, (manifest) => readWeights(root, manifest));
    },
  };
}
