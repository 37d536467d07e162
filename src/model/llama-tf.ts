import { attentionBackward, attentionForward, type AttentionShape, type RopeTable } from "./attention-js.ts";
import { currentBackend, tf } from "./backend.ts";
import { nAttention, nEmbed, nHeadLoss, nLinear, nLinearParts, nLoraInto, nProject, type NativeLowRank, nRmsNorm, nSelectRows, nSwiglu } from "./ops-native.ts";
import { crossEntropy, FrozenLinear, linearT, mm, selectRows, swapLast } from "./tf-ops.ts";

export { crossEntropy, FrozenLinear } from "./tf-ops.ts";
import { concatFloat } from "./tf-ops.ts";
import type { LlamaConfig, LlamaModelData, LlamaProjection, LlamaWeights } from "./types.ts";

/**
 * The Llama architecture, the one model implementation for LoRA training, full-parameter training
 * (FullTrainer) and batch scoring: RMSNorm, interleaved or rotate-half RoPE, grouped-query attention,
 * SwiGLU, tied or untied head. Base weights are frozen constants, or tf.Variables with `trainable`;
 * LoRA enters through a ProjectionAdapter. The layers call ops of the engine that runs (backend.ts):
 * TF.js ops (tuned for wasm: untransposed products, hand-written gradients for gather and the loss)
 * or the native addon's fused ops (ops-native.ts) on the cpu backend, where the residual adds ride on
 * the GEMM (beta = 1), q/k/v and gate/up are split inside the fused attention and SwiGLU, and the head
 * and loss are one op.
 */

/** Adds a trainable term to a projection's output: y = x W^T + delta(x). */
export interface ProjectionAdapter {
  has(layer: number, projection: LlamaProjection): boolean;
  /** x: [N, in] -> [N, out]. Called inside the caller's tidy/gradient scope. */
  delta(layer: number, projection: LlamaProjection, x: tf.Tensor2D): tf.Tensor2D;
  /**
   * The low-rank factors (A [r, in], B [out, r], scale) and the input transform (dropout), when the
   * term is scale * input(x) A^T B^T: lets a fused engine add it straight into the projection output.
   */
  lowRank?(layer: number, projection: LlamaProjection): { a: tf.Tensor2D; b: tf.Tensor2D; scale: number; input?(x: tf.Tensor2D): tf.Tensor2D };
}

/** A projection weight [out, in]: a tf.Variable when trainable; frozen ones on TF.js also keep [in, out]. */
interface Weight {
  w: tf.Tensor2D;
  frozen?: FrozenLinear;
  /** Native and frozen, stacked projections: the separate matrices and their row counts (no stacked copy). */
  parts?: { arrays: Float32Array[]; outs: number[] };
}

interface LayerTensors {
  attnNorm: tf.Tensor1D;
  ffnNorm: tf.Tensor1D;
  wo: Weight;
  w2: Weight;
  /** q, k and v stacked as one [qOut+kOut+vOut, dim] matrix: one matmul instead of three. */
  wqkv: Weight;
  /** gate and up stacked: [2*hidden, dim]. */
  w13: Weight;
  bqkv?: tf.Tensor1D;
}

/** A trainable parameter, in the order FullTrainer's checkpoints keep them. */
export interface LlamaParameter {
  name: string;
  variable: tf.Variable;
  /** Weight decay applies (matrices and the embedding; not norms). */
  decay: boolean;
}

const headDimOf = (c: LlamaConfig): number => c.dim / c.nHeads;

