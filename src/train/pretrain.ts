/**
 * Full-parameter training of a small Llama from scratch (or from a llama2.c file) in TF.js, for the
 * reader base. The SFT trainer (sft.ts) trains LoRA adapters over frozen constants; here every weight
 * is a variable. The embedding gather gets its gradient from a scatter-add (the wasm backend has no
 * gather gradient), the loss is llama-tf's written-out cross-entropy, AdamW and the schedule run in
 * plain typed arrays as in sft.ts (torch.optim.AdamW arithmetic), decay on matrices only.
 *
 * A checkpoint is a folder: model.bin (llama2.c, exact fp32), optimizer.bin (AdamW moments) and
 * state.json; it is written to a temporary sibling and renamed, so a kill leaves the old or the new.
 */
import { existsSync, readFileSync, renameSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { tf } from "../model/backend.ts";
import { crossEntropy, ropeTables } from "../model/llama-tf.ts";
import { concatFloat, selectRows } from "../model/tf-ops.ts";
import { loadLlama2c, saveLlama2c } from "../model/llama2c.ts";
import type { LlamaConfig, LlamaModelData } from "../model/types.ts";
import { Rng } from "../util/rng.ts";

export interface PretrainOptimConfig {
  learningRate: number;
  /** Final learning rate as a share of the peak (cosine floor). */
  minLrRatio: number;
  warmupSteps: number;
  totalSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  maxGradNorm: number;
}

export const pretrainOptimDefaults: PretrainOptimConfig = { learningRate: 2e-3, minLrRatio: 0.1, warmupSteps: 100, totalSteps: 1000, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, maxGradNorm: 1 };

/** One sequence; `lossFrom` is the first token position whose prediction is scored (0: all of it). */
export interface LmExample {
  ids: readonly number[];
  lossFrom: number;
}

export interface LmBatch {
  ids: Int32Array;
  batch: number;
  seq: number;
  rows: Int32Array;
  targets: Int32Array;
  /** Non-padding input tokens. */
  tokens: number;
}

/** Pads examples into [B, T-1] inputs, scoring the targets at and after each example's lossFrom. */
export function makeLmBatch(examples: readonly LmExample[], padId = 0): LmBatch {
  const seq = Math.max(1, Math.max(...examples.map((e) => e.ids.length)) - 1);
  const ids = new Int32Array(examples.length * seq).fill(padId);
  const rows: number[] = [];
  const targets: number[] = [];
  let tokens = 0;
  examples.forEach((e, b) => {
    for (let t = 0; t + 1 < e.ids.length; t++) {
      ids[b * seq + t] = e.ids[t]!;
      tokens++;
      if (t + 1 >= e.lossFrom) {
        rows.push(b * seq + t);
        targets.push(e.ids[t + 1]!);
      }
    }
  });
  return { ids, batch: examples.length, seq, rows: Int32Array.from(rows), targets: Int32Array.from(targets), tokens };
}

/** Splits a batch into `parts` batches of whole sequences (for data-parallel gradients). */
export function splitLmBatch(b: LmBatch, parts: number): LmBatch[] {
  const per = Math.ceil(b.batch / parts);
  const out: LmBatch[] = [];
  for (let first = 0; first < b.batch; first += per) {
    const n = Math.min(per, b.batch - first);
    const rows: number[] = [];
    const targets: number[] = [];
    b.rows.forEach((r, i) => {
      const seqIndex = Math.floor(r / b.seq);
      if (seqIndex >= first && seqIndex < first + n) {
        rows.push(r - first * b.seq);
        targets.push(b.targets[i]!);
      }
    });
    const ids = b.ids.slice(first * b.seq, (first + n) * b.seq);
    out.push({ ids, batch: n, seq: b.seq, rows: Int32Array.from(rows), targets: Int32Array.from(targets), tokens: Math.round((b.tokens * n) / b.batch) });
  }
  return out;
}

/** GPT-2 style initialisation: N(0, 0.02), output projections scaled by 1/sqrt(2 layers), norms at 1. */
export function initLlama(config: LlamaConfig, seed: number): LlamaModelData {
  const rng = new Rng(seed);
  const c = config;
  const normal = (n: number, std: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * std);
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const kv = (c.nKvHeads * c.dim) / c.nHeads;
  const out = 0.02 / Math.sqrt(2 * c.nLayers);
  const tokenEmbedding = normal(c.vocabSize * c.dim, 0.02);
  const layers = Array.from({ length: c.nLayers }, () => ({
    attnNorm: ones(c.dim),
    wq: normal(c.dim * c.dim, 0.02),
    wk: normal(kv * c.dim, 0.02),
    wv: normal(kv * c.dim, 0.02),
    wo: normal(c.dim * c.dim, out),
    ffnNorm: ones(c.dim),
    w1: normal(c.hiddenDim * c.dim, 0.02),
    w2: normal(c.dim * c.hiddenDim, out),
    w3: normal(c.hiddenDim * c.dim, 0.02),
  }));
  return { config: c, weights: { tokenEmbedding, layers, finalNorm: ones(c.dim), lmHead: c.tiedEmbeddings ? tokenEmbedding : normal(c.vocabSize * c.dim, 0.02) } };
}

interface Param {
  name: string;
  variable: tf.Variable;
  decay: boolean;
}

/** Swaps the last two axes. */
const swapLast = (x: tf.Tensor): tf.Tensor => tf.transpose(x, [...Array.from({ length: x.rank - 2 }, (_, i) => i), x.rank - 1, x.rank - 2]);

/**
 * a @ b with every product, forward and backward, done untransposed: the wasm backend's batched
 * matmul is about 10 times slower with transposeA/transposeB set than on explicitly transposed inputs
 * (measured: 768x128 by 128x384 in 223 ms against 20 ms plus a 4 ms transpose), and tf.matMul's own
 * gradient uses the transposed forms.
 */
function mm(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, y, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([x, y]);
    return {
      value: tf.matMul(x, y),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, sy] = saved as [tf.Tensor, tf.Tensor];
        return [tf.matMul(dy as tf.Tensor, swapLast(sy)), tf.matMul(swapLast(sx), dy as tf.Tensor)];
      },
    };
  });
  return f(a, b);
}

