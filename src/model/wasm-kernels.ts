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
const B = 6, I = 7, J = 8, W0 = 9, XB = 10, YB = 11, NB = 12, END = 13, W1 = 14, W2 = 15, W3 = 16, YI = 17;
const A0 = 18, A1 = 19, A2 = 20, A3 = 21, XV = 22;

const get = (l: number): number[] => [op.get, l];
const set = (l: number): number[] => [op.set, l];
const add = (a: number[], b: number[]): number[] => [...a, ...b, op.i32Add];
const constI = (n: number): number[] => [op.i32Const, ...sleb(n)];
/** Horizontal sum of a v128 local's four f32 lanes, in lane order. */
const hsum = (l: number): number[] => [...get(l), ...f32x4Extract(0), ...get(l), ...f32x4Extract(1), op.f32Add, ...get(l), ...f32x4Extract(2), op.f32Add, ...get(l), ...f32x4Extract(3), op.f32Add];
/** acc += load(row + J) * XV */
const fma = (acc: number, row: number): number[] => [...get(acc), ...add(get(row), get(J)), ...v128Load, ...get(XV), ...f32x4Mul, ...f32x4Add, ...set(acc)];
const zero = (l: number): number[] => [op.i32Const, 0, 0xb2 /* f32.convert_i32_s */, ...f32x4Splat, ...set(l)];
const store = (k: number, acc: number): number[] => [...add(get(YB), constI(4 * k)), ...hsum(acc), op.f32Store, 2, 0];

// Rows of W outside, batch rows inside: each block of four W rows is read from memory once per call
// and stays in L1 across the batch, which is what makes batched decoding cheaper per token.
const matmulBody: number[] = [
  ...[...get(N), ...constI(2), op.i32Shl, ...set(NB)], // row stride in bytes
  ...[...get(W), ...set(W0), ...get(Y), ...set(YI), ...constI(0), ...set(I)],
  op.block, 0x40, op.loop, 0x40, // for i < d, step 4
  ...[...get(I), ...get(D), op.i32GeU, op.brIf, 1],
  ...[...add(get(W0), get(NB)), ...set(W1), ...add(get(W1), get(NB)), ...set(W2), ...add(get(W2), get(NB)), ...set(W3)],
  ...[...constI(0), ...set(B), ...get(X), ...set(XB), ...get(YI), ...set(YB)],
  op.block, 0x40, op.loop, 0x40, // for b < rows
  ...[...get(B), ...get(ROWS), op.i32GeU, op.brIf, 1],
  ...zero(A0), ...zero(A1), ...zero(A2), ...zero(A3),
  ...[...constI(0), ...set(J), ...get(NB), ...set(END)],
  op.block, 0x40, op.loop, 0x40, // for j < n (bytes), step 16
  ...[...get(J), ...get(END), op.i32GeU, op.brIf, 1],
  ...[...get(XB), ...get(J), op.i32Add, ...v128Load, ...set(XV)],
  ...fma(A0, W0), ...fma(A1, W1), ...fma(A2, W2), ...fma(A3, W3),
  ...[...get(J), ...constI(16), op.i32Add, ...set(J), op.br, 0],
  op.end, op.end,
  ...store(0, A0), ...store(1, A1), ...store(2, A2), ...store(3, A3),
  ...[...get(XB), ...get(NB), op.i32Add, ...set(XB)],
  ...[...get(YB), ...get(D), ...constI(2), op.i32Shl, op.i32Add, ...set(YB)],
  ...[...get(B), ...constI(1), op.i32Add, ...set(B), op.br, 0],
  op.end, op.end,
  ...[...add(get(W3), get(NB)), ...set(W0)],
  ...[...get(YI), ...constI(16), op.i32Add, ...set(YI)],
  ...[...get(I), ...constI(4), op.i32Add, ...set(I), op.br, 0],
  op.end, op.end,
  op.end,
];