/** Checks every array length against the config, so a wrong-size file fails here and not as garbage logits. */
export function checkLlamaModelData(data: LlamaModelData, source: string): void {
  const c = data.config;
  const hs = headDimOf(c);
  if (!Number.isInteger(hs) || hs % 2 !== 0) throw new Error(`${source}: dim ${c.dim} / n_heads ${c.nHeads} is not an even integer head size`);
  if (c.nHeads % c.nKvHeads !== 0) throw new Error(`${source}: n_heads ${c.nHeads} is not a multiple of n_kv_heads ${c.nKvHeads}`);
  const expect = (name: string, array: Float32Array | undefined, size: number): void => {
    if (!array || array.length !== size) throw new Error(`${source}: weight ${name} has ${array?.length ?? "no"} values, expected ${size}`);
  };
  const w = data.weights;
  expect("tokenEmbedding", w.tokenEmbedding, c.vocabSize * c.dim);
  expect("finalNorm", w.finalNorm, c.dim);
  expect("lmHead", w.lmHead, c.vocabSize * c.dim);
  if (w.layers.length !== c.nLayers) throw new Error(`${source}: ${w.layers.length} layers, config says ${c.nLayers}`);
  const kv = c.nKvHeads * hs;
  w.layers.forEach((l, i) => {
    expect(`layers[${i}].attnNorm`, l.attnNorm, c.dim);
    expect(`layers[${i}].wq`, l.wq, c.dim * c.dim);
    expect(`layers[${i}].wk`, l.wk, kv * c.dim);
    expect(`layers[${i}].wv`, l.wv, kv * c.dim);
    expect(`layers[${i}].wo`, l.wo, c.dim * c.dim);
    expect(`layers[${i}].ffnNorm`, l.ffnNorm, c.dim);
    expect(`layers[${i}].w1`, l.w1, c.hiddenDim * c.dim);
    expect(`layers[${i}].w2`, l.w2, c.dim * c.hiddenDim);
    expect(`layers[${i}].w3`, l.w3, c.hiddenDim * c.dim);
  });
}

/** Output rows of each projection, as [out, in]. */
export function projectionShape(c: LlamaConfig, p: LlamaProjection): [number, number] {
  const kv = c.nKvHeads * headDimOf(c);
  switch (p) {
    case "wq": return [c.dim, c.dim];
    case "wk":
    case "wv": return [kv, c.dim];
    case "wo": return [c.dim, c.dim];
    case "w1":
    case "w3": return [c.hiddenDim, c.dim];
    case "w2": return [c.dim, c.hiddenDim];
  }
}

/**
 * RoPE tables as run.c computes them, in float32 step by step (freq, then pos*freq, then cos/sin), so
 * long positions round the same way; `cos`/`sin` are [seq, headDim] with each pair's value repeated
 * where the pair's two members sit (adjacent for interleaved, j and j+hs/2 for rotate-half).
 */
export function ropeTables(c: LlamaConfig, seq: number): { cos: Float32Array; sin: Float32Array; rotate: Float32Array } {
  const hs = headDimOf(c);
  const f = Math.fround;
  const cos = new Float32Array(seq * hs);
  const sin = new Float32Array(seq * hs);
  for (let pos = 0; pos < seq; pos++) {
    for (let j = 0; j < hs / 2; j++) {
      const freq = f(1 / f(Math.pow(c.ropeTheta, f((2 * j) / hs))));
      const val = f(pos * freq);
      const [a, b] = c.ropeStyle === "interleaved" ? [2 * j, 2 * j + 1] : [j, j + hs / 2];
      cos[pos * hs + a] = cos[pos * hs + b] = Math.cos(val);
      sin[pos * hs + a] = sin[pos * hs + b] = Math.sin(val);
    }
  }
  // rotate(x) = x @ R: the pair partner with a sign, so that rope(x) = x*cos + rotate(x)*sin.
  const rotate = new Float32Array(hs * hs);
  for (let j = 0; j < hs / 2; j++) {
    const [a, b] = c.ropeStyle === "interleaved" ? [2 * j, 2 * j + 1] : [j, j + hs / 2];
    rotate[b * hs + a] = -1; // out[a] gets -x[b]
    rotate[a * hs + b] = 1; // out[b] gets +x[a]
  }
  return { cos, sin, rotate };
}

/**
 * "js": the fused typed-array attention kernel (attention-js.ts); "graph": TF.js ops. Measured on
 * stories260K (LoRA step, B=8, T=64, CPU time): on the cpu backend js 2.0 s vs graph 2.9 s; on wasm
 * graph 150-160 ms vs js 165-210 ms (wasm's batched matMul beats plain JS loops), so js is the
 * default only on cpu. GPU and native backends use graph (a readback would cost more).
 */
export type AttentionMode = "js" | "graph";

export interface TfLlamaOptions {
  attention?: AttentionMode;
  source?: string;
  /** Every weight a tf.Variable (full-parameter training); names get `variablePrefix`. */
  trainable?: boolean;
  variablePrefix?: string;
}

