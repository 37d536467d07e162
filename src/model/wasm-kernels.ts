/**
 * The decoder's matrix-vector kernel as WebAssembly SIMD (f32x4), assembled here from opcodes so no
 * toolchain or binary blob is needed. V8 runs it without bounds checks and four lanes at a time,
 * about 3x the JIT's scalar loop. Every Node we support (>= 20) has WebAssembly SIMD; where it is
 * missing, `wasmKernels()` returns undefined and the decoder keeps its JavaScript loop.
 *
 * matmul(y, x, w, n, d, rows): y[b*d + i] = sum_j w[i*n + j] * x[b*n + j], byte pointers into the
 * module's memory, n and d multiples of 4. Four rows of W per pass share each load of x, and each
 * row keeps four lane sums (float32, as run.c accumulates in float32).
 */

// Opcodes (WebAssembly core spec, binary format; SIMD proposal as standardized).
const I32 = 0x7f;
const op = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  get: 0x20,
  set: 0x21,
  tee: 0x22,
  i32Const: 0x41,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Mul: 0x6c,
  i32Shl: 0x74,
  f32Store: 0x38,
  f32Add: 0x92,
} as const;
const simd = (code: number): number[] => [0xfd, ...uleb(code)];
const v128Load = [...simd(0x00), 2, 0]; // align 2^2 (a hint; unaligned is allowed), offset 0
const f32x4Splat = simd(0x13);
const f32x4Extract = (lane: number): number[] => [...simd(0x1f), lane];
const f32x4Add = simd(0xe4);
const f32x4Mul = simd(0xe6);

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const str = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

// matmul's locals: params 0..5, then i32 locals 6..13, v128 locals 14..18.
const Y = 0, X = 1, W = 2, N = 3, D = 4, ROWS = 5;
const B = 6, I = 7, J = 8, W0 = 9, XB = 10, YB = 11, NB = 12, END = 13;
const A0 = 14, A1 = 15, A2 = 16, A3 = 17, XV = 18;

const get = (l: number): number[] => [op.get, l];
const set = (l: number): number[] => [op.set, l];
const add = (a: number[], b: number[]): number[] => [...a, ...b, op.i32Add];
const constI = (n: number): number[] => [op.i32Const, ...sleb(n)];
/** Horizontal sum of a v128 local's four f32 lanes, in lane order. */
const hsum = (l: number): number[] => [...get(l), ...f32x4Extract(0), ...get(l), ...f32x4Extract(1), op.f32Add, ...get(l), ...f32x4Extract(2), op.f32Add, ...get(l), ...f32x4Extract(3), op.f32Add];
/** acc += load(W0 + k*NB + J) * XV */
const fma = (acc: number, k: number): number[] => [...get(acc), ...add(add(get(W0), k === 0 ? constI(0) : [...get(NB), ...constI(k), op.i32Mul]), get(J)), ...v128Load, ...get(XV), ...f32x4Mul, ...f32x4Add, ...set(acc)];
const zero = (l: number): number[] => [op.i32Const, 0, 0xb2 /* f32.convert_i32_s */, ...f32x4Splat, ...set(l)];
const store = (k: number, acc: number): number[] => [...add(get(YB), constI(4 * k)), ...hsum(acc), op.f32Store, 2, 0];

const matmulBody: number[] = [
  ...[...get(N), ...constI(2), op.i32Shl, ...set(NB)], // row stride in bytes
  ...[...constI(0), ...set(B)],
  op.block, 0x40, op.loop, 0x40, // for b < rows
  ...[...get(B), ...get(ROWS), op.i32GeU, op.brIf, 1],
  ...[...get(X), ...get(B), ...get(NB), op.i32Mul, op.i32Add, ...set(XB)],
  ...[...get(Y), ...get(B), ...get(D), op.i32Mul, ...constI(2), op.i32Shl, op.i32Add, ...set(YB)],
  ...[...get(W), ...set(W0), ...constI(0), ...set(I)],
  op.block, 0x40, op.loop, 0x40, // for i < d, step 4
  ...[...get(I), ...get(D), op.i32GeU, op.brIf, 1],
  ...zero(A0), ...zero(A1), ...zero(A2), ...zero(A3),
  ...[...constI(0), ...set(J), ...get(NB), ...set(END)],
  op.block, 0x40, op.loop, 0x40, // for j < n (bytes), step 16
  ...[...get(J), ...get(END), op.i32GeU, op.brIf, 1],
  ...[...get(XB), ...get(J), op.i32Add, ...v128Load, ...set(XV)],
  ...fma(A0, 0), ...fma(A1, 1), ...fma(A2, 2), ...fma(A3, 3),
  ...[...get(J), ...constI(16), op.i32Add, ...set(J), op.br, 0],
  op.end, op.end,
  ...store(0, A0), ...store(1, A1), ...store(2, A2), ...store(3, A3),
  ...[...get(W0), ...get(NB), ...constI(4), op.i32Mul, op.i32Add, ...set(W0)],
  ...[...get(YB), ...constI(16), op.i32Add, ...set(YB)],
  ...[...get(I), ...constI(4), op.i32Add, ...set(I), op.br, 0],
  op.end, op.end,
  ...[...get(B), ...constI(1), op.i32Add, ...set(B), op.br, 0],
  op.end, op.end,
  op.end,
];

function moduleBytes(): Uint8Array {
  const type = section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), 0]]));
  const imports = section(2, vec([[...str("env"), ...str("memory"), 0x02, 0x00, 1]])); // memory, min 1 page
  const funcs = section(3, vec([[0]]));
  const exports = section(7, vec([[...str("matmul"), 0x00, 0]]));
  const locals = vec([[...uleb(8), I32], [...uleb(5), 0x7b /* v128 */]]);
  const body = [...locals, ...matmulBody];
  const code = section(10, vec([[...uleb(body.length), ...body]]));
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...imports, ...funcs, ...exports, ...code]);
}

/** The slice of the WebAssembly JS API used here (the project's TS libs have no DOM/WebAssembly types). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
const api = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export interface WasmKernels {
  memory: WasmMemory;
  matmul(y: number, x: number, w: number, n: number, d: number, rows: number): void;
}

let compiled: object | null | undefined;

/** A fresh instance over its own memory of `bytes` bytes, or undefined without WebAssembly SIMD. */
export function wasmKernels(bytes: number): WasmKernels | undefined {
  if (compiled === undefined) {
    try {
      compiled = api ? new api.Module(moduleBytes()) : null;
    } catch {
      compiled = null;
    }
  }
  if (!api || compiled === null) return undefined;
  const memory = new api.Memory({ initial: Math.ceil(bytes / 65536) + 1 });
  const instance = new api.Instance(compiled, { env: { memory } });
  return { memory, matmul: instance.exports.matmul as WasmKernels["matmul"] };
}
