import type { GatedOperand } from '../library-kernels.js';
import { type ProgramUniform, scalarUniforms, type WebGpuProgram } from './tfjs-webgpu.js';

/*
 * WGSL programs for the dense-layer products (tfjs's `runWebGPUProgram` adds the bindings, the
 * uniform struct and the entry point around `getUserCode()`).
 */

/** Activations fused into the product's epilogue; the stock kernel runs every other one. */
export type EpilogueActivation = 'linear' | 'relu';

/** The shape of one product `[batch, M, K] · [batch, K, N]`, transposes as stored. */
export interface MatMulShape {
  /** The output tile of one workgroup. */
  readonly tile: TileSide;
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transposeA: boolean;
  readonly transposeB: boolean;
  /** Whether A (B) has a single matrix shared by every batch entry. */
  readonly broadcastA: boolean;
  readonly broadcastB: boolean;
}

/** What the epilogue adds to the product. */
export interface Epilogue {
  /** 'none', 'scalar' (one value for every output) or 'row' (one value per output column). */
  readonly bias: 'none' | 'scalar' | 'row';
  readonly activation: EpilogueActivation;
  readonly gated: GatedOperand;
}

/**
 * Side of a workgroup's square output tile: (side/4)² threads with 4×4 outputs each. 64 (256
 * threads) for large products; 32 (64 threads) gives four times as many workgroups to small ones.
 */
export type TileSide = 32 | 64;
/** Depth of the K slices staged in workgroup memory. */
const TILE_K = 16;

/**
 * The register-tiled product. Each workgroup stages a side×16 slice of A and a 16×side slice of B in
 * workgroup memory (as vec4 along M and N, so the inner loop is four vec4 multiply-adds), and
 * each thread keeps its 4×4 outputs in registers for the whole K loop. Operands whose contiguous
 * dimension is a multiple of 4 are read as vec4; edges are read as zeros and never written, so
 * every shape is exact. Transposes change only the load indexing: no operand is materialised.
 */
export class TiledMatMulProgram implements WebGpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  workgroupSize: [number, number, number];
  uniforms: string;
  /** The values of {@link uniforms}, in order, for `runWebGPUProgram`. */
  readonly uniformData: ProgramUniform[];
  private readonly vec4A: boolean;
  private readonly vec4B: boolean;

  constructor(
    private readonly shape: MatMulShape,
    private readonly epilogue: Epilogue,
  ) {
    const { tile } = shape;
    const { batch, m, n, k, transposeA, transposeB, broadcastA, broadcastB } = shape;
    ({ declaration: this.uniforms, values: this.uniformData } = scalarUniforms([
      { name: 'dimM', type: 'i32', value: m },
      { name: 'dimN', type: 'i32', value: n },
      { name: 'dimK', type: 'i32', value: k },
      { name: 'batchStrideA', type: 'i32', value: broadcastA ? 0 : m * k },
      { name: 'batchStrideB', type: 'i32', value: broadcastB ? 0 : k * n },
    ]));
    this.outputShape = [batch, m, n];
    this.workgroupSize = [tile / 4, tile / 4, 1];
    this.dispatch = [Math.ceil(n / tile), Math.ceil(m / tile), batch];
    // The contiguous dimension of each operand decides whether it can be read as vec4.
    this.vec4A = (transposeA ? m : k) % 4 === 0;
    this.vec4B = (transposeB ? k : n) % 4 === 0;
    const componentsA = this.vec4A ? 4 : 1;
    const componentsB = this.vec4B ? 4 : 1;
    this.variableNames = ['A', 'B'];
    this.variableComponents = [componentsA, componentsB];
    if (epilogue.gated !== 'none') {
      this.variableNames.push('G');
      this.variableComponents.push(epilogue.gated === 'a' ? componentsA : componentsB);
    }
    if (epilogue.bias !== 'none') {
      this.variableNames.push('bias');
      this.variableComponents.push(1);
    }
    this.shaderKey = [
      'gradientRoutingTiledMatMul',
      tile,
      transposeA,
      transposeB,
      this.vec4A,
      this.vec4B,
      epilogue.bias,
      epilogue.activation,
      epilogue.gated,
    ].join('_');
  }

  getUserCode(): string {
    const { transposeA, transposeB } = this.shape;
    const { bias, activation, gated } = this.epilogue;
    // A is M×K (K contiguous) or, transposed, K×M (M contiguous); B is K×N or, transposed, N×K.
    const { tile } = this.shape;
    const loadA = loadTile('A', transposeA ? 'kMajor' : 'kMinor', this.vec4A, gated === 'a', tile);
    const loadB = loadTile('B', transposeB ? 'kMinor' : 'kMajor', this.vec4B, gated === 'b', tile);
    const biasTerm = bias === 'none' ? '' : bias === 'scalar' ? ' + bias[0]' : ' + bias[col]';
    const activate = activation === 'relu' ? 'value = select(value, 0.0, value < 0.0);' : '';
    return `
      var<workgroup> tileA : array<array<vec4<f32>, ${tile / 4}>, ${TILE_K}>;
      var<workgroup> tileB : array<array<vec4<f32>, ${tile / 4}>, ${TILE_K}>;

      fn main() {
        let batch = i32(workgroupId.z);
        let tileRow = i32(workgroupId.y) * ${tile};
        let tileCol = i32(workgroupId.x) * ${tile};
        let thread = i32(localIndex);
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let offsetA = batch * uniforms.batchStrideA;
        let offsetB = batch * uniforms.batchStrideB;
        var acc : array<vec4<f32>, 4>;
        for (var i = 0; i < 4; i++) { acc[i] = vec4<f32>(0.0); }
        let steps = (uniforms.dimK + ${TILE_K - 1}) / ${TILE_K};
        for (var step = 0; step < steps; step++) {
          let kBase = step * ${TILE_K};
          ${loadA}
          ${loadB}
          workgroupBarrier();
          for (var kk = 0; kk < ${TILE_K}; kk++) {
            let a = tileA[kk][ty];
            let b = tileB[kk][tx];
            acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
          }
          workgroupBarrier();
        }
        let outBase = batch * uniforms.dimM * uniforms.dimN;
        for (var i = 0; i < 4; i++) {
          let row = tileRow + ty * 4 + i;
          if (row >= uniforms.dimM) { break; }
          for (var j = 0; j < 4; j++) {
            let col = tileCol + tx * 4 + j;
            if (col < uniforms.dimN) {
              var value = acc[i][j]${biasTerm};
              ${activate}
              result[outBase + row * uniforms.dimN + col] = value;
            }
          }
        }
      }
    `;
  }
}