/** x [N, in] times a weight stored [out, in], as x W^T. */
const linear = (x: tf.Tensor, w: tf.Tensor): tf.Tensor2D => mm(x, tf.transpose(w)) as tf.Tensor2D;

export interface TrainStepResult {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  ms: number;
}

let trainerCount = 0;

/**
 * Sets a variable's values. The temporary tensor must be disposed after assign (the variable keeps its
 * own reference); left alive it pins the old buffer, which leaked the whole model every step and
 * aborted a pilot at step 722 when wasm's 4 GiB heap ran out.
 */
function assignValues(variable: tf.Variable, values: Float32Array): void {
  const t = tf.tensor(values, variable.shape);
  variable.assign(t);
  t.dispose();
}

export class FullTrainer {
  readonly config: LlamaConfig;
  optim: PretrainOptimConfig;
  step = 0;
  private readonly params: Param[];
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private readonly rotate: tf.Tensor2D;
  private readonly ropeCos: tf.Tensor4D;
  private readonly ropeSin: tf.Tensor4D;
  private readonly masks = new Map<number, tf.Tensor2D>();

  constructor(model: LlamaModelData, optim: Partial<PretrainOptimConfig> = {}) {
    const c = (this.config = model.config);
    if (!c.tiedEmbeddings) throw new Error("FullTrainer: only tied embeddings are supported (the reader base ties them)");
    if (c.nKvHeads !== c.nHeads) throw new Error("FullTrainer: grouped-query attention is not supported; use n_kv_heads = n_heads");
    this.optim = { ...pretrainOptimDefaults, ...optim };
    const w = model.weights;
    // Variable names are global to TF.js: a per-trainer prefix lets several trainers live in one process.
    const prefix = `pretrain${trainerCount++}.`;
    const p = (name: string, values: Float32Array, shape: number[], decay: boolean): Param => ({ name, variable: tf.variable(tf.tensor(values, shape), true, prefix + name), decay });
    this.params = [p("embedding", w.tokenEmbedding, [c.vocabSize, c.dim], true)];
    w.layers.forEach((l, i) => {
      this.params.push(
        p(`l${i}.attnNorm`, l.attnNorm, [c.dim], false),
        p(`l${i}.wqkv`, concatFloat(l.wq, l.wk, l.wv), [3 * c.dim, c.dim], true),
        p(`l${i}.wo`, l.wo, [c.dim, c.dim], true),
        p(`l${i}.ffnNorm`, l.ffnNorm, [c.dim], false),
        p(`l${i}.w13`, concatFloat(l.w1, l.w3), [2 * c.hiddenDim, c.dim], true),
        p(`l${i}.w2`, l.w2, [c.dim, c.hiddenDim], true),
      );
    });
    this.params.push(p("finalNorm", w.finalNorm, [c.dim], false));
    this.m = this.params.map((q) => new Float32Array(q.variable.size));
    this.v = this.params.map((q) => new Float32Array(q.variable.size));
    const hs = c.dim / c.nHeads;
    const t = ropeTables(c, c.seqLen);
    this.rotate = tf.keep(tf.tensor2d(t.rotate, [hs, hs]));
    this.ropeCos = tf.keep(tf.tensor4d(t.cos, [1, c.seqLen, 1, hs]));
    this.ropeSin = tf.keep(tf.tensor4d(t.sin, [1, c.seqLen, 1, hs]));
  }