const F32 = 0x7d;
const V128 = 0x7b;
const f32Load = [0x2a, 2, 0];
const f32Mul = 0x94;
const f32Max = 0x97;
const v128Store = [...simd(0x0b), 2, 0];
const f32Const = (v: number): number[] => [0x43, ...new Uint8Array(Float32Array.of(v).buffer)];

/**
 * scores(att, q, keys, n, hs, scale) -> max: att[t] = (q . keys[t]) * scale for t < n, keys rows of
 * hs floats (hs a multiple of 4); returns the largest score, for the softmax.
 */
const S_ATT = 0, S_Q = 1, S_K = 2, S_N = 3, S_HS = 4, S_SCALE = 5;
const S_T = 6, S_I = 7, S_HB = 8, S_KP = 9, S_MAX = 10, S_V = 11, S_ACC = 12;
const scoresBody: number[] = [
  ...[...get(S_HS), ...constI(2), op.i32Shl, ...set(S_HB)],
  ...[...f32Const(-Infinity), ...set(S_MAX), ...constI(0), ...set(S_T), ...get(S_K), ...set(S_KP)],
  op.block, 0x40, op.loop, 0x40,
  ...[...get(S_T), ...get(S_N), op.i32GeU, op.brIf, 1],
  ...[op.i32Const, 0, 0xb2, ...f32x4Splat, ...set(S_ACC), ...constI(0), ...set(S_I)],
  op.block, 0x40, op.loop, 0x40,
  ...[...get(S_I), ...get(S_HB), op.i32GeU, op.brIf, 1],
  ...[...get(S_ACC), ...add(get(S_Q), get(S_I)), ...v128Load, ...add(get(S_KP), get(S_I)), ...v128Load, ...f32x4Mul, ...f32x4Add, ...set(S_ACC)],
  ...[...get(S_I), ...constI(16), op.i32Add, ...set(S_I), op.br, 0],
  op.end, op.end,
  ...[...hsum(S_ACC), ...get(S_SCALE), f32Mul, op.tee, S_V],
  ...[...get(S_ATT), ...get(S_T), ...constI(2), op.i32Shl, op.i32Add, ...get(S_V), op.f32Store, 2, 0],
  ...[...get(S_MAX), f32Max, ...set(S_MAX)],
  ...[...get(S_KP), ...get(S_HB), op.i32Add, ...set(S_KP)],
  ...[...get(S_T), ...constI(1), op.i32Add, ...set(S_T), op.br, 0],
  op.end, op.end,
  ...get(S_MAX),
  op.end,
];

/** mix(out, att, values, n, hs, inv): out[i] = inv * sum_t att[t] * values[t][i], four lanes of i at a time. */
const M_OUT = 0, M_ATT = 1, M_VAL = 2, M_N = 3, M_HS = 4, M_INV = 5;
const M_I = 6, M_T = 7, M_HB = 8, M_VP = 9, M_AP = 10, M_END = 11, M_ACC = 12;
const mixBody: number[] = [
  ...[...get(M_HS), ...constI(2), op.i32Shl, ...set(M_HB), ...constI(0), ...set(M_I)],
  ...[...get(M_ATT), ...get(M_N), ...constI(2), op.i32Shl, op.i32Add, ...set(M_END)],
  op.block, 0x40, op.loop, 0x40,
  ...[...get(M_I), ...get(M_HB), op.i32GeU, op.brIf, 1],
  ...[op.i32Const, 0, 0xb2, ...f32x4Splat, ...set(M_ACC), ...add(get(M_VAL), get(M_I)), ...set(M_VP), ...get(M_ATT), ...set(M_AP)],
  op.block, 0x40, op.loop, 0x40,
  ...[...get(M_AP), ...get(M_END), op.i32GeU, op.brIf, 1],
  ...[...get(M_ACC), ...get(M_AP), ...f32Load, ...f32x4Splat, ...get(M_VP), ...v128Load, ...f32x4Mul, ...f32x4Add, ...set(M_ACC)],
  ...[...get(M_AP), ...constI(4), op.i32Add, ...set(M_AP), ...get(M_VP), ...get(M_HB), op.i32Add, ...set(M_VP), op.br, 0],
  op.end, op.end,
  ...[...add(get(M_OUT), get(M_I)), ...get(M_ACC), ...get(M_INV), ...f32x4Splat, ...f32x4Mul, ...v128Store],
  ...[...get(M_I), ...constI(16), op.i32Add, ...set(M_I), op.br, 0],
  op.end, op.end,
  op.end,
];

