/**
 * The fast decode path: a hand-written Llama forward on CPU, the same arithmetic as llama2.c's run.c
 * (RMSNorm, RoPE, GQA attention, SwiGLU) on the shared LlamaWeights. Several rows go through each
 * layer together (one token each of several sequences, or all positions of one sequence), and every
 * row is computed exactly as it would be alone, so batching never changes a result.
 * With WebAssembly SIMD (wasm-kernels.ts) the matrix products and attention run as f32x4 kernels on a
 * copy of the matrices and on KV caches in wasm memory; otherwise a JavaScript path reads the weights
 * in place and sums in float64. Either way logits stay within ~2e-5 of run.c's, and RoPE angles are
 * rounded to float32 as run.c and PyTorch compute them.
 */
import type { LlamaConfig, LlamaModelData, LlamaWeights } from "./types.ts";
import { KvCache, WasmHeap } from "./kv-cache.ts";
import { wasmKernels, type WasmKernels } from "./wasm-kernels.ts";

import { addBias, addInto, attend, copy, matmul, rmsnorm, rope, swiglu } from "./decode-js.ts";

export { KvCache } from "./kv-cache.ts";

/** Work buffers for a batch of up to `capacity` rows, laid out in `buffer` from `offset` (16-byte aligned). */
class Scratch {
  x: Float32Array;
  xb: Float32Array;
  xb2: Float32Array;
  hb: Float32Array;
  hb2: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  logits: Float32Array;
  /** Attention weights of one head, where the wasm kernels read them. */
  att32: Float32Array;
  att: Float64Array;
  constructor(c: LlamaConfig, kvDim: number, readonly capacity: number, buffer: ArrayBuffer = new ArrayBuffer(Scratch.bytes(c, kvDim, capacity)), offset = 0) {
    const take = (n: number): Float32Array => {
      const view = new Float32Array(buffer, offset, n);
      offset += Math.ceil(n / 4) * 16;
      return view;
    };
    this.x = take(capacity * c.dim);
    this.xb = take(capacity * c.dim);
    this.xb2 = take(capacity * c.dim);
    this.hb = take(capacity * c.hiddenDim);
    this.hb2 = take(capacity * c.hiddenDim);
    this.q = take(capacity * c.dim);
    this.k = take(capacity * kvDim);
    this.v = take(capacity * kvDim);
    this.logits = take(capacity * c.vocabSize);
    this.att32 = take(Math.ceil(c.seqLen / 4) * 4);
    this.att = new Float64Array(c.seqLen);
  }
  static bytes(c: LlamaConfig, kvDim: number, capacity: number): number {
    const pad = (n: number): number => Math.ceil(n / 4) * 16;
    return pad(capacity * c.dim) * 4 + pad(capacity * c.hiddenDim) * 2 + pad(capacity * kvDim) * 2 + pad(capacity * c.vocabSize) + pad(c.seqLen);
  }
}

export interface DecoderOptions {
  /**
   * "wasm" (default where WebAssembly SIMD exists) runs the matrix products in wasm-kernels.ts on a
   * copy of the matrices in WebAssembly memory, taken once here: change weights in place afterwards
   * and the decoder will not see it (make a new Decoder). "js" reads the weights where they are.
   */
  kernel?: "wasm" | "js";
}

/** Positions per batched prefill pass. */
const PREFILL_ROWS = 64;

export class Decoder {
  readonly config: LlamaConfig;
  readonly weights: LlamaWeights;
  /** Which kernel runs the matrix products. */
  readonly kernel: "wasm" | "js";
  private readonly headSize: number;
  private readonly kvDim: number;
  private readonly kvMul: number;
  private readonly cos: Float32Array;
  private readonly sin: Float32Array;
  private scratch: Scratch;
  private readonly wasm: WasmKernels | undefined;
  /** Byte address in wasm memory of each matrix's copy. */
  private readonly pointers = new Map<Float32Array, number>();
  private readonly heap: WasmHeap | undefined;
  private scratchAt = 0;