  get parameterCount(): number {
    return this.params.reduce((n, q) => n + q.variable.size, 0);
  }

  private mask(seq: number): tf.Tensor2D {
    let m = this.masks.get(seq);
    if (!m) {
      const data = new Float32Array(seq * seq);
      for (let r = 0; r < seq; r++) for (let col = r + 1; col < seq; col++) data[r * seq + col] = -1e9;
      m = tf.keep(tf.tensor2d(data, [seq, seq]));
      this.masks.set(seq, m);
    }
    return m;
  }

  /** Logits [rows, V] for the flat positions `rows` of ids [batch, seq]. */
  forward(ids: Int32Array, batch: number, seq: number, rows?: Int32Array): tf.Tensor2D {
    const c = this.config;
    if (seq > c.seqLen) throw new Error(`FullTrainer: ${seq} positions exceed seq_len ${c.seqLen}`);
    const hs = c.dim / c.nHeads;
    const P = this.params;
    const cos = tf.slice(this.ropeCos, [0, 0, 0, 0], [1, seq, 1, hs]);
    const sin = tf.slice(this.ropeSin, [0, 0, 0, 0], [1, seq, 1, hs]);
    const rope = (x: tf.Tensor2D): tf.Tensor4D => {
      const x4 = tf.reshape(x, [batch, seq, c.nHeads, hs]);
      const r = tf.reshape(mm(tf.reshape(x, [-1, hs]), this.rotate), [batch, seq, c.nHeads, hs]);
      return tf.transpose(tf.add(tf.mul(x4, cos), tf.mul(r, sin)), [0, 2, 1, 3]) as tf.Tensor4D;
    };
    const norm = (x: tf.Tensor2D, w: tf.Variable): tf.Tensor2D => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), c.normEps))), w);
    const emb = P[0]!.variable as tf.Variable<tf.Rank.R2>;
    let x = selectRows(emb, ids);
    const mask = this.mask(seq);
    for (let l = 0; l < c.nLayers; l++) {
      const [attnNorm, wqkv, wo, ffnNorm, w13, w2] = P.slice(1 + 6 * l, 7 + 6 * l).map((q) => q.variable);
      const h = norm(x, attnNorm!);
      const [q, k, v] = tf.split(linear(h, wqkv!), 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      const scores = tf.add(tf.mul(mm(rope(q), swapLast(rope(k))), 1 / Math.sqrt(hs)), mask);
      const v4 = tf.transpose(tf.reshape(v, [batch, seq, c.nHeads, hs]), [0, 2, 1, 3]);
      const attn = tf.reshape(tf.transpose(mm(tf.softmax(scores), v4), [0, 2, 1, 3]), [batch * seq, c.dim]) as tf.Tensor2D;
      x = tf.add(x, linear(attn, wo!));
      const h2 = norm(x, ffnNorm!);
      const [gate, up] = tf.split(linear(h2, w13!), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
      x = tf.add(x, linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), w2!));
    }
    let out = norm(x, P[P.length - 1]!.variable);
    if (rows) out = selectRows(out, rows);
    return linear(out, emb);
  }

  learningRateAt(s: number): number {
    const o = this.optim;
    if (s < o.warmupSteps) return (o.learningRate * (s + 1)) / o.warmupSteps;
    const progress = Math.min(1, (s - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps));
    return o.learningRate * (o.minLrRatio + (1 - o.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
  }

  /** Mean token loss of a batch without updating anything. */
  loss(b: LmBatch): number {
    if (b.rows.length === 0) return NaN;
    return tf.tidy(() => crossEntropy(this.forward(b.ids, b.batch, b.seq, b.rows), b.targets, 1 / b.rows.length).dataSync()[0]!);
  }

  /** Loss and gradients of `scale` x (sum of token losses of the batch), in parameter order. */
  gradients(b: LmBatch, scale = 1 / b.rows.length): { loss: number; values: Float32Array[] } {
    if (b.rows.length === 0) return { loss: 0, values: this.params.map((q) => new Float32Array(q.variable.size)) };
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(this.forward(b.ids, b.batch, b.seq, b.rows), b.targets, scale), this.params.map((q) => q.variable));
      return { loss: value.dataSync()[0]!, values: this.params.map((q) => Float32Array.from(grads[q.variable.name]!.dataSync() as Float32Array)) };
    });
  }

  /** Current parameter values in parameter order (copies). */
  parameterValues(): Float32Array[] {
    return this.params.map((q) => Float32Array.from(q.variable.dataSync() as Float32Array));
  }

  setParameterValues(values: readonly Float32Array[]): void {
    this.params.forEach((q, i) => assignValues(q.variable, values[i]!));
  }

  /** One AdamW step on the batch's mean token loss. */
  trainStep(b: LmBatch): TrainStepResult {
    const t0 = performance.now();
    const { loss, values } = this.gradients(b);
    return this.applyGradients(loss, values, b.tokens, t0);
  }

  /** AdamW (torch arithmetic) with global-norm clipping, from gradients of the mean loss. */
  applyGradients(loss: number, grads: readonly Float32Array[], tokens: number, t0 = performance.now()): TrainStepResult {
    const o = this.optim;
    const lr = this.learningRateAt(this.step);
    if (!Number.isFinite(loss)) throw new Error(`step ${this.step + 1}: loss is ${loss}; lower the learning rate (now ${o.learningRate})`);
    let sq = 0;
    for (const g of grads) for (let j = 0; j < g.length; j++) sq += g[j]! * g[j]!;
    const gradNorm = Math.sqrt(sq);
    const clip = o.maxGradNorm > 0 ? Math.min(1, o.maxGradNorm / (gradNorm + 1e-6)) : 1;
    const t = ++this.step;
    const bc1 = 1 - Math.pow(o.beta1, t);
    const sqrtBc2 = Math.sqrt(1 - Math.pow(o.beta2, t));
    this.params.forEach((q, i) => {
      const g = grads[i]!;
      const m = this.m[i]!;
      const v = this.v[i]!;
      const w = q.variable.dataSync() as Float32Array;
      const out = new Float32Array(w.length);
      const decay = q.decay ? 1 - lr * o.weightDecay : 1;
      for (let j = 0; j < w.length; j++) {
        const gj = g[j]! * clip;
        m[j] = o.beta1 * m[j]! + (1 - o.beta1) * gj;
        v[j] = o.beta2 * v[j]! + (1 - o.beta2) * gj * gj;
        out[j] = w[j]! * decay - ((lr / bc1) * m[j]!) / (Math.sqrt(v[j]!) / sqrtBc2 + o.eps);
      }
      assignValues(q.variable, out);
    });
    return { step: t, loss, lr, gradNorm, tokens, ms: performance.now() - t0 };
  }

  /** The weights as the shared contract (a copy), e.g. for saveLlama2c or the decoder. */
  toModelData(): LlamaModelData {
    const c = this.config;
    const get = (i: number): Float32Array => Float32Array.from(this.params[i]!.variable.dataSync() as Float32Array);
    const emb = get(0);
    const layers = Array.from({ length: c.nLayers }, (_, l) => {
      const at = 1 + 6 * l;
      const qkv = get(at + 1);
      const w13 = get(at + 4);
      const d2 = c.dim * c.dim;
      const hd = c.hiddenDim * c.dim;
      return { attnNorm: get(at), wq: qkv.slice(0, d2), wk: qkv.slice(d2, 2 * d2), wv: qkv.slice(2 * d2), wo: get(at + 2), ffnNorm: get(at + 3), w1: w13.slice(0, hd), w3: w13.slice(hd), w2: get(at + 5) };
    });
    return { config: c, weights: { tokenEmbedding: emb, layers, finalNorm: get(this.params.length - 1), lmHead: emb } };
  }

  /** Writes model.bin, optimizer.bin and state.json (with `extra`) into `dir`, atomically as a folder. */
  save(dir: string, extra: Record<string, unknown> = {}): void {
    const temp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
    rmSync(temp, { recursive: true, force: true });
    mkdirSync(temp, { recursive: true });
    saveLlama2c(join(temp, "model.bin"), this.toModelData());
    const moments = concatFloat(...this.m, ...this.v);
    writeFileSync(join(temp, "optimizer.bin"), new Uint8Array(moments.buffer, moments.byteOffset, moments.byteLength));
    writeFileSync(join(temp, "state.json"), JSON.stringify({ step: this.step, optim: this.optim, ...extra }, null, 1) + "\n");
    if (existsSync(dir)) {
      const old = `${temp}-old`;
      renameSync(dir, old);
      renameSync(temp, dir);
      rmSync(old, { recursive: true, force: true });
    } else renameSync(temp, dir);
  }

  /** A trainer at the state `save` wrote; `optim` overrides the saved optimizer settings. */
  static load(dir: string, optim: Partial<PretrainOptimConfig> = {}): { trainer: FullTrainer; state: Record<string, unknown> } {
    const state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Record<string, unknown> & { step: number; optim: PretrainOptimConfig };
    const trainer = new FullTrainer(loadLlama2c(join(dir, "model.bin")), { ...state.optim, ...optim });
    const raw = readFileSync(join(dir, "optimizer.bin"));
    const moments = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    let at = 0;
    for (const arr of [...trainer.m, ...trainer.v]) {
      arr.set(moments.subarray(at, at + arr.length));
      at += arr.length;
    }
    if (at !== moments.length) throw new Error(`${join(dir, "optimizer.bin")}: ${moments.length} values, expected ${at}`);
    trainer.step = state.step;
    return { trainer, state };
  }

  dispose(): void {
    tf.dispose([...this.params.map((q) => q.variable), this.rotate, this.ropeCos, this.ropeSin, ...this.masks.values()]);
  }
}
