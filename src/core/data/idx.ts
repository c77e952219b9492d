import { GradientRoutingError } from '../errors.js';
/**
 * The IDX format (LeCun's MNIST files): a 4-byte magic `00 00 <type> <ndims>`, `ndims` big-endian
 * uint32 sizes, then the elements big-endian in row-major order. No Node built-ins here, so
 * browsers can parse fetched bytes.
 */

/** Element types an IDX file can hold, named after their typed arrays. */
export type IdxType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** The typed array that holds each {@link IdxType}. */
export interface IdxArrays {
  /** Type code 0x08. */
  uint8: Uint8Array;
  /** Type code 0x09. */
  int8: Int8Array;
  /** Type code 0x0B. */
  int16: Int16Array;
  /** Type code 0x0C. */
  int32: Int32Array;
  /** Type code 0x0D. */
  float32: Float32Array;
  /** Type code 0x0E. */
  float64: Float64Array;
}

/**
 * A parsed IDX file. It is a union over the element types, so checking `type` narrows `data`:
 * after `if (idx.type === 'uint8')`, `idx.data` is a `Uint8Array`.
 */
export type IdxData<T extends IdxType = IdxType> = {
  [K in T]: {
    /** The element type from the magic number. */
    type: K;
    /** The size of each dimension, outermost first (e.g. `[count, rows, cols]` for images). */
    dims: number[];
    /** All elements in row-major order, in the host's byte order. */
    data: IdxArrays[K];
  };
}[T];

interface TypeInfo {
  code: number;
  bytes: number;
  create: (buffer: ArrayBuffer) => IdxArrays[IdxType];
  /** Integer range; absent for float types, which take any number. */
  range?: readonly [number, number];
}

const TYPES: Record<IdxType, TypeInfo> = {
  uint8: { code: 0x08, bytes: 1, create: (b) => new Uint8Array(b), range: [0, 255] },
  int8: { code: 0x09, bytes: 1, create: (b) => new Int8Array(b), range: [-128, 127] },
  int16: { code: 0x0b, bytes: 2, create: (b) => new Int16Array(b), range: [-32768, 32767] },
  int32: {
    code: 0x0c,
    bytes: 4,
    create: (b) => new Int32Array(b),
    range: [-(2 ** 31), 2 ** 31 - 1],
  },
  float32: { code: 0x0d, bytes: 4, create: (b) => new Float32Array(b) },
  float64: { code: 0x0e, bytes: 8, create: (b) => new Float64Array(b) },
};

const TYPE_BY_CODE = new Map(
  (Object.keys(TYPES) as IdxType[]).map((type) => [TYPES[type].code, type] as const),
);

const TYPE_LIST = (Object.keys(TYPES) as IdxType[])
  .map((type) => `0x${hex(TYPES[type].code)} (${type})`)
  .join(', ');

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0').toUpperCase();
}

/**
 * Converts elements between big-endian (IDX) and host order in place. The conversion is its own
 * inverse, so both parsing and encoding use it; a plain byte loop beats a DataView call per element.
 */
function swapToHostOrder(bytes: Uint8Array, width: number): void {
  if (width === 1 || !HOST_IS_LITTLE_ENDIAN) return;
  for (let start = 0; start < bytes.length; start += width) {
    for (let lo = start, hi = start + width - 1; lo < hi; lo++, hi--) {
      const byte = bytes[lo]!;
      bytes[lo] = bytes[hi]!;
      bytes[hi] = byte;
    }
  }
}

/** Options for {@link parseIdx}. */
export interface ParseIdxOptions {
  /** What to call the bytes in error messages, such as the file path. Default `'IDX data'`. */
  name?: string;
}

/**
 * Parses the bytes of an IDX file of any element type and rank. The returned array is a copy,
 * so it does not keep `bytes` alive.
 *
 * @throws When the magic number is wrong (gzip-compressed bytes must be decompressed first), the
 * type code is unknown, or the byte count disagrees with the dimensions.
 *
 * @example
 * ```ts
 * const response = await fetch('t10k-labels-idx1-ubyte');
 * const labels = parseIdx(new Uint8Array(await response.arrayBuffer()));
 * if (labels.type === 'uint8') console.log(labels.dims, labels.data[0]);
 * ```
 */
