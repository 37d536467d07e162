import { test } from "node:test";
import assert from "node:assert/strict";

import { attentionBackward as jsAttentionBackward, attentionForward as jsAttentionForward, type RopeTable } from "../src/model/attention-js.ts";
import { ropeTables } from "../src/model/llama-tf.ts";
import { loadNative, type NativeEngine } from "../src/model/native.ts";
import type { LlamaConfig } from "../src/model/types.ts";

/**
 * The native kernels against float64 references: plain loops for the forward values, central finite
 * differences of those float64 forwards for every gradient, the JS attention kernel of the wasm path,
 * and the pretrainer's JS AdamW loop (bit for bit). Each op also runs with 1 and 2 threads (results
 * must be bit-identical) and with each SIMD level the CPU has.
 */
const loaded = loadNative();
// Required (a failed load fails the tests instead of skipping them) on CI, or when KTU_TEST_ENGINES
// names native (test/helpers/engines.ts), or with KTU_REQUIRE_NATIVE=1.
const required =
  process.env.CI !== undefined || process.env.KTU_REQUIRE_NATIVE === "1" || (process.env.KTU_TEST_ENGINES ?? "").split(",").includes("native");
const skip = loaded.engine ? false : required ? false : `native addon unavailable: ${loaded.reason}`;
const native = (): NativeEngine => {
  if (!loaded.engine) throw new Error(`native addon unavailable (required on CI): ${loaded.reason}`);
  return loaded.engine;
};

// Deterministic random numbers (mulberry32).
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randn = (r: () => number, n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);

