/**
 * Batched decoding on the native engine (native/, src/model/native.ts): the Llama forward of many rows
 * at once, one GEMM per projection for all of them, and KV-cached attention per sequence
 * (attentionCached). A pass takes any mix of rows: a whole prompt of one sequence (prefill), one token of
 * each of others (decode), so sequences join and leave between passes (continuous batching).
 *
 * Every row is computed exactly as it would be alone: the GEMM sums each output element in an order
 * fixed by K (native/README.md), RMSNorm, SwiGLU and the embedding are per row, and attention runs per
 * sequence. Products are always given at least GEMV_ROWS + 1 rows (padding), so they never take the
 * engine's few-row dot-product path, whose summation order differs from the tiled one. Hence a sequence
 * decoded alone and the same sequence decoded among 63 others give bit-identical logits.
 */
import { ropeTables } from "./llama-tf.ts";
import { loadNative, type NativeEngine } from "./native.ts";
import type { LlamaConfig, LlamaModelData } from "./types.ts";

/** sgemm runs at most this many rows as dot products (native/kernels.inc GEMV_ROWS); we always pass more. */
const MIN_GEMM_ROWS = 5;

/** Keys (rotated) and values of one sequence on the native path: per layer [capacity, kvDim]. */
export class NativeKvCache {
  /** Positions filled so far: the next token goes to position `length`. */
  length = 0;
  private released = false;
  constructor(
    readonly capacity: number,
    readonly keys: Float32Array[],
    readonly values: Float32Array[],
    private readonly onRelease?: (cache: NativeKvCache) => void,
  ) {}

  get isReleased(): boolean {
    return this.released;
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate a cache of ${this.length} positions to ${length}`);
    this.length = length;
  }

  /** Hands the memory back to the decoder's pool; the cache is unusable afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.length = 0;
    this.onRelease?.(this);
  }
}

/** One sequence's part of a forward pass: `tokens` appended to `cache` at its current length. */
export interface NativeRows {
  cache: NativeKvCache;
  tokens: readonly number[];
}

interface Layer {
  attnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  ffnNorm: Float32Array;
  w1: Float32Array;
  w3: Float32Array;
  w2: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
}

export class NativeDecoder {
  readonly config: LlamaConfig;
  readonly kernel = "native" as const;
  private readonly engine: NativeEngine;
  private readonly layers: readonly Layer[];
  private readonly embedding: Float32Array;
  private readonly finalNorm: Float32Array;
  private readonly lmHead: Float32Array;
  private readonly cos: Float32Array;
  private readonly sin: Float32Array;
  private readonly headSize: number;
  private readonly kvDim: number;
  private rowsCap = 0;
  private buf!: { x: Float32Array; xb: Float32Array; q: Float32Array; k: Float32Array; v: Float32Array; att: Float32Array; gu: Float32Array; h: Float32Array; rstd: Float32Array; ids: Int32Array };
  private logitsCap = 0;
  private last!: { x: Float32Array; logits: Float32Array; rstd: Float32Array };
  /** Released caches by capacity, reused by newCache (a scheduler frees and makes many). */
  private readonly pool = new Map<number, NativeKvCache[]>();

  /** Throws when the native engine cannot load; see nativeDecoderFor for the forgiving form. */
  constructor(
    readonly model: LlamaModelData,
    engine?: NativeEngine,
  ) {
    if (!engine) {
      const loaded = loadNative({ quiet: true });
      if (!loaded.engine) throw new Error(`native engine unavailable: ${loaded.reason}`);
      engine = loaded.engine;
    }
    this.engine = engine;
    const c = (this.config = model.config);
    this.headSize = c.dim / c.nHeads;
    this.kvDim = this.headSize * c.nKvHeads;
    const w = model.weights;
    // The model's own arrays, no copies: weights changed in place (training) are what the next pass uses.
    this.layers = w.layers;
    this.embedding = w.tokenEmbedding;
    this.finalNorm = w.finalNorm;
    this.lmHead = w.lmHead;
    const t = ropeTables(c, c.seqLen);
    this.cos = t.cos;
    this.sin = t.sin;
  }

  newCache(capacity = this.config.seqLen): NativeKvCache {
    const c = this.config;
    if (capacity > c.seqLen) throw new RangeError(`cache capacity ${capacity} exceeds the model's ${c.seqLen} positions`);
    // Powers of two (capped at the context), so released caches serve requests of other lengths.
    const rounded = Math.min(c.seqLen, 2 ** Math.ceil(Math.log2(Math.max(16, capacity))));
    const free = this.pool.get(rounded)?.pop();
    const keys = free ? free.keys : [];
    const values = free ? free.values : [];
    if (!free) {
      const per = rounded * this.kvDim;
      const block = new Float32Array(2 * c.nLayers * per);
      for (let l = 0; l < c.nLayers; l++) {
        keys.push(block.subarray(2 * l * per, (2 * l + 1) * per));
        values.push(block.subarray((2 * l + 1) * per, (2 * l + 2) * per));
      }
    }
    return new NativeKvCache(rounded, keys, values, (done) => {
      const list = this.pool.get(rounded);
      // Keep a bounded pool: enough for a full batch of the largest size in use.
      if (!list) this.pool.set(rounded, [new NativeKvCache(rounded, done.keys, done.values)]);
      else if (list.length < 256) list.push(new NativeKvCache(rounded, done.keys, done.values));
    });
  }