/**
 * How an operand is laid out relative to K: 'kMinor' when K is its contiguous dimension (A as
 * stored, or Bᵀ), 'kMajor' when the outer dimension (M or N) is (Aᵀ, or B as stored).
 */
type Layout = 'kMinor' | 'kMajor';

/**
 * WGSL that stages one 16-deep slice of operand `name` (A or B) into its tile. Every thread
 * writes whole vec4s of the tile, never single components: a component store into workgroup
 * memory may be compiled as a read-modify-write of the whole vector (Tint does so for HLSL), which
 * would race with the neighbouring threads. Reads are arranged so that neighbouring threads read
 * neighbouring addresses; out-of-range elements read as 0.
 */
function loadTile(
  name: 'A' | 'B',
  layout: Layout,
  vec4: boolean,
  gated: boolean,
  side: TileSide,
): string {
  const quads = side / 4;
  const threads = quads * quads;
  // Each slot is one vec4 of the tile: TILE_K rows of side/4; threads take them in turn.
  const slots = `for (var slot = thread; slot < ${TILE_K * quads}; slot = slot + ${threads})`;
  const tile = name === 'A' ? 'tileA' : 'tileB';
  const offset = name === 'A' ? 'offsetA' : 'offsetB';
  const tileOuter = name === 'A' ? 'tileRow' : 'tileCol';
  const outer = name === 'A' ? 'uniforms.dimM' : 'uniforms.dimN';
  const zero = 'vec4<f32>(0.0)';
  // Flat index of element (outerIndex, kIndex) in the operand's batch matrix.
  const flat = (outerIndex: string, kIndex: string) =>
    layout === 'kMinor'
      ? `${offset} + (${outerIndex}) * uniforms.dimK + ${kIndex}`
      : `${offset} + ${kIndex} * ${outer} + ${outerIndex}`;
  if (!vec4) {
    const read = gated ? 'select(0.0, NAME[index], G[index] > 0.0)' : 'NAME[index]';
    // Each thread reads four outer neighbours at one K; kMinor threads go along K, so that
    // neighbouring threads read neighbouring addresses in both layouts.
    const split =
      layout === 'kMinor'
        ? `let kLocal = slot % ${TILE_K}; let quad = slot / ${TILE_K};`
        : `let kLocal = slot / ${quads}; let quad = slot % ${quads};`;
    return `
    ${slots} {
      ${split}
      let kIndex = kBase + kLocal;
      var value = ${zero};
      if (kIndex < uniforms.dimK) {
        for (var c = 0; c < 4; c++) {
          let outerIndex = ${tileOuter} + quad * 4 + c;
          if (outerIndex < ${outer}) {
            let index = ${flat('outerIndex', 'kIndex')};
            value[c] = ${read.replaceAll('NAME', name)};
          }
        }
      }
      ${tile}[kLocal][quad] = value;
    }`;
  }
  const read = (index: string) =>
    gated ? `select(${zero}, ${name}[${index}], G[${index}] > ${zero})` : `${name}[${index}]`;
  if (layout === 'kMajor') {
    // A vec4 runs along the outer dimension: it is one vec4 of the tile as it is.
    return `
    ${slots} {
      let kLocal = slot / ${quads};
      let quad = slot % ${quads};
      let outerIndex = ${tileOuter} + quad * 4;
      let kIndex = kBase + kLocal;
      var value = ${zero};
      if (outerIndex < ${outer} && kIndex < uniforms.dimK) {
        let index = (${flat('outerIndex', 'kIndex')}) / 4;
        value = ${read('index')};
      }
      ${tile}[kLocal][quad] = value;
    }`;
  }
  // A vec4 runs along K: a thread reads a 4×4 block (four outer neighbours, four K) and writes it
  // transposed, four whole vec4s.
  return `
    for (var block = thread; block < ${quads * (TILE_K / 4)}; block = block + ${threads}) {
      let quad = block / ${TILE_K / 4};
      let kLocal = (block % ${TILE_K / 4}) * 4;
      let kIndex = kBase + kLocal;
      var rows : array<vec4<f32>, 4>;
      for (var r = 0; r < 4; r++) {
        let outerIndex = ${tileOuter} + quad * 4 + r;
        rows[r] = ${zero};
        if (outerIndex < ${outer} && kIndex < uniforms.dimK) {
          let index = (${flat('outerIndex', 'kIndex')}) / 4;
          rows[r] = ${read('index')};
        }
      }
      ${tile}[kLocal][quad] = vec4<f32>(rows[0].x, rows[1].x, rows[2].x, rows[3].x);
      ${tile}[kLocal + 1][quad] = vec4<f32>(rows[0].y, rows[1].y, rows[2].y, rows[3].y);
      ${tile}[kLocal + 2][quad] = vec4<f32>(rows[0].z, rows[1].z, rows[2].z, rows[3].z);
      ${tile}[kLocal + 3][quad] = vec4<f32>(rows[0].w, rows[1].w, rows[2].w, rows[3].w);
    }`;
}