/**
 * softmaxExp(att, groups, max) -> sum: att[t] = exp(att[t] - max) over `groups` groups of four
 * floats, returning the sum. exp is Cephes' expf polynomial (as sse_mathfun's exp_ps), within ~2 ulp
 * of float32; arguments are clamped to [-88.38, 88.38]. Callers pad the last group with -Infinity.
 */
const E_ATT = 0, E_GROUPS = 1, E_MAX = 2;
const E_END = 3, E_X = 4, E_FX = 5, E_Y = 6, E_SUM = 7, E_MAXV = 8;
const f32x4Min = simd(0xe8), f32x4Max = simd(0xe9), f32x4Floor = simd(0x68), f32x4Sub = simd(0xe5);
const i32x4TruncSat = simd(0xf8), i32x4Add = simd(0xae), i32x4Shl = simd(0xab), i32x4Splat = simd(0x11);
const splatF = (v: number): number[] => [...f32Const(v), ...f32x4Splat];
/** y = exp(x) for the v128 local x (already clamped to +-88.38), using fx as scratch; x is clobbered. */
const expInto = (x: number, fx: number, y: number): number[] => [
  // fx = floor(x * log2(e) + 0.5); x -= fx * C1 + fx * C2 (ln 2 in two parts)
  ...[...get(x), ...splatF(1.44269504088896341), ...f32x4Mul, ...splatF(0.5), ...f32x4Add, ...f32x4Floor, ...set(fx)],
  ...[...get(x), ...get(fx), ...splatF(0.693359375), ...f32x4Mul, ...f32x4Sub, ...get(fx), ...splatF(-2.12194440e-4), ...f32x4Mul, ...f32x4Sub, ...set(x)],
  // y = ((((p0 x + p1) x + p2) x + p3) x + p4) x + p5; y = y x^2 + x + 1
  ...[...splatF(1.9875691500e-4), ...get(x), ...f32x4Mul, ...splatF(1.3981999507e-3), ...f32x4Add],
  ...[...get(x), ...f32x4Mul, ...splatF(8.3334519073e-3), ...f32x4Add],
  ...[...get(x), ...f32x4Mul, ...splatF(4.1665795894e-2), ...f32x4Add],
  ...[...get(x), ...f32x4Mul, ...splatF(1.6666665459e-1), ...f32x4Add],
  ...[...get(x), ...f32x4Mul, ...splatF(5.0000001201e-1), ...f32x4Add],
  ...[...get(x), ...get(x), ...f32x4Mul, ...f32x4Mul, ...get(x), ...f32x4Add, ...splatF(1), ...f32x4Add, ...set(y)],
  // times 2^fx, built in the exponent bits
  ...[...get(y), ...get(fx), ...i32x4TruncSat, ...constI(127), ...i32x4Splat, ...i32x4Add, ...constI(23), ...i32x4Shl, ...f32x4Mul, ...set(y)],
];
const clamp = [...splatF(88.3762626647949), ...f32x4Min, ...splatF(-88.3762626647949), ...f32x4Max];

const softmaxBody: number[] = [
  ...[...get(E_ATT), ...get(E_GROUPS), ...constI(4), op.i32Shl, op.i32Add, ...set(E_END)],
  ...[...get(E_MAX), ...f32x4Splat, ...set(E_MAXV), op.i32Const, 0, 0xb2, ...f32x4Splat, ...set(E_SUM)],
  op.block, 0x40, op.loop, 0x40,
  ...[...get(E_ATT), ...get(E_END), op.i32GeU, op.brIf, 1],
  ...[...get(E_ATT), ...v128Load, ...get(E_MAXV), ...f32x4Sub, ...clamp, ...set(E_X)],
  ...expInto(E_X, E_FX, E_Y),
  ...[...get(E_ATT), ...get(E_Y), ...v128Store, ...get(E_SUM), ...get(E_Y), ...f32x4Add, ...set(E_SUM)],
  ...[...get(E_ATT), ...constI(16), op.i32Add, ...set(E_ATT), op.br, 0],
  op.end, op.end,
  ...hsum(E_SUM),
  op.end,
];