export interface ForwardOptions {
  adapter?: ProjectionAdapter;
  /** Flat row indices (b*T + t) whose logits to compute; all rows when absent. */
  rows?: Int32Array;
}

export class TfLlama {
  readonly config: LlamaConfig;
  private readonly embedding: tf.Tensor2D;
  private readonly head: Weight;
  private readonly finalNorm: tf.Tensor1D;
  private readonly layers: LayerTensors[];
  private readonly rotate: FrozenLinear;
  private ropeCache?: { seq: number; cos: tf.Tensor; sin: tf.Tensor; cosQ: tf.Tensor; sinQ: tf.Tensor };
  private readonly maskCache = new Map<number, tf.Tensor2D>();
  private disposed = false;
  readonly attention: AttentionMode;
  /** Runs on the native addon's ops (the engine was native when it was built). */
  readonly native: boolean;
  readonly trainable: boolean;
  /** The variables, when trainable: embedding, per layer attnNorm, wqkv, wo, ffnNorm, w13, w2, then finalNorm (and lmHead if untied). */
  readonly parameters: LlamaParameter[] = [];
  private jsRopeCache?: { seq: number; table: RopeTable };
  private nativeRope?: { seq: number; cos: Float32Array; sin: Float32Array };

  constructor(data: LlamaModelData, options: TfLlamaOptions | string = {}) {
    const opts: TfLlamaOptions = typeof options === "string" ? { source: options } : options;
    const source = opts.source ?? "model";
    const attention = opts.attention;
    checkLlamaModelData(data, source);
    this.native = currentBackend()?.name === "native";
    this.trainable = opts.trainable ?? false;
    this.attention = attention ?? (tf.getBackend() === "cpu" ? "js" : "graph");
    const c = (this.config = data.config);
    const w = data.weights;
    const kv = c.nKvHeads * headDimOf(c);
    const prefix = opts.variablePrefix ?? "";
    const trainable = this.trainable;
    const param = <T extends tf.Tensor>(name: string, t: T, decay: boolean): T => {
      if (!trainable) return t;
      // A copy: on the cpu backend a tensor wraps the caller's array, which the optimizer must not write.
      const copy = tf.tensor(Float32Array.from(t.dataSync() as Float32Array), t.shape);
      const variable = tf.variable(copy, true, prefix + name);
      tf.dispose([copy, t]);
      this.parameters.push({ name, variable, decay });
      return variable as unknown as T;
    };
    // Frozen weights on TF.js backends keep both layouts (FrozenLinear); the native GEMM takes W^T itself.
    const weight = (name: string, values: Float32Array, out: number, inp: number): Weight => {
      if (trainable) return { w: param(name, tf.tensor2d(values, [out, inp]), true) };
      if (this.native) return { w: tf.tensor2d(values, [out, inp]) };
      const frozen = new FrozenLinear(values, out, inp);
      return { w: frozen.w, frozen };
    };
    // Native, frozen: q/k/v (gate/up) stay the caller's separate arrays, each GEMM writing its block.
    const stacked = (arrays: Float32Array[], outs: number[]): Weight => ({ w: tf.tensor2d([0], [1, 1]), parts: { arrays, outs } });
    this.embedding = param("embedding", tf.tensor2d(w.tokenEmbedding, [c.vocabSize, c.dim]), true);
    this.layers = w.layers.map((l, i) => {
      const biases = l as Partial<Record<"bq" | "bk" | "bv", Float32Array>>;
      return {
        attnNorm: param(`l${i}.attnNorm`, tf.tensor1d(l.attnNorm), false),
        wqkv: !trainable && this.native ? stacked([l.wq, l.wk, l.wv], [c.dim, kv, kv]) : weight(`l${i}.wqkv`, concatFloat(l.wq, l.wk, l.wv), c.dim + 2 * kv, c.dim),
        wo: weight(`l${i}.wo`, l.wo, ...projectionShape(c, "wo")),
        ffnNorm: param(`l${i}.ffnNorm`, tf.tensor1d(l.ffnNorm), false),
        w13: !trainable && this.native ? stacked([l.w1, l.w3], [c.hiddenDim, c.hiddenDim]) : weight(`l${i}.w13`, concatFloat(l.w1, l.w3), 2 * c.hiddenDim, c.dim),
        w2: weight(`l${i}.w2`, l.w2, ...projectionShape(c, "w2")),
        bqkv: biases.bq && biases.bk && biases.bv ? tf.tensor1d(concatFloat(biases.bq, biases.bk, biases.bv)) : undefined,
      };
    });
    this.finalNorm = param("finalNorm", tf.tensor1d(w.finalNorm), false);
    const tiedHead = c.tiedEmbeddings && w.lmHead === w.tokenEmbedding;
    if (trainable && !c.tiedEmbeddings) this.head = weight("lmHead", w.lmHead, c.vocabSize, c.dim);
    else if ((trainable || this.native) && tiedHead) this.head = { w: this.embedding };
    else this.head = weight("lmHead", w.lmHead, c.vocabSize, c.dim);
    // rotate(x) = x @ R, stored so that apply() multiplies by R: FrozenLinear takes [out, in] = R^T.
    const hs = headDimOf(c);
    const r = ropeTables(c, 1).rotate;
    const rT = new Float32Array(hs * hs);
    for (let i = 0; i < hs; i++) for (let j = 0; j < hs; j++) rT[j * hs + i] = r[i * hs + j]!;
    this.rotate = new FrozenLinear(rT, hs, hs);
  }