/** Columns per workgroup of {@link ColumnSumProgram}, and threads that share one column. */
const SUM_COLUMNS = 16;
const SUM_PARTS = 16;

/**
 * Column sums of an `[M, N]` matrix, optionally gated like the products: the bias gradient of a
 * dense layer, with ReLU's backward applied on the fly instead of in a pass of its own. Sixteen
 * threads share a column (every sixteenth row each, neighbouring threads on neighbouring
 * columns) and add their partial sums in workgroup memory, so a layer of a few hundred units
 * still keeps thousands of threads busy.
 */
export class ColumnSumProgram implements WebGpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number] = [SUM_COLUMNS, SUM_PARTS, 1];
  uniforms: string;
  /** The values of {@link uniforms}, in order, for `runWebGPUProgram`. */
  readonly uniformData: ProgramUniform[];

  constructor(
    rows: number,
    columns: number,
    private readonly gated: boolean,
  ) {
    ({ declaration: this.uniforms, values: this.uniformData } = scalarUniforms([
      { name: 'dimM', type: 'i32', value: rows },
      { name: 'dimN', type: 'i32', value: columns },
    ]));
    this.outputShape = [columns];
    this.dispatch = [Math.ceil(columns / SUM_COLUMNS), 1, 1];
    this.variableNames = gated ? ['X', 'G'] : ['X'];
    this.shaderKey = `gradientRoutingColumnSum_${gated}`;
  }

  getUserCode(): string {
    const read = this.gated ? 'select(0.0, X[index], G[index] > 0.0)' : 'X[index]';
    // main's flat index is not used: a column and a part come from the workgroup coordinates.
    return `
      var<workgroup> partial : array<array<f32, ${SUM_COLUMNS}>, ${SUM_PARTS}>;

      fn main(flatIndex : i32) {
        let local = i32(localId.x);
        let part = i32(localId.y);
        let col = i32(workgroupId.x) * ${SUM_COLUMNS} + local;
        var total = 0.0;
        if (col < uniforms.dimN) {
          for (var row = part; row < uniforms.dimM; row = row + ${SUM_PARTS}) {
            let index = row * uniforms.dimN + col;
            total = total + ${read};
          }
        }
        partial[part][local] = total;
        workgroupBarrier();
        if (part == 0 && col < uniforms.dimN) {
          var sum = 0.0;
          for (var p = 0; p < ${SUM_PARTS}; p++) { sum = sum + partial[p][local]; }
          result[col] = sum;
        }
      }
    `;
  }
}