/** swiglu(gate, up, groups): gate[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up, four at a time. */
const G_GATE = 0, G_UP = 1, G_GROUPS = 2, G_END = 3, G_X = 4, G_FX = 5, G_Y = 6, G_G = 7;
const f32x4Div = simd(0xe7), f32x4Neg = simd(0xe1);
const swigluBody: number[] = [
  ...[...get(G_GATE), ...get(G_GROUPS), ...constI(4), op.i32Shl, op.i32Add, ...set(G_END)],
  op.block, 0x40, op.loop, 0x40,
  ...[...get(G_GATE), ...get(G_END), op.i32GeU, op.brIf, 1],
  ...[...get(G_GATE), ...v128Load, op.tee, G_G, ...f32x4Neg, ...clamp, ...set(G_X)],
  ...expInto(G_X, G_FX, G_Y),
  ...[...get(G_GATE), ...get(G_G), ...get(G_Y), ...splatF(1), ...f32x4Add, ...f32x4Div, ...get(G_UP), ...v128Load, ...f32x4Mul, ...v128Store],
  ...[...get(G_GATE), ...constI(16), op.i32Add, ...set(G_GATE), ...get(G_UP), ...constI(16), op.i32Add, ...set(G_UP), op.br, 0],
  op.end, op.end,
  op.end,
];

function moduleBytes(): Uint8Array {
  const p6 = (last: number): number[] => vec([[I32], [I32], [I32], [I32], [I32], [last]]);
  const type = section(1, vec([[0x60, ...p6(I32), 0], [0x60, ...p6(F32), 1, F32], [0x60, ...p6(F32), 0], [0x60, ...vec([[I32], [I32], [F32]]), 1, F32], [0x60, ...vec([[I32], [I32], [I32]]), 0]]));
  const imports = section(2, vec([[...str("env"), ...str("memory"), 0x02, 0x00, 1]])); // memory, min 1 page
  const funcs = section(3, vec([[0], [1], [2], [3], [4]]));
  const exports = section(7, vec([[...str("matmul"), 0x00, 0], [...str("scores"), 0x00, 1], [...str("mix"), 0x00, 2], [...str("softmaxExp"), 0x00, 3], [...str("swiglu"), 0x00, 4]]));
  const fn = (locals: number[][], body: number[]): number[] => {
    const full = [...vec(locals), ...body];
    return [...uleb(full.length), ...full];
  };
  const code = section(
    10,
    vec([
      fn([[...uleb(12), I32], [...uleb(5), V128]], matmulBody),
      fn([[...uleb(4), I32], [...uleb(2), F32], [...uleb(1), V128]], scoresBody),
      fn([[...uleb(6), I32], [...uleb(1), V128]], mixBody),
      fn([[...uleb(1), I32], [...uleb(5), V128]], softmaxBody),
      fn([[...uleb(1), I32], [...uleb(4), V128]], swigluBody),
    ]),
  );
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
  scores(att: number, q: number, keys: number, n: number, hs: number, scale: number): number;
  mix(out: number, att: number, values: number, n: number, hs: number, inv: number): void;
  softmaxExp(att: number, groups: number, max: number): number;
  swiglu(gate: number, up: number, groups: number): void;
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
  const e = instance.exports;
  return { memory, matmul: e.matmul as WasmKernels["matmul"], scores: e.scores as WasmKernels["scores"], mix: e.mix as WasmKernels["mix"], softmaxExp: e.softmaxExp as WasmKernels["softmaxExp"], swiglu: e.swiglu as WasmKernels["swiglu"] };
}