  constructor(model: LlamaModelData, options: DecoderOptions = {}) {
    const c = (this.config = model.config);
    this.weights = model.weights;
    this.headSize = c.dim / c.nHeads;
    this.kvDim = this.headSize * c.nKvHeads;
    this.kvMul = c.nHeads / c.nKvHeads;
    // Angles as run.c computes them: freq = 1/powf(theta, 2j/hs), val = pos*freq, all in float32.
    const half = this.headSize / 2;
    this.cos = new Float32Array(c.seqLen * half);
    this.sin = new Float32Array(c.seqLen * half);
    for (let j = 0; j < half; j++) {
      const freq = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, Math.fround((2 * j) / this.headSize))));
      for (let p = 0; p < c.seqLen; p++) {
        const val = Math.fround(p * freq);
        this.cos[p * half + j] = Math.cos(val);
        this.sin[p * half + j] = Math.sin(val);
      }
    }
    const matrices = [...model.weights.layers.flatMap((l) => [l.wq, l.wk, l.wv, l.wo, l.w1, l.w2, l.w3]), model.weights.lmHead];
    const weightBytes = matrices.reduce((a, m) => a + Math.ceil(m.length / 4) * 16, 0);
    this.wasm = options.kernel === "js" || weightBytes > 2 ** 31 ? undefined : wasmKernels(weightBytes + Scratch.bytes(c, this.kvDim, 1));
    this.kernel = this.wasm ? "wasm" : "js";
    if (this.wasm) {
      const heap = (this.heap = new WasmHeap(this.wasm.memory));
      for (const m of matrices) {
        if (this.pointers.has(m)) continue;
        const at = heap.alloc(m.length * 4);
        new Float32Array(this.wasm.memory.buffer, at, m.length).set(m);
        this.pointers.set(m, at);
      }
      this.scratchAt = heap.alloc(Scratch.bytes(c, this.kvDim, 1));
      this.scratch = new Scratch(c, this.kvDim, 1, this.wasm.memory.buffer, this.scratchAt);
    } else this.scratch = new Scratch(c, this.kvDim, 1);
  }

  /** Buffers for `rows` rows, re-viewed when the wasm memory has grown (which detaches views). */
  private ensureRows(rows: number): Scratch {
    const c = this.config;
    const old = this.scratch;
    if (!this.wasm || !this.heap) {
      if (old.capacity < rows) this.scratch = new Scratch(c, this.kvDim, Math.max(rows, old.capacity * 2));
      return this.scratch;
    }
    if (old.capacity < rows) {
      const capacity = Math.max(rows, old.capacity * 2);
      this.heap.release(this.scratchAt, Scratch.bytes(c, this.kvDim, old.capacity));
      this.scratchAt = this.heap.alloc(Scratch.bytes(c, this.kvDim, capacity));
      return (this.scratch = new Scratch(c, this.kvDim, capacity, this.wasm.memory.buffer, this.scratchAt));
    }
    if (old.x.buffer !== this.wasm.memory.buffer) this.scratch = new Scratch(c, this.kvDim, old.capacity, this.wasm.memory.buffer, this.scratchAt);
    return this.scratch;
  }

  /** y = W x for `rows` rows: the wasm kernel when W has a copy there and the shapes suit it. */
  private mm(y: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number, rows: number): void {
    const at = this.pointers.get(w);
    if (at !== undefined && (n & 3) === 0 && (d & 3) === 0) this.wasm!.matmul(y.byteOffset, x.byteOffset, at, n, d, rows);
    else matmul(y, x, w, n, d, rows);
  }

  /** Bytes of WebAssembly memory held (weights, work buffers, KV caches); 0 on the JavaScript path. */
  get memoryBytes(): number {
    return this.wasm ? this.wasm.memory.buffer.byteLength : 0;
  }

  newCache(capacity = this.config.seqLen): KvCache {
    if (capacity > this.config.seqLen) throw new RangeError(`cache capacity ${capacity} exceeds the model's ${this.config.seqLen} positions`);
    if (!this.heap) return new KvCache(this.config, capacity);
    // Power-of-two sizes (capped at the context) let the heap's exact-size free lists recycle blocks
    // across requests of every length instead of growing memory for each new length.
    const rounded = Math.min(this.config.seqLen, 2 ** Math.ceil(Math.log2(Math.max(16, capacity))));
    return new KvCache(this.config, rounded, this.heap);
  }

  /** Feeds one token to one sequence; returns its next-token logits (a view, valid until the next call). */
  step(cache: KvCache, token: number): Float32Array {
    return this.forward([cache], [token], [cache.length], 1).subarray(0, this.config.vocabSize);
  }

  /** One token for each of several sequences; returns logits [caches.length, vocab] (a view). */
  stepBatch(caches: KvCache[], tokens: number[]): Float32Array {
    return this.forward(caches, tokens, caches.map((c) => c.length), caches.length);
  }

  /**
   * Appends `tokens` to one sequence, in batched passes of up to PREFILL_ROWS positions (which bounds
   * the work buffers however long the prompt); returns the logits of the last position (a view, valid
   * until the next call), or of every fed position ([tokens.length, vocab]) when `all` is set.
   */
  prefill(cache: KvCache, tokens: number[], all = false): Float32Array {
    if (tokens.length === 0) throw new RangeError("prefill needs at least one token");
    const V = this.config.vocabSize;
    const out = all && tokens.length > PREFILL_ROWS ? new Float32Array(tokens.length * V) : undefined;
    let logits = new Float32Array(0);
    for (let i = 0; i < tokens.length; i += PREFILL_ROWS) {
      const part = tokens.slice(i, i + PREFILL_ROWS);
      const final = i + PREFILL_ROWS >= tokens.length;
      const start = cache.length;
      const rows = all ? part.length : final ? 1 : 0;
      logits = this.forward(part.map(() => cache), part, part.map((_, k) => start + k), rows).subarray(0, rows * V);
      out?.set(logits, i * V);
    }
    return out ?? logits;
  }

  /** Logits at every position of `tokens` from an empty context: [tokens.length, vocab], a fresh array. */
  forwardAll(tokens: number[]): Float32Array {
    const cache = this.newCache(tokens.length);
    const logits = this.prefill(cache, tokens, true).slice();
    cache.release();
    return logits;
  }

  /**
   * The forward pass for rows (cache[r], token[r], position[r]). Rows of the same cache must be
   * consecutive positions in order; keys and values of all rows are stored before attention, so each
   * row sees exactly positions 0..its own. Logits are computed for the last `logitRows` rows only
   * (prefill needs just the last), and returned starting at row 0 of the logits buffer.
   */
  private forward(caches: KvCache[], tokens: number[], positions: number[], logitRows: number): Float32Array {
    const c = this.config;
    const w = this.weights;
    const B = tokens.length;
    const dim = c.dim;
    for (let r = 0; r < B; r++) {
      const token = tokens[r]!;
      if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) throw new RangeError(`token id ${token} is outside the vocabulary (0..${c.vocabSize - 1})`);
      if (caches[r]!.isReleased) throw new RangeError("this KV cache was released (its sequence finished)");
      if (positions[r]! >= caches[r]!.capacity) throw new RangeError(`position ${positions[r]} is beyond the context of ${caches[r]!.capacity} positions`);
    }
    const s = this.ensureRows(B);
    for (let r = 0; r < B; r++) s.x.set(w.tokenEmbedding.subarray(tokens[r]! * dim, (tokens[r]! + 1) * dim), r * dim);
    for (let l = 0; l < c.nLayers; l++) {
      this.attentionBlock(l, s, caches, positions, B);
      this.ffnBlock(l, s, B);
    }
    for (let r = 0; r < B; r++) caches[r]!.length = positions[r]! + 1;
    if (logitRows === 0) return s.logits;
    const last = s.x.subarray((B - logitRows) * dim, B * dim);
    rmsnorm(last, last, w.finalNorm, dim, logitRows, c.normEps);
    this.mm(s.logits, last, w.lmHead, dim, c.vocabSize, logitRows);
    return s.logits;
  }

  private attentionBlock(l: number, s: Scratch, caches: KvCache[], positions: number[], B: number): void {
    const c = this.config;
    const layer = this.weights.layers[l]!;
    const { dim, nHeads, nKvHeads } = c;
    const { headSize, kvDim, kvMul } = this;
    const half = headSize / 2;
    const interleaved = c.ropeStyle === "interleaved";
    const scale = 1 / Math.sqrt(headSize);
    rmsnorm(s.xb, s.x, layer.attnNorm, dim, B, c.normEps);
    this.mm(s.q, s.xb, layer.wq, dim, dim, B);
    this.mm(s.k, s.xb, layer.wk, dim, kvDim, B);
    this.mm(s.v, s.xb, layer.wv, dim, kvDim, B);
    if (layer.bq) addBias(s.q, layer.bq, dim, B);
    if (layer.bk) addBias(s.k, layer.bk, kvDim, B);
    if (layer.bv) addBias(s.v, layer.bv, kvDim, B);
    for (let r = 0; r < B; r++) {
      const to = positions[r]! * half;
      for (let h = 0; h < nHeads; h++) rope(s.q, r * dim + h * headSize, this.cos, this.sin, to, half, interleaved);
      for (let h = 0; h < nKvHeads; h++) rope(s.k, r * kvDim + h * headSize, this.cos, this.sin, to, half, interleaved);
      const cache = caches[r]!;
      for (let h = 0; h < nKvHeads; h++) {
        const at = ((l * nKvHeads + h) * cache.capacity + positions[r]!) * headSize;
        copy(cache.key, at, s.k, r * kvDim + h * headSize, headSize);
        copy(cache.value, at, s.v, r * kvDim + h * headSize, headSize);
      }
    }
    const wasm = this.wasm;
    for (let r = 0; r < B; r++) {
      const cache = caches[r]!;
      const n = positions[r]! + 1;
      if (wasm && cache.keyAt >= 0 && (headSize & 3) === 0) {
        const att = s.att32;
        for (let h = 0; h < nHeads; h++) {
          const ko = ((l * nKvHeads + Math.floor(h / kvMul)) * cache.capacity * headSize) * 4;
          const qo = (r * dim + h * headSize) * 4;
          const max = wasm.scores(att.byteOffset, s.q.byteOffset + qo, cache.keyAt + ko, n, headSize, scale);
          // The exp kernel works in groups of four: pad the last group with weights that vanish.
          for (let t = n; t < ((n + 3) & ~3); t++) att[t] = -Infinity;
          const sum = wasm.softmaxExp(att.byteOffset, (n + 3) >> 2, max);
          wasm.mix(s.xb.byteOffset + qo, att.byteOffset, cache.valueAt + ko, n, headSize, 1 / sum);
        }
        continue;
      }
      for (let h = 0; h < nHeads; h++) {
        const ko = (l * nKvHeads + Math.floor(h / kvMul)) * cache.capacity * headSize;
        attend(s.xb, s.q, r * dim + h * headSize, cache.key, cache.value, ko, n - 1, headSize, scale, s.att);
      }
    }
    this.mm(s.xb2, s.xb, layer.wo, dim, dim, B);
    addInto(s.x, s.xb2, B * dim);
  }

  private ffnBlock(l: number, s: Scratch, B: number): void {
    const c = this.config;
    const layer = this.weights.layers[l]!;
    rmsnorm(s.xb, s.x, layer.ffnNorm, c.dim, B, c.normEps);
    this.mm(s.hb, s.xb, layer.w1, c.dim, c.hiddenDim, B);
    this.mm(s.hb2, s.xb, layer.w3, c.dim, c.hiddenDim, B);
    if (this.wasm) this.wasm.swiglu(s.hb.byteOffset, s.hb2.byteOffset, (B * c.hiddenDim + 3) >> 2);
    else swiglu(s.hb, s.hb2, B * c.hiddenDim);
    this.mm(s.xb, s.hb, layer.w2, c.hiddenDim, c.dim, B);
    addInto(s.x, s.xb, B * c.dim);
  }
}