  /** Feeds one token to one sequence; returns its next-token logits (a view, valid until the next call). */
  step(cache: NativeKvCache, token: number): Float32Array {
    return this.forward([{ cache, tokens: [token] }]);
  }

  /** One token for each of several sequences; returns logits [caches.length, vocab] (a view). */
  stepBatch(caches: NativeKvCache[], tokens: number[]): Float32Array {
    return this.forward(caches.map((cache, r) => ({ cache, tokens: [tokens[r]!] })));
  }

  /** Appends a whole prompt to one sequence in one pass; returns the last position's logits (a view). */
  prefill(cache: NativeKvCache, tokens: number[]): Float32Array {
    if (tokens.length === 0) throw new RangeError("prefill needs at least one token");
    return this.forward([{ cache, tokens }]);
  }

  private ensureRows(n: number): void {
    if (n <= this.rowsCap) return;
    const cap = Math.max(n, MIN_GEMM_ROWS, this.rowsCap * 2);
    const c = this.config;
    this.rowsCap = cap;
    this.buf = {
      x: new Float32Array(cap * c.dim),
      xb: new Float32Array(cap * c.dim),
      q: new Float32Array(cap * c.dim),
      k: new Float32Array(cap * this.kvDim),
      v: new Float32Array(cap * this.kvDim),
      att: new Float32Array(cap * c.dim),
      gu: new Float32Array(cap * 2 * c.hiddenDim),
      h: new Float32Array(cap * c.hiddenDim),
      rstd: new Float32Array(cap),
      ids: new Int32Array(cap),
    };
  }

  private ensureLogits(n: number): void {
    if (n <= this.logitsCap) return;
    const cap = Math.max(n, MIN_GEMM_ROWS, this.logitsCap * 2);
    this.logitsCap = cap;
    this.last = { x: new Float32Array(cap * this.config.dim), logits: new Float32Array(cap * this.config.vocabSize), rstd: new Float32Array(cap) };
  }

