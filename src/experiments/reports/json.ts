import { GradientRoutingError } from '../../core/errors.js';

// Shortest decimal that reads back as the same float32, so 0.1f is written as 0.1 rather than
// 0.10000000149011612: the digits beyond float32 precision are noise from the widening.
function shortestFloat32(value: number): number {
  if (!Number.isFinite(value)) return value;
  for (let precision = 1; precision < 9; precision++) {
    const candidate = Number(value.toPrecision(precision));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

// Converted before JSON.stringify rather than in a replacer: toJSON runs before the replacer,
// and vega-lite installs a Set.prototype.toJSON that writes Sets as strings.
function toPlain(value: unknown, ancestors: Set<object>): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (ancestors.has(value)) {
    throw new GradientRoutingError('the value contains itself');
  }
  if (value instanceof Float32Array) return Array.from(value, shortestFloat32);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, (item) =>
      typeof item === 'bigint' ? Number(item) : item,
    );
  }
  const isArray = Array.isArray(value);
  const isMap = value instanceof Map;
  const isSet = value instanceof Set;
  // Anything else (Date, objects with toJSON…) is left to JSON.stringify.
  if (!isArray && !isMap && !isSet && !isPlainObject(value)) return value;
  ancestors.add(value);
  try {
    if (isArray || isSet)
      return Array.from(value as Iterable<unknown>, (item) => toPlain(item, ancestors));
    const entries = isMap ? [...value.entries()] : Object.entries(value);
    return Object.fromEntries(
      entries.map(([key, item]) => [String(key), toPlain(item, ancestors)]),
    );
  } finally {
    ancestors.delete(value);
  }
}

/**
 * Serialises report numbers as pretty JSON (2 spaces, trailing newline). Unlike plain
 * `JSON.stringify`, typed arrays such as `tensor.dataSync()` become arrays rather than
 * `{"0": …}` objects, float32 values keep only their significant digits, and Maps and Sets
 * become objects and arrays. NaN and infinities become `null`, as in any JSON.
 *
 * @param value - Plain data: objects, arrays, numbers, strings, booleans, typed arrays.
 * @returns The JSON text.
 */
export function toReportJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(toPlain(value, new Set()), null, 2);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new GradientRoutingError(
      `gradient-routing: cannot serialise the report as JSON (${reason}); pass plain data without cycles or BigInts.`,
    );
  }
  if (text === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: a ${typeof value} cannot be written as JSON; pass an object, array, number or string.`,
    );
  }
  return `${text}\n`;
}