  static fromData(data: LlamaModelData, options?: TfLlamaOptions): TfLlama {
    return new TfLlama(data, options);
  }

  private jsRope(seq: number): RopeTable {
    if (!this.jsRopeCache || this.jsRopeCache.seq !== seq) {
      const c = this.config;
      const hs = headDimOf(c);
      const t = ropeTables(c, seq);
      const partner = new Int32Array(hs);
      const sign = new Float32Array(hs);
      for (let j = 0; j < hs / 2; j++) {
        const [a, b] = c.ropeStyle === "interleaved" ? [2 * j, 2 * j + 1] : [j, j + hs / 2];
        partner[a] = b;
        partner[b] = a;
        sign[a] = -1;
        sign[b] = 1;
      }
      this.jsRopeCache = { seq, table: { cos: t.cos, sin: t.sin, partner, sign } };
    }
    return this.jsRopeCache.table;
  }

  /** Attention through the fused typed-array kernel, as one differentiable op of q, k, v. */
  private attendJs(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, seq: number): tf.Tensor2D {
    const c = this.config;
    const shape: AttentionShape = { batch, seq, heads: c.nHeads, kvHeads: c.nKvHeads, headDim: headDimOf(c) };
    const table = this.jsRope(seq);
    const n = batch * seq;
    const kvDim = c.nKvHeads * shape.headDim;
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [qt, kt, vt, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
      save([]);
      // Plain arrays, not tensors, are kept for the backward pass: the forward scope disposes tensors.
      const va = vt.dataSync() as Float32Array;
      const fwd = attentionForward(qt.dataSync() as Float32Array, kt.dataSync() as Float32Array, va, shape, table);
      return {
        value: tf.tensor2d(fwd.out, [n, c.dim]),
        gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
          const g = attentionBackward((dy as tf.Tensor).dataSync() as Float32Array, fwd, shape, table);
          return [tf.tensor2d(g.dq, [n, c.dim]), tf.tensor2d(g.dk, [n, kvDim]), tf.tensor2d(g.dv, [n, kvDim])];
        },
      };
    });
    return f(q, k, v) as tf.Tensor2D;
  }

  /**
   * RoPE tables [1, seq, 1, hs]; the q tables also carry the 1/sqrt(hs) attention scale, which saves
   * scaling the [B, KV, g*T, T] scores (and its gradient) in every layer.
   */
  private rope(seq: number): { cos: tf.Tensor; sin: tf.Tensor; cosQ: tf.Tensor; sinQ: tf.Tensor } {
    const hs = headDimOf(this.config);
    if (!this.ropeCache || this.ropeCache.seq < seq) {
      if (this.ropeCache) tf.dispose([this.ropeCache.cos, this.ropeCache.sin, this.ropeCache.cosQ, this.ropeCache.sinQ]);
      const n = Math.max(seq, 64);
      const t = ropeTables(this.config, n);
      const scale = 1 / Math.sqrt(hs);
      const table = (a: Float32Array): tf.Tensor => tf.keep(tf.tensor4d(a, [1, n, 1, hs]));
      this.ropeCache = { seq: n, cos: table(t.cos), sin: table(t.sin), cosQ: table(t.cos.map((v) => v * scale)), sinQ: table(t.sin.map((v) => v * scale)) };
    }
    const cut = (x: tf.Tensor): tf.Tensor => tf.slice(x, [0, 0, 0, 0], [1, seq, 1, hs]);
    const r = this.ropeCache;
    return { cos: cut(r.cos), sin: cut(r.sin), cosQ: cut(r.cosQ), sinQ: cut(r.sinQ) };
  }

  /** Additive causal mask for one kv group: rows are g query heads x T positions, columns T keys. */
  private mask(seq: number): tf.Tensor2D {
    let m = this.maskCache.get(seq);
    if (!m) {
      const g = this.config.nHeads / this.config.nKvHeads;
      const data = new Float32Array(g * seq * seq);
      for (let r = 0; r < g * seq; r++) for (let col = (r % seq) + 1; col < seq; col++) data[r * seq + col] = -1e9;
      m = tf.keep(tf.tensor2d(data, [g * seq, seq]));
      this.maskCache.set(seq, m);
    }
    return m;
  }

  private applyRope(x: tf.Tensor2D, batch: number, seq: number, heads: number, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
    const hs = headDimOf(this.config);
    const x4 = tf.reshape(x, [batch, seq, heads, hs]);
    const rotated = tf.reshape(this.rotate.apply(tf.reshape(x, [-1, hs]) as tf.Tensor2D), [batch, seq, heads, hs]);
    return tf.add(tf.mul(x4, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
  }

  private rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D): tf.Tensor2D {
    if (this.native) return nRmsNorm(x, w, this.config.normEps);
    const ms = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, this.config.normEps))), w);
  }

  /** x W^T (+ residual) on the engine's ops. */
  private linear(x: tf.Tensor2D, w: Weight, residual?: tf.Tensor2D): tf.Tensor2D {
    if (w.parts) {
      const y = nLinearParts(x, w.parts.arrays, w.parts.outs);
      return residual ? tf.add(residual, y) : y;
    }
    if (this.native) return nLinear(x, w.w, this.trainable, residual);
    const y = w.frozen ? w.frozen.apply(x) : linearT(x, w.w);
    return residual ? tf.add(residual, y) : y;
  }

  /** y plus the adapter's term for `projection` of input x, at columns [offset, ...) of y (native fused layouts). */
  private adaptInto(y: tf.Tensor2D, x: tf.Tensor2D, adapter: ProjectionAdapter, layer: number, projection: LlamaProjection, offset: number): tf.Tensor2D {
    const lr = adapter.lowRank?.(layer, projection);
    if (lr) return nLoraInto(y, lr.input ? lr.input(x) : x, lr.a, lr.b, lr.scale, offset);
    const delta = adapter.delta(layer, projection, x);
    const width = delta.shape[1];
    const total = y.shape[1];
    return tf.add(y, width === total ? delta : tf.pad(delta, [[0, 0], [offset, total - offset - width]]));
  }

  private nativeTables(seq: number): { cos: Float32Array; sin: Float32Array } {
    if (!this.nativeRope || this.nativeRope.seq < seq) {
      const t = ropeTables(this.config, Math.max(seq, 64));
      this.nativeRope = { seq: Math.max(seq, 64), cos: t.cos, sin: t.sin };
    }
    return this.nativeRope;
  }

  /** Hidden states after the final norm, [B*T, dim]. `ids` is row-major [batch, seq]. */
  hidden(ids: Int32Array, batch: number, seq: number, adapter?: ProjectionAdapter): tf.Tensor2D {
    if (this.disposed) throw new Error("TfLlama: used after dispose()");
    const c = this.config;
    if (ids.length !== batch * seq) throw new Error(`TfLlama: ${ids.length} ids for batch ${batch} x seq ${seq}`);
    if (seq > c.seqLen) throw new Error(`TfLlama: sequence of ${seq} positions exceeds the model's seq_len ${c.seqLen}`);
    if (this.native) return this.hiddenNative(ids, batch, seq, adapter);
    const hs = headDimOf(c);
    const kvDim = c.nKvHeads * hs;
    const g = c.nHeads / c.nKvHeads;
    const graph = this.attention === "graph" ? { ...this.rope(seq), mask: this.mask(seq) } : undefined;
    let x = (this.trainable ? selectRows(this.embedding, ids) : tf.gather(this.embedding, tf.tensor1d(ids, "int32"))) as tf.Tensor2D;
    this.layers.forEach((L, l) => {
      const h = this.rmsNorm(x, L.attnNorm);
      let qkv = this.linear(h, L.wqkv);
      if (L.bqkv) qkv = tf.add(qkv, L.bqkv);
      let [q, k, v] = tf.split(qkv, [c.dim, kvDim, kvDim], 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      if (adapter?.has(l, "wq")) q = tf.add(q, adapter.delta(l, "wq", h));
      if (adapter?.has(l, "wk")) k = tf.add(k, adapter.delta(l, "wk", h));
      if (adapter?.has(l, "wv")) v = tf.add(v, adapter.delta(l, "wv", h));
      let attn: tf.Tensor2D;
      if (this.attention === "js") attn = this.attendJs(q, k, v, batch, seq);
      else {
        const { cos, sin, cosQ, sinQ, mask } = graph!;
        // Query heads sharing a kv head are laid side by side along the row axis, [B, KV, g*T, hs], so
        // grouped-query attention is a plain rank-4 batched matmul with no tile or repeat of k and v.
        const q4 = tf.reshape(tf.transpose(this.applyRope(q, batch, seq, c.nHeads, cosQ, sinQ), [0, 2, 1, 3]), [batch, c.nKvHeads, g * seq, hs]);
        const k4 = tf.transpose(this.applyRope(k, batch, seq, c.nKvHeads, cos, sin), [0, 2, 1, 3]);
        const v4 = tf.transpose(tf.reshape(v, [batch, seq, c.nKvHeads, hs]), [0, 2, 1, 3]);
        const scores = tf.add(mm(q4, swapLast(k4)), mask);
        const grouped = mm(tf.softmax(scores), v4); // [B, KV, g*T, hs]
        attn = tf.reshape(tf.transpose(tf.reshape(grouped, [batch, c.nHeads, seq, hs]), [0, 2, 1, 3]), [batch * seq, c.dim]) as tf.Tensor2D;
      }
      let o = this.linear(attn, L.wo);
      if (adapter?.has(l, "wo")) o = tf.add(o, adapter.delta(l, "wo", attn));
      x = tf.add(x, o);
      const h2 = this.rmsNorm(x, L.ffnNorm);
      let [gate, up] = tf.split(this.linear(h2, L.w13), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
      if (adapter?.has(l, "w1")) gate = tf.add(gate, adapter.delta(l, "w1", h2));
      if (adapter?.has(l, "w3")) up = tf.add(up, adapter.delta(l, "w3", h2));
      const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D;
      let down = this.linear(act, L.w2);
      if (adapter?.has(l, "w2")) down = tf.add(down, adapter.delta(l, "w2", act));
      x = tf.add(x, down);
    });
    return this.rmsNorm(x, this.finalNorm);
  }

  /**
   * The same layers on the native ops: per layer 2 norms, 4 GEMM ops (the residual adds inside the
   * wo and w2 products), one fused attention taking the stacked q|k|v, one SwiGLU taking gate|up;
   * LoRA terms go straight into the stacked outputs (or into the residual stream for wo and w2).
   */
  private hiddenNative(ids: Int32Array, batch: number, seq: number, adapter?: ProjectionAdapter): tf.Tensor2D {
    const c = this.config;
    const hs = headDimOf(c);
    const kvDim = c.nKvHeads * hs;
    const { cos, sin } = this.nativeTables(seq);
    const shape = { batch, seq, heads: c.nHeads, kvHeads: c.nKvHeads, headDim: hs, cos, sin, ropeStyle: (c.ropeStyle === "interleaved" ? 0 : 1) as 0 | 1 };
    let x = nEmbed(this.embedding, ids, this.trainable);
    // One op per projection with its LoRA terms fused in (adapters with dropout or without factors
    // fall back to adding their delta); the wo and w2 products add into the residual stream.
    const project = (input: tf.Tensor2D, w: Weight, l: number, terms: [LlamaProjection, number][], residual?: tf.Tensor2D): tf.Tensor2D => {
      const loras: NativeLowRank[] = [];
      const rest: [LlamaProjection, number][] = [];
      for (const [p, offset] of terms) {
        if (!adapter?.has(l, p)) continue;
        const lr = adapter.lowRank?.(l, p);
        if (lr && !lr.input) loras.push({ a: lr.a, b: lr.b, scale: lr.scale, offset });
        else rest.push([p, offset]);
      }
      let y = nProject(input, w, this.trainable, loras, residual);
      for (const [p, offset] of rest) y = this.adaptInto(y, input, adapter!, l, p, offset);
      return y;
    };
    const layer = (L: LayerTensors, l: number): tf.Tensor2D => {
      const h = this.rmsNorm(x, L.attnNorm);
      let qkv = project(h, L.wqkv, l, [["wq", 0], ["wk", c.dim], ["wv", c.dim + kvDim]]);
      if (L.bqkv) qkv = tf.add(qkv, L.bqkv);
      const attn = nAttention(qkv, shape);
      const mid = project(attn, L.wo, l, [["wo", 0]], x);
      const h2 = this.rmsNorm(mid, L.ffnNorm);
      const gu = project(h2, L.w13, l, [["w1", 0], ["w3", c.hiddenDim]]);
      return project(nSwiglu(gu), L.w2, l, [["w2", 0]], mid);
    };
    // Without a gradient tape (scoring, evaluation) each layer's temporaries are released as it ends,
    // so the garbage collector can take their arrays: one outer scope kept all 30 layers' alive (+0.6 GB
    // on the 135M shape).
    const taping = (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
    this.layers.forEach((L, l) => {
      if (taping) x = layer(L, l);
      else {
        const prev = x;
        x = tf.tidy(() => layer(L, l));
        if (l > 0) prev.dispose();
      }
    });
    return this.rmsNorm(x, this.finalNorm);
  }

  /**
   * `weight` x the sum of the token losses at flat positions `rows` (next tokens `targets`), as a
   * differentiable scalar: on native one fused head-and-cross-entropy op, else logits then crossEntropy.
   */
  loss(ids: Int32Array, batch: number, seq: number, rows: Int32Array, targets: Int32Array, weight: number, adapter?: ProjectionAdapter): tf.Scalar {
    if (!this.native) return crossEntropy(this.forward(ids, batch, seq, { adapter, rows }), targets, weight);
    const h = nSelectRows(this.hidden(ids, batch, seq, adapter), rows);
    return nHeadLoss(h, this.head.w, targets, weight, this.trainable);
  }

  /** Logits [B*T, V] (or [rows, V] when `rows` is given). Caller disposes (or wraps in tf.tidy). */
  forward(ids: Int32Array, batch: number, seq: number, options: ForwardOptions = {}): tf.Tensor2D {
    let h = this.hidden(ids, batch, seq, options.adapter);
    if (options.rows) h = this.native ? nSelectRows(h, options.rows) : selectRows(h, options.rows);
    return this.linear(h, this.head);
  }

  /** Logits as plain arrays, [B*T*V] row-major. */
  logits(ids: Int32Array, batch: number, seq: number, adapter?: ProjectionAdapter): Float32Array {
    const t = tf.tidy(() => this.forward(ids, batch, seq, { adapter }));
    try {
      return t.dataSync() as Float32Array;
    } finally {
      t.dispose();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const all = new Set<tf.Tensor>([this.embedding, this.finalNorm, ...this.maskCache.values()]);
    const weight = (w: Weight): void => {
      all.add(w.w);
      if (w.frozen) all.add(w.frozen.wt);
    };
    weight(this.head);
    this.rotate.dispose();
    if (this.ropeCache) for (const t of [this.ropeCache.cos, this.ropeCache.sin, this.ropeCache.cosQ, this.ropeCache.sinQ]) all.add(t);
    for (const L of this.layers) {
      for (const t of [L.attnNorm, L.ffnNorm, ...(L.bqkv ? [L.bqkv] : [])]) all.add(t);
      for (const lin of [L.wqkv, L.w13, L.wo, L.w2]) weight(lin);
    }
    tf.dispose([...all]);
  }
}

export type { LlamaWeights };