export function parseIdx(bytes: Uint8Array | ArrayBuffer, options: ParseIdxOptions = {}): IdxData {
  const input = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const name = options.name ?? 'IDX data';
  if (input.length < 4) {
    throw new GradientRoutingError(
      `gradient-routing: ${name} is truncated: an IDX header needs at least 4 bytes, got ${input.length}; re-download or regenerate the file.`,
    );
  }
  const [zero0, zero1, code, rank] = [input[0]!, input[1]!, input[2]!, input[3]!];
  if (zero0 !== 0 || zero1 !== 0) {
    const gzipHint =
      zero0 === 0x1f && zero1 === 0x8b
        ? ' These are gzip bytes: gunzip them first (readIdxFile in gradient-routing/node does).'
        : '';
    throw new GradientRoutingError(
      `gradient-routing: ${name} is not an IDX file: its magic number must start with bytes 00 00, found ${hex(zero0)} ${hex(zero1)}.${gzipHint} Pass the raw bytes of an IDX file.`,
    );
  }
  const type = TYPE_BY_CODE.get(code);
  if (type === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: ${name} has unknown IDX element type code 0x${hex(code)}; known codes are ${TYPE_LIST}. The file is corrupt or not IDX: re-download or regenerate it.`,
    );
  }
  const headerBytes = 4 + 4 * rank;
  if (input.length < headerBytes) {
    throw new GradientRoutingError(
      `gradient-routing: ${name} is truncated: its header declares ${rank} dimensions and needs ${headerBytes} bytes, got ${input.length}; re-download or regenerate the file.`,
    );
  }
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const { bytes: width, create } = TYPES[type];
  const expected = headerBytes + width * dims.reduce((product, size) => product * size, 1);
  if (input.length !== expected) {
    const problem = input.length < expected ? 'is truncated' : 'has trailing bytes';
    throw new GradientRoutingError(
      `gradient-routing: ${name} ${problem}: dims [${dims.join(', ')}] of ${type} need ${expected} bytes, got ${input.length}; the file is corrupt or incomplete: re-download or regenerate it.`,
    );
  }
  // A copy with its own buffer: Node's Buffer#slice would return a view into a shared pool.
  const body = new Uint8Array(input.subarray(headerBytes));
  swapToHostOrder(body, width);
  return { type, dims, data: create(body.buffer) } as IdxData;
}

/** The input of {@link encodeIdx}: like {@link IdxData}, but any array of numbers will do. */
export interface IdxInput {
  /** The element type to write. */
  type: IdxType;
  /** The size of each dimension, outermost first; their product must equal `data.length`. */
  dims: readonly number[];
  /** The elements in row-major order; integer types need integers in the type's range. */
  data: ArrayLike<number>;
}

/**
 * Encodes an array as IDX bytes, the inverse of {@link parseIdx}. Useful for tests and for
 * writing small datasets in the MNIST layout.
 *
 * @throws When a dimension is not a uint32, the element count disagrees with `dims`, or a value
 * does not fit an integer type (rather than wrapping it silently).
 *
 * @example
 * ```ts
 * const bytes = encodeIdx({ type: 'uint8', dims: [3], data: [7, 2, 1] });
 * ```
 */
export function encodeIdx(idx: IdxInput): Uint8Array {
  const info = TYPES[idx.type];
  if (info === undefined) {
    throw new GradientRoutingError(
      `gradient-routing: unknown IDX type ${JSON.stringify(idx.type)}; use one of ${Object.keys(TYPES).join(', ')}.`,
    );
  }
  if (idx.dims.length > 255) {
    throw new GradientRoutingError(
      `gradient-routing: IDX allows at most 255 dimensions, got ${idx.dims.length}; reshape the data.`,
    );
  }
  for (const size of idx.dims) {
    if (!Number.isInteger(size) || size < 0 || size > 0xffffffff) {
      throw new GradientRoutingError(
        `gradient-routing: IDX dims must be integers in [0, 2^32), got [${idx.dims.join(', ')}]; fix the dims.`,
      );
    }
  }
  const count = idx.dims.reduce((product, size) => product * size, 1);
  if (idx.data.length !== count) {
    throw new GradientRoutingError(
      `gradient-routing: dims [${idx.dims.join(', ')}] hold ${count} elements but data has ${idx.data.length}; make them agree.`,
    );
  }
  const { range } = info;
  if (range !== undefined) {
    for (let i = 0; i < count; i++) {
      const value = idx.data[i]!;
      if (!Number.isInteger(value) || value < range[0] || value > range[1]) {
        throw new GradientRoutingError(
          `gradient-routing: element ${i} is ${value}, which ${idx.type} cannot hold (integers ${range[0]}..${range[1]}); choose a wider type or fix the value.`,
        );
      }
    }
  }
  const headerBytes = 4 + 4 * idx.dims.length;
  const out = new Uint8Array(headerBytes + info.bytes * count);
  const view = new DataView(out.buffer);
  out[2] = info.code;
  out[3] = idx.dims.length;
  idx.dims.forEach((size, i) => {
    view.setUint32(4 + 4 * i, size, false);
  });
  const typed = info.create(new ArrayBuffer(info.bytes * count));
  for (let i = 0; i < count; i++) typed[i] = idx.data[i]!;
  const body = new Uint8Array(typed.buffer);
  swapToHostOrder(body, info.bytes);
  out.set(body, headerBytes);
  return out;
}
