import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The native compute core (native/*.cc, a Node-API addon built with the machine's g++): GEMM, fused
 * attention with RoPE, RMSNorm, SwiGLU, embedding, cross-entropy and AdamW on plain typed arrays. See
 * native/README.md for layouts and semantics. Every call is synchronous and checks array lengths
 * against the sizes (RangeError), so a wrong call throws instead of writing out of bounds.
 */
export interface NativeInfo {
  simd: "avx512" | "avx2" | "generic";
  threads: number;
  /** Logical processors OpenMP may use. */
  procs: number;
  compiler: string;
  path: string;
}

export interface NativeEngine {
  info(): NativeInfo;
  setThreads(n: number): void;
  /** Switches the kernel set (tests); a level the CPU lacks falls back to the best lower one. Returns the level in use. */
  setSimd(level: "avx512" | "avx2" | "generic"): string;
  /** Work below which an op stays on the calling thread (defaults 8e6 GEMM flops, 262144 elements); tests set 0, 0. */
  setParallelMin(flops: number, elements: number): void;
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, B: number, T: number, H: number, KVH: number, hd: number, cos: Float32Array, sin: Float32Array, ropeStyle: 0 | 1, out: Float32Array, lse: Float32Array, ldq?: number, ldkv?: number): void;
  attentionBackward(dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, B: number, T: number, H: number, KVH: number, hd: number, cos: Float32Array, sin: Float32Array, ropeStyle: 0 | 1, dq: Float32Array, dk: Float32Array, dv: Float32Array, ldq?: number, ldkv?: number): void;
  /** One sequence continued on a KV cache (prefill: pos 0; decode: R = 1); see native/README.md. */
  attentionCached(q: Float32Array, k: Float32Array, v: Float32Array, R: number, pos: number, H: number, KVH: number, hd: number, cos: Float32Array, sin: Float32Array, ropeStyle: 0 | 1, kCache: Float32Array, vCache: Float32Array, out: Float32Array): void;
  rmsnormForward(x: Float32Array, w: Float32Array, N: number, D: number, eps: number, y: Float32Array, rstd: Float32Array): void;
  rmsnormBackward(dy: Float32Array, x: Float32Array, w: Float32Array, rstd: Float32Array, N: number, D: number, dx: Float32Array, dw: Float32Array): void;
  swigluForward(gu: Float32Array, N: number, F: number, h: Float32Array): void;
  swigluBackward(dh: Float32Array, gu: Float32Array, N: number, F: number, dgu: Float32Array): void;
  embeddingForward(table: Float32Array, ids: Int32Array, N: number, D: number, V: number, out: Float32Array): void;
  embeddingBackward(dout: Float32Array, ids: Int32Array, N: number, D: number, V: number, dtable: Float32Array): void;
  crossEntropy(logits: Float32Array, targets: Int32Array, R: number, V: number, scale: number, dlogits: Float32Array): number;
  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, decay: number, clip: number, bc1: number, sqrtBc2: number): void;
  sumSquares(x: Float32Array): number;
}

export type NativeLoad = { engine: NativeEngine; reason?: undefined } | { engine?: undefined; reason: string };

export interface LoadNativeOptions {
  /** Build (or rebuild) the addon when the binary is missing or older than its sources. Default true. */
  build?: boolean;
  /** No "building" line on stderr. */
  quiet?: boolean;
}

const nativeDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "native");
export const nativeBinaryPath = join(nativeDir, "build", "ktu_native.node");

let cached: NativeLoad | undefined;

/** Newest modification time among the sources the binary is built from (0 when there are none). */
function sourcesMtime(): number {
  if (!existsSync(nativeDir)) return 0;
  let newest = 0;
  for (const f of readdirSync(nativeDir)) {
    if (/\.(cc|h|inc|mjs)$/.test(f)) newest = Math.max(newest, statSync(join(nativeDir, f)).mtimeMs);
  }
  return newest;
}

function firstLine(error: unknown): string {
  const e = error as { stderr?: Buffer | string; message?: string };
  const text = e?.stderr ? String(e.stderr) : String(e?.message ?? error);
  return text.trim().split("\n").filter((l) => l.trim()).slice(-1)[0] ?? "unknown error";
}

/**
 * Loads the addon, building it first when missing or stale (one line on stderr; 10-40 s). Never
 * throws: a missing compiler, a failed build or a failed load comes back as { reason }.
 */
export function loadNative(options: LoadNativeOptions = {}): NativeLoad {
  if (cached?.engine) return cached;
  const build = options.build ?? process.env.KTU_NATIVE_BUILD !== "0";
  const binaryTime = existsSync(nativeBinaryPath) ? statSync(nativeBinaryPath).mtimeMs : -1;
  const srcTime = sourcesMtime();
  if (build && srcTime > 0 && binaryTime < srcTime) {
    if (!options.quiet) process.stderr.write(`native: ${binaryTime < 0 ? "building" : "rebuilding"} the compute core with g++ (once; 10-40 s)\n`);
    try {
      execFileSync(process.execPath, [join(nativeDir, "build.mjs"), "--quiet"], { stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });
    } catch (error) {
      // A binary that exists but is stale still loads; only a missing one is fatal here.
      if (binaryTime < 0) return (cached = { reason: `native build failed: ${firstLine(error).replace(/^native: build failed: /, "")}` });
    }
  }
  if (!existsSync(nativeBinaryPath)) {
    return (cached = { reason: srcTime > 0 ? `native addon not built (${nativeBinaryPath}); run node native/build.mjs` : "native sources not found" });
  }
  try {
    // OpenMP's default is to spin ~300k iterations after each parallel region. On a shared machine that
    // is catastrophic: measured by the model side at load 11 on 2 cores, a d128 training step took
    // 1610 ms with spinning workers vs 87 ms with passive ones (82 ms on 1 thread). libgomp reads this
    // when it is loaded, i.e. with the addon just below; a user's own setting wins.
    if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.OMP_WAIT_POLICY = "passive";
    const require = createRequire(import.meta.url);
    const raw = require(nativeBinaryPath) as Omit<NativeEngine, "info"> & { info(): Omit<NativeInfo, "path"> };
    // The addon's properties are read-only and not enumerable: copy them into a plain object.
    const engine = {} as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(raw)) engine[name] = (raw as unknown as Record<string, unknown>)[name];
    engine.info = (): NativeInfo => ({ ...raw.info(), path: nativeBinaryPath });
    return (cached = { engine: engine as unknown as NativeEngine });
  } catch (error) {
    return (cached = { reason: `native addon failed to load: ${firstLine(error)}` });
  }
}

/** The engine, or an Error saying why it cannot run (for KTU_ENGINE=native). */
export function requireNative(options?: LoadNativeOptions): NativeEngine {
  const r = loadNative(options);
  if (!r.engine) throw new Error(`native engine unavailable: ${r.reason}`);
  return r.engine;
}