  /**
   * One forward pass over every group's rows (each group's tokens continue its cache; a cache appears
   * at most once). Returns the logits of each group's LAST row: [groups.length, vocab], a view valid
   * until the next call.
   */
  forward(groups: readonly NativeRows[]): Float32Array {
    const c = this.config;
    const e = this.engine;
    const { dim, hiddenDim: F, vocabSize: V, nHeads: H, nKvHeads: KVH } = c;
    const { headSize: hd, kvDim } = this;
    const style = c.ropeStyle === "interleaved" ? 0 : 1;
    let N = 0;
    const seen = new Set<NativeKvCache>();
    for (const g of groups) {
      if (g.tokens.length === 0) throw new RangeError("a group needs at least one token");
      if (g.cache.isReleased) throw new RangeError("this KV cache was released (its sequence finished)");
      if (seen.has(g.cache)) throw new RangeError("a cache may appear once per pass");
      seen.add(g.cache);
      if (g.cache.length + g.tokens.length > g.cache.capacity) throw new RangeError(`position ${g.cache.length + g.tokens.length - 1} is beyond the context of ${g.cache.capacity} positions`);
      for (const t of g.tokens) if (!Number.isInteger(t) || t < 0 || t >= V) throw new RangeError(`token id ${t} is outside the vocabulary (0..${V - 1})`);
      N += g.tokens.length;
    }
    this.ensureRows(N);
    const b = this.buf;
    const M = Math.max(N, MIN_GEMM_ROWS);
    let r = 0;
    for (const g of groups) for (const t of g.tokens) b.ids[r++] = t;
    e.embeddingForward(this.embedding, b.ids, N, dim, V, b.x);
    for (const [l, layer] of this.layers.entries()) {
      e.rmsnormForward(b.x, layer.attnNorm, N, dim, c.normEps, b.xb, b.rstd);
      e.sgemm(false, true, M, dim, dim, 1, b.xb, dim, layer.wq, dim, 0, b.q, dim);
      e.sgemm(false, true, M, kvDim, dim, 1, b.xb, dim, layer.wk, dim, 0, b.k, kvDim);
      e.sgemm(false, true, M, kvDim, dim, 1, b.xb, dim, layer.wv, dim, 0, b.v, kvDim);
      if (layer.bq) addBias(b.q, layer.bq, N);
      if (layer.bk) addBias(b.k, layer.bk, N);
      if (layer.bv) addBias(b.v, layer.bv, N);
      let row = 0;
      for (const g of groups) {
        const R = g.tokens.length;
        e.attentionCached(
          b.q.subarray(row * dim, (row + R) * dim),
          b.k.subarray(row * kvDim, (row + R) * kvDim),
          b.v.subarray(row * kvDim, (row + R) * kvDim),
          R,
          g.cache.length,
          H,
          KVH,
          hd,
          this.cos,
          this.sin,
          style,
          g.cache.keys[l]!,
          g.cache.values[l]!,
          b.att.subarray(row * dim, (row + R) * dim),
        );
        row += R;
      }
      // Residuals accumulate in the GEMM (beta 1): x += att Wo^T, x += h W2^T.
      e.sgemm(false, true, M, dim, dim, 1, b.att, dim, layer.wo, dim, 1, b.x, dim);
      e.rmsnormForward(b.x, layer.ffnNorm, N, dim, c.normEps, b.xb, b.rstd);
      // gate and up side by side in each row of gu ([gate | up], swigluForward's layout)
      e.sgemm(false, true, M, F, dim, 1, b.xb, dim, layer.w1, dim, 0, b.gu, 2 * F);
      e.sgemm(false, true, M, F, dim, 1, b.xb, dim, layer.w3, dim, 0, b.gu.subarray(F), 2 * F);
      e.swigluForward(b.gu, N, F, b.h);
      e.sgemm(false, true, M, dim, F, 1, b.h, F, layer.w2, F, 1, b.x, dim);
    }
    for (const g of groups) g.cache.length += g.tokens.length;
    const G = groups.length;
    this.ensureLogits(G);
    const lx = this.last.x;
    let end = 0;
    groups.forEach((g, i) => {
      end += g.tokens.length;
      lx.set(b.x.subarray((end - 1) * dim, end * dim), i * dim);
    });
    e.rmsnormForward(lx, this.finalNorm, G, dim, c.normEps, lx, this.last.rstd);
    e.sgemm(false, true, Math.max(G, MIN_GEMM_ROWS), V, dim, 1, lx, dim, this.lmHead, dim, 0, this.last.logits, V);
    return this.last.logits.subarray(0, G * V);
  }
}

function addBias(y: Float32Array, bias: Float32Array, rows: number): void {
  const n = bias.length;
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) y[r * n + i] = Math.fround(y[r * n + i]! + bias[i]!);
}

const natives = new WeakMap<LlamaModelData, NativeDecoder>();
let unavailable: string | undefined;

/**
 * The native decoder of `model` (one per model), or undefined with the reason when the addon cannot be
 * built or loaded here, or when KTU_DECODE=wasm asks for the WebAssembly decoder.
 */
export function nativeDecoderFor(model: LlamaModelData): NativeDecoder | undefined {
  if (process.env.KTU_DECODE === "wasm") return undefined;
  let d = natives.get(model);
  if (d) return d;
  if (unavailable !== undefined) return undefined;
  const loaded = loadNative({ quiet: true });
  if (!loaded.engine) {
    unavailable = loaded.reason;
    return undefined;
  }
  natives.set(model, (d = new NativeDecoder(model, loaded.engine)));
  return d;
}

/** Why nativeDecoderFor returned undefined (after a call that did). */
export const nativeDecodeUnavailable = (): string | undefined => (process.env.KTU_DECODE === "wasm" ? "KTU_DECODE=wasm" : unavailable);
