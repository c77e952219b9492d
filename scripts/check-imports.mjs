// One import direction between the folders of src/: a file may import only from its own folder
// or from folders of an earlier layer. Run by `npm run lint` and CI.
//
// Layers, earliest first (a later layer may import an earlier one, never the reverse):
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const LAYERS = [
  ['core/errors.ts', 'core/util'],
  ['core/data', 'core/backend'],
  ['core/routing'],
  ['core/masks'],
  ['core/losses', 'core/layers', 'core/optim'],
  ['core/models'],
  ['core/training', 'core/probing'],
  ['index.ts'],
  ['experiments'],
  ['experiments/reports'],
  ['experiments/index.ts'],
  ['node'],
];

/** The layer of a path relative to src/: its longest matching prefix. */
function layerOf(file) {
  let best = -1;
  let bestLength = -1;
  LAYERS.forEach((prefixes, layer) => {
    for (const prefix of prefixes) {
      const matches = file === prefix || file.startsWith(`${prefix}/`);
      if (matches && prefix.length > bestLength) {
        best = layer;
        bestLength = prefix.length;
      }
    }
  });
  return best;
}

function* sourceFiles(dir) {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) yield* sourceFiles(full);
    else if (name.endsWith('.ts')) yield full;
  }
}

const src = path.resolve(process.argv[2] ?? 'src');
const problems = [];
let checked = 0;
for (const file of sourceFiles(src)) {
  const from = path.relative(src, file);
  const fromLayer = layerOf(from);
  if (fromLayer < 0) {
    problems.push(`${from}: in no layer; add its folder to LAYERS in scripts/check-imports.mjs`);
    continue;
  }
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = path
      .relative(src, path.resolve(path.dirname(file), match[1]))
      .replace(/\.js$/, '.ts');
    const toLayer = layerOf(target);
    checked += 1;
    if (toLayer > fromLayer) {
      problems.push(
        `${from} imports ${target}, from a later layer (${LAYERS[toLayer].join(', ')} comes after ` +
          `${LAYERS[fromLayer].join(', ')}); move the shared code down or invert the dependency`,
      );
    }
  }
}
if (problems.length > 0) {
  console.error(`import direction: ${problems.length} problem(s)\n- ${problems.join('\n- ')}`);
  process.exitCode = 1;
} else {
  console.log(`import direction: ok (${checked} imports between ${LAYERS.length} layers)`);
}