/** max |a - b| / max |b|: the error relative to the reference's scale. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 1e-30;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}
const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 1e-4): void => {
  const e = relErr(a, b);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
};

/** Bit-identical arrays; on failure names the first differing index instead of printing both arrays. */
function same(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i} is ${a[i]} vs ${b[i]}`);
  }
}

/** Gradient of f (float64) at x by central differences, for the entries in `at` (all when absent). */
function numericGrad(x: Float64Array, f: () => number, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i]!;
    x[i] = keep + h;
    const up = f();
    x[i] = keep - h;
    const down = f();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** Runs `fn` with 1 and with 2 threads and each SIMD level the CPU has; asserts every result is bit-identical to the first. */
function acrossConfigs(e: NativeEngine, fn: () => Float32Array[]): Float32Array[] {
  const start = e.info();
  const levels = [...new Set((["avx512", "avx2", "generic"] as const).map((l) => e.setSimd(l)))];
  let first: Float32Array[] | undefined;
  let firstLevel = "";
  // Every op threaded however small, so that 2 threads really split the work of these test shapes.
  e.setParallelMin(0, 0);
  try {
    for (const level of levels) {
      e.setSimd(level as "avx512");
      let levelFirst: Float32Array[] | undefined;
      for (const threads of [1, 2]) {
        e.setThreads(threads);
        const out = fn().map((a) => Float32Array.from(a));
        if (!levelFirst) levelFirst = out;
        else out.forEach((a, i) => same(a, levelFirst![i]!, `${level}: output ${i}, 1 vs 2 threads`));
      }
      // Different SIMD levels may round differently (FMA vs mul+add), so they are compared with a tolerance.
      if (!first) {
        first = levelFirst;
        firstLevel = level;
      } else
        levelFirst!.forEach((a, i) => {
          // Against the reference's scale, but at least 1 (the inputs are of order 1): a gradient that is
          // zero up to rounding (RMSNorm of one column) has no meaningful relative error.
          let err = 0;
          let scale = 1;
          for (let j = 0; j < a.length; j++) {
            err = Math.max(err, Math.abs(a[j]! - first![i]![j]!));
            scale = Math.max(scale, Math.abs(first![i]![j]!));
          }
          assert.ok(err <= 1e-5 * scale, `${level} vs ${firstLevel}, output ${i}: error ${err} at scale ${scale}`);
        });
    }
  } finally {
    e.setSimd(start.simd);
    e.setThreads(start.threads);
    e.setParallelMin(8e6, 262144);
  }
  return first!;
}

test("native: loads and reports its SIMD level", { skip }, () => {
  const info = native().info();
  assert.ok(["avx512", "avx2", "generic"].includes(info.simd), info.simd);
  assert.ok(info.threads >= 1);
  assert.match(info.compiler, /g\+\+|clang/);
});

test("native sgemm: every transpose combination, odd sizes, strides, alpha/beta, vs float64", { skip }, () => {
  const e = native();
  const r = rng(1);
  const shapes: Array<[number, number, number]> = [[1, 1, 1], [1, 17, 3], [3, 1, 5], [17, 33, 1], [15, 31, 257], [29, 65, 300], [64, 70, 520], [130, 8, 96], [70, 31, 40], [8, 600, 130], [4, 300, 1000], [2, 50, 33]];
  for (const [M, N, K] of shapes)
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const pad = 3;
        const lda = (ta ? M : K) + pad;
        const ldb = (tb ? K : N) + pad;
        const ldc = N + 1;
        const A = randn(r, (ta ? K : M) * lda);
        const B = randn(r, (tb ? N : K) * ldb);
        const C0 = randn(r, M * ldc);
        for (const [alpha, beta] of [[1, 0], [0.5, 0.25], [-1, 1]] as const) {
          const want = new Float64Array(M * N);
          for (let i = 0; i < M; i++)
            for (let j = 0; j < N; j++) {
              let s = 0;
              for (let k = 0; k < K; k++) s += (ta ? A[k * lda + i]! : A[i * lda + k]!) * (tb ? B[j * ldb + k]! : B[k * ldb + j]!);
              want[i * N + j] = alpha * s + beta * C0[i * ldc + j]!;
            }
          const [C] = acrossConfigs(e, () => {
            const C = Float32Array.from(C0);
            e.sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return [C];
          });
          const got = new Float64Array(M * N);
          for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) got[i * N + j] = C![i * ldc + j]!;
          close(got, want, `sgemm ${ta ? "T" : "N"}${tb ? "T" : "N"} ${M}x${N}x${K} alpha ${alpha} beta ${beta}`);
          // The padding column of C is never written.
          for (let i = 0; i < M; i++) assert.equal(C![i * ldc + N], C0[i * ldc + N], "sgemm wrote outside C's N columns");
        }
      }
});

test("native sgemm: beta 0 ignores NaN in C; views with a byte offset; size checks throw", { skip }, () => {
  const e = native();
  const base = new Float32Array(20).fill(1);
  const A = base.subarray(4, 10); // 2x3 ones
  const B = new Float32Array([1, 2, 3, 4, 5, 6]); // 3x2
  const C = new Float32Array(4).fill(NaN);
  e.sgemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, C, 2);
  assert.deepEqual(Array.from(C), [9, 12, 9, 12]);
  assert.throws(() => e.sgemm(false, false, 3, 2, 3, 1, A, 3, B, 2, 0, C, 2), RangeError);
  assert.throws(() => e.sgemm(false, false, 2, 2, 3, 1, A, 2, B, 2, 0, C, 2), RangeError);
  assert.throws(() => e.sgemm(false, false, 2, 2, 3, 1, new Float64Array(6) as unknown as Float32Array, 3, B, 2, 0, C, 2), TypeError);
});

// ---------------------------------------------------------------------------------------------------
// Attention: float64 forward from the same tables; gradients by finite differences of it.
interface AttnCase {
  B: number;
  T: number;
  H: number;
  KV: number;
  hd: number;
  style: "interleaved" | "rotate-half";
}

function tables(c: AttnCase): { cos: Float32Array; sin: Float32Array; table: RopeTable } {
  const config = { dim: c.H * c.hd, nHeads: c.H, ropeTheta: 10000, ropeStyle: c.style } as unknown as LlamaConfig;
  const t = ropeTables(config, c.T);
  const partner = new Int32Array(c.hd);
  const sign = new Float32Array(c.hd);
  for (let j = 0; j < c.hd / 2; j++) {
    const [a, b] = c.style === "interleaved" ? [2 * j, 2 * j + 1] : [j, j + c.hd / 2];
    partner[a] = b;
    partner[b] = a;
    sign[a] = -1;
    sign[b] = 1;
  }
  return { cos: t.cos, sin: t.sin, table: { cos: t.cos, sin: t.sin, partner, sign } };
}

/** out [B*T, H*hd] in float64. */
function attentionRef(c: AttnCase, tb: RopeTable, q: Float64Array, k: Float64Array, v: Float64Array): Float64Array {
  const { B, T, H, KV, hd } = c;
  const g = H / KV;
  const rope = (x: Float64Array, heads: number): Float64Array => {
    const y = new Float64Array(x.length);
    for (let n = 0; n < B * T; n++)
      for (let h = 0; h < heads; h++)
        for (let d = 0; d < hd; d++) {
          const p = tb.partner[d]!;
          const o = (n * heads + h) * hd;
          const pos = (n % T) * hd;
          y[o + d] = x[o + d]! * tb.cos[pos + d]! + tb.sign[d]! * x[o + p]! * tb.sin[pos + p]!;
        }
    return y;
  };
  const qr = rope(q, H);
  const kr = rope(k, KV);
  const out = new Float64Array(B * T * H * hd);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / g);
      for (let i = 0; i < T; i++) {
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += qr[((b * T + i) * H + h) * hd + d]! * kr[((b * T + j) * KV + kh) * hd + d]!;
          s[j] = dot / Math.sqrt(hd);
          mx = Math.max(mx, s[j]!);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += (s[j] = Math.exp(s[j]! - mx));
        for (let j = 0; j <= i; j++)
          for (let d = 0; d < hd; d++) out[((b * T + i) * H + h) * hd + d] += (s[j]! / sum) * v[((b * T + j) * KV + kh) * hd + d]!;
      }
    }
  return out;
}

function runAttention(e: NativeEngine, c: AttnCase, q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array): Float32Array[] {
  const { B, T, H, KV, hd } = c;
  const { cos, sin } = tables(c);
  const style = c.style === "interleaved" ? 0 : 1;
  const out = new Float32Array(B * T * H * hd);
  const lse = new Float32Array(B * H * T);
  e.attentionForward(q, k, v, B, T, H, KV, hd, cos, sin, style, out, lse);
  const dq = new Float32Array(q.length).fill(NaN);
  const dk = new Float32Array(k.length).fill(NaN);
  const dv = new Float32Array(v.length).fill(NaN);
  e.attentionBackward(dout, q, k, v, out, lse, B, T, H, KV, hd, cos, sin, style, dq, dk, dv);
  return [out, lse, dq, dk, dv];
}

for (const c of [
  { B: 1, T: 1, H: 1, KV: 1, hd: 2, style: "interleaved" },
  { B: 2, T: 5, H: 4, KV: 2, hd: 8, style: "interleaved" },
  { B: 2, T: 5, H: 4, KV: 2, hd: 8, style: "rotate-half" },
  { B: 1, T: 7, H: 3, KV: 1, hd: 6, style: "rotate-half" },
] as AttnCase[]) {
  test(`native attention fwd/bwd vs float64 finite differences: B${c.B} T${c.T} H${c.H}/${c.KV} hd${c.hd} ${c.style}`, { skip }, () => {
    const e = native();
    const r = rng(7 + c.T);
    const { B, T, H, KV, hd } = c;
    const q = randn(r, B * T * H * hd);
    const k = randn(r, B * T * KV * hd);
    const v = randn(r, B * T * KV * hd);
    const dout = randn(r, B * T * H * hd);
    const [out, , dq, dk, dv] = acrossConfigs(e, () => runAttention(e, c, q, k, v, dout));
    const { table } = tables(c);
    const q64 = Float64Array.from(q);
    const k64 = Float64Array.from(k);
    const v64 = Float64Array.from(v);
    close(out!, attentionRef(c, table, q64, k64, v64), "attention forward");
    const loss = (): number => attentionRef(c, table, q64, k64, v64).reduce((s, o, i) => s + o * dout[i]!, 0);
    close(dq!, numericGrad(q64, loss), "attention dq");
    close(dk!, numericGrad(k64, loss), "attention dk");
    close(dv!, numericGrad(v64, loss), "attention dv");
  });
}

test("native attention: larger shapes (multi-block, GQA) against the wasm path's JS kernel; fused-qkv strides", { skip }, () => {
  const e = native();
  for (const c of [
    { B: 2, T: 130, H: 4, KV: 4, hd: 32, style: "interleaved" },
    { B: 1, T: 200, H: 9, KV: 3, hd: 64, style: "rotate-half" },
  ] as AttnCase[]) {
    const r = rng(c.T);
    const { B, T, H, KV, hd } = c;
    const q = randn(r, B * T * H * hd);
    const k = randn(r, B * T * KV * hd);
    const v = randn(r, B * T * KV * hd);
    const dout = randn(r, B * T * H * hd);
    const [out, lse, dq, dk, dv] = acrossConfigs(e, () => runAttention(e, c, q, k, v, dout));
    const { table } = tables(c);
    const shape = { batch: B, seq: T, heads: H, kvHeads: KV, headDim: hd };
    const f = jsAttentionForward(q, k, v, shape, table);
    const g = jsAttentionBackward(dout, f, shape, table);
    const what = `T${T} H${H}/${KV} hd${hd}`;
    close(out!, f.out, `${what} out`);
    close(lse!, f.lse, `${what} lse`);
    close(dq!, g.dq, `${what} dq`);
    close(dk!, g.dk, `${what} dk`);
    close(dv!, g.dv, `${what} dv`);

    // The same through strided views of one fused [N, (H+2KV)*hd] matrix.
    const W = (H + 2 * KV) * hd;
    const N = B * T;
    const qkv = new Float32Array(N * W);
    for (let n = 0; n < N; n++) {
      qkv.set(q.subarray(n * H * hd, (n + 1) * H * hd), n * W);
      qkv.set(k.subarray(n * KV * hd, (n + 1) * KV * hd), n * W + H * hd);
      qkv.set(v.subarray(n * KV * hd, (n + 1) * KV * hd), n * W + (H + KV) * hd);
    }
    const { cos, sin } = tables(c);
    const style = c.style === "interleaved" ? 0 : 1;
    const out2 = new Float32Array(N * H * hd);
    const lse2 = new Float32Array(B * H * T);
    e.attentionForward(qkv, qkv.subarray(H * hd), qkv.subarray((H + KV) * hd), B, T, H, KV, hd, cos, sin, style, out2, lse2, W, W);
    same(out2, out!, "fused-qkv forward vs dense");
    const dqkv = new Float32Array(N * W).fill(7);
    e.attentionBackward(dout, qkv, qkv.subarray(H * hd), qkv.subarray((H + KV) * hd), out2, lse2, B, T, H, KV, hd, cos, sin, style, dqkv, dqkv.subarray(H * hd), dqkv.subarray((H + KV) * hd), W, W);
    for (let n = 0; n < N; n++) {
      same(dqkv.subarray(n * W, n * W + H * hd), dq!.subarray(n * H * hd, (n + 1) * H * hd), "fused-qkv dq");
      same(dqkv.subarray(n * W + H * hd, n * W + (H + KV) * hd), dk!.subarray(n * KV * hd, (n + 1) * KV * hd), "fused-qkv dk");
      same(dqkv.subarray(n * W + (H + KV) * hd, (n + 1) * W), dv!.subarray(n * KV * hd, (n + 1) * KV * hd), "fused-qkv dv");
    }
  }
});

// ---------------------------------------------------------------------------------------------------
test("native rmsnorm fwd/bwd vs float64 and finite differences (dw accumulates)", { skip }, () => {
  const e = native();
  // Not D = 1: there dx is zero up to float32 cancellation (y = sign(x) w), so no relative error means anything.
  for (const [N, D] of [[1, 3], [3, 7], [70, 33]]) {
    const r = rng(N * 100 + D);
    const x = randn(r, N * D);
    const w = randn(r, D);
    const dy = randn(r, N * D);
    const eps = 1e-5;
    const dw0 = randn(r, D);
    const [y, rstd, dx, dw] = acrossConfigs(e, () => {
      const y = new Float32Array(N * D);
      const rstd = new Float32Array(N);
      e.rmsnormForward(x, w, N, D, eps, y, rstd);
      const dx = new Float32Array(N * D);
      const dw = Float32Array.from(dw0);
      e.rmsnormBackward(dy, x, w, rstd, N, D, dx, dw);
      return [y, rstd, dx, dw];
    });
    const x64 = Float64Array.from(x);
    const w64 = Float64Array.from(w);
    const fwd = (): Float64Array => {
      const out = new Float64Array(N * D);
      for (let n = 0; n < N; n++) {
        let ss = 0;
        for (let d = 0; d < D; d++) ss += x64[n * D + d]! ** 2;
        const rs = 1 / Math.sqrt(ss / D + eps);
        for (let d = 0; d < D; d++) out[n * D + d] = x64[n * D + d]! * rs * w64[d]!;
      }
      return out;
    };
    close(y!, fwd(), `rmsnorm y ${N}x${D}`);
    close(rstd!, Array.from({ length: N }, (_, n) => 1 / Math.sqrt(x.subarray(n * D, (n + 1) * D).reduce((s, a) => s + a * a, 0) / D + eps)), "rstd");
    const loss = (): number => fwd().reduce((s, o, i) => s + o * dy[i]!, 0);
    close(dx!, numericGrad(x64, loss), `rmsnorm dx ${N}x${D}`);
    const gw = numericGrad(w64, loss);
    close(dw!, gw.map((g, i) => g + dw0[i]!), `rmsnorm dw ${N}x${D}`);
  }
});

test("native swiglu fwd/bwd vs float64 and finite differences", { skip }, () => {
  const e = native();
  for (const [N, F] of [[1, 1], [5, 17], [40, 100]]) {
    const r = rng(N + F);
    const gu = randn(r, N * 2 * F, 4);
    const dh = randn(r, N * F);
    const [h, dgu] = acrossConfigs(e, () => {
      const h = new Float32Array(N * F);
      e.swigluForward(gu, N, F, h);
      const dgu = new Float32Array(N * 2 * F);
      e.swigluBackward(dh, gu, N, F, dgu);
      return [h, dgu];
    });
    const gu64 = Float64Array.from(gu);
    const fwd = (): Float64Array => {
      const out = new Float64Array(N * F);
      for (let n = 0; n < N; n++)
        for (let f = 0; f < F; f++) {
          const g = gu64[n * 2 * F + f]!;
          out[n * F + f] = (g / (1 + Math.exp(-g))) * gu64[n * 2 * F + F + f]!;
        }
      return out;
    };
    close(h!, fwd(), `swiglu h ${N}x${F}`);
    close(dgu!, numericGrad(gu64, () => fwd().reduce((s, o, i) => s + o * dh[i]!, 0)), `swiglu dgu ${N}x${F}`);
  }
});

test("native embedding gather and scatter-add (repeated ids), bad ids throw", { skip }, () => {
  const e = native();
  const r = rng(5);
  const V = 11;
  const D = 70;
  const ids = Int32Array.from([3, 0, 10, 3, 3, 7, 0]);
  const N = ids.length;
  const table = randn(r, V * D);
  const dout = randn(r, N * D);
  const dt0 = randn(r, V * D);
  const [out, dt] = acrossConfigs(e, () => {
    const out = new Float32Array(N * D);
    e.embeddingForward(table, ids, N, D, V, out);
    const dt = Float32Array.from(dt0);
    e.embeddingBackward(dout, ids, N, D, V, dt);
    return [out, dt];
  });
  for (let n = 0; n < N; n++) same(out!.subarray(n * D, (n + 1) * D), table.subarray(ids[n]! * D, (ids[n]! + 1) * D), "embedding row");
  const want = Float64Array.from(dt0);
  for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) want[ids[n]! * D + d] += dout[n * D + d]!;
  close(dt!, want, "embedding backward", 1e-6);
  assert.throws(() => e.embeddingForward(table, Int32Array.from([11]), 1, D, V, out!), RangeError);
  assert.throws(() => e.embeddingBackward(dout, Int32Array.from([-1]), 1, D, V, dt!), RangeError);
});

test("native cross-entropy: loss and gradient (in place, ignored rows) vs float64", { skip }, () => {
  const e = native();
  for (const [R, V] of [[1, 1], [1, 5], [6, 37], [33, 4100]]) {
    const r = rng(R + V);
    const logits = randn(r, R * V, 8);
    const targets = Int32Array.from({ length: R }, (_, i) => (i % 5 === 4 ? -1 : Math.floor(r() * V)));
    const scale = 1 / 3;
    let loss = 0;
    const [dl] = acrossConfigs(e, () => {
      const d = Float32Array.from(logits);
      loss = e.crossEntropy(d, targets, R, V, scale, d);
      return [d];
    });
    const x64 = Float64Array.from(logits);
    const ref = (): number => {
      let total = 0;
      for (let i = 0; i < R; i++) {
        if (targets[i]! < 0) continue;
        const row = x64.subarray(i * V, (i + 1) * V);
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((s, a) => s + Math.exp(a - mx), 0));
        total += lse - row[targets[i]!]!;
      }
      return total * scale;
    };
    const want = ref();
    assert.ok(Math.abs(loss - want) <= 1e-5 * Math.max(1, Math.abs(want)), `loss ${loss} vs ${want}`);
    if (R * V <= 300) close(dl!, numericGrad(x64, ref), `cross-entropy grad ${R}x${V}`);
    else {
      const g = new Float64Array(R * V);
      for (let i = 0; i < R; i++) {
        if (targets[i]! < 0) continue;
        const row = x64.subarray(i * V, (i + 1) * V);
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((s, a) => s + Math.exp(a - mx), 0));
        for (let j = 0; j < V; j++) g[i * V + j] = (Math.exp(row[j]! - lse) - (j === targets[i] ? 1 : 0)) * scale;
      }
      close(dl!, g, `cross-entropy grad ${R}x${V}`);
    }
  }
});

test("native adamw is bit-identical to pretrain.ts's JS loop; sumSquares matches float64", { skip }, () => {
  const e = native();
  const r = rng(11);
  const n = 100_003;
  const w0 = randn(r, n);
  const g = randn(r, n, 0.1);
  const m0 = randn(r, n, 0.01);
  const v0 = Float32Array.from(randn(r, n, 0.001), Math.abs);
  const o = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const lr = 3e-4;
  const t = 7;
  const clip = 0.8;
  const bc1 = 1 - Math.pow(o.beta1, t);
  const sqrtBc2 = Math.sqrt(1 - Math.pow(o.beta2, t));
  const decay = 1 - lr * o.weightDecay;
  // The loop of Pretrainer.applyGradients.
  const m = Float32Array.from(m0);
  const v = Float32Array.from(v0);
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    const gj = g[j]! * clip;
    m[j] = o.beta1 * m[j]! + (1 - o.beta1) * gj;
    v[j] = o.beta2 * v[j]! + (1 - o.beta2) * gj * gj;
    out[j] = w0[j]! * decay - ((lr / bc1) * m[j]!) / (Math.sqrt(v[j]!) / sqrtBc2 + o.eps);
  }
  const [w2, m2, v2] = acrossConfigs(e, () => {
    const w = Float32Array.from(w0);
    const mm = Float32Array.from(m0);
    const vv = Float32Array.from(v0);
    e.adamw(w, g, mm, vv, lr, o.beta1, o.beta2, o.eps, decay, clip, bc1, sqrtBc2);
    return [w, mm, vv];
  });
  same(m2!, m, "adamw m");
  same(v2!, v, "adamw v");
  same(w2!, out, "adamw param");
  let sq = 0;
  for (let j = 0; j < n; j++) sq += g[j]! * g[j]!;
  const s1 = e.sumSquares(g);
  assert.ok(Math.abs(s1 - sq) <= 1e-12 * sq, `sumSquares ${s1} vs ${sq}`);
  e.setThreads(1);
  const s2 = e.sumSquares(g);
  e.setThreads(2);
  assert.equal(e.sumSquares(g), s2, "sumSquares depends on the thread count");
  assert.equal(e.sumSquares(new Float32Array(0)), 0);
});

test("native attentionCached: a prefill then token-by-token decode on a KV cache gives attentionForward's rows", { skip }, () => {
  const e = native();
  for (const c of [
    { B: 1, T: 70, H: 4, KV: 2, hd: 16, style: "interleaved" },
    { B: 1, T: 9, H: 3, KV: 3, hd: 6, style: "rotate-half" },
  ] as AttnCase[]) {
    const r = rng(99 + c.T);
    const { T, H, KV, hd } = c;
    const q = randn(r, T * H * hd);
    const k = randn(r, T * KV * hd);
    const v = randn(r, T * KV * hd);
    const { cos, sin } = tables(c);
    const style = c.style === "interleaved" ? 0 : 1;
    const want = new Float32Array(T * H * hd);
    e.attentionForward(q, k, v, 1, T, H, KV, hd, cos, sin, style, want, new Float32Array(H * T));
    const [got] = acrossConfigs(e, () => {
      const kCache = new Float32Array(T * KV * hd);
      const vCache = new Float32Array(T * KV * hd);
      const out = new Float32Array(T * H * hd);
      const prefill = Math.floor(T / 2);
      e.attentionCached(q, k, v, prefill, 0, H, KV, hd, cos, sin, style, kCache, vCache, out);
      for (let p = prefill; p < T; p++) {
        e.attentionCached(q.subarray(p * H * hd), k.subarray(p * KV * hd), v.subarray(p * KV * hd), 1, p, H, KV, hd, cos, sin, style, kCache, vCache, out.subarray(p * H * hd));
      }
      return [out];
    });
    close(got!, want, `cached vs full attention T${T} ${c.style}`, 1e-5);
    assert.throws(() => e.attentionCached(q, k, v, 2, T - 1, H, KV, hd, cos, sin, style, new Float32Array(T * KV * hd), new Float32Array(T * KV * hd), new Float32Array(2 * H * hd)), RangeError);
  }
});
