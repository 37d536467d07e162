/**
 * Full-parameter training of a Llama from scratch (or from a llama2.c file), for the reader base: the
 * same model as LoRA training (llama-tf.ts's TfLlama, built with every weight a variable), so GQA and
 * untied heads work here too and the engine (native ops or TF.js) is the model's. AdamW and the
 * schedule follow torch.optim.AdamW arithmetic (sft.ts's too), decay on matrices only; on the native
 * engine the update runs in the addon (bit-identical to the JS loop) on the variables' own arrays.
 *
 * A checkpoint is a folder: model.bin (llama2.c, exact fp32), optimizer.bin (AdamW moments) and
 * state.json; it is written to a temporary sibling and renamed, so a kill leaves the old or the new.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { tf } from "../model/backend.ts";
import { TfLlama, type LlamaParameter } from "../model/llama-tf.ts";
import { nativeApi } from "../model/ops-native.ts";
import { concatFloat } from "../model/tf-ops.ts";
import { loadLlama2c, saveLlama2c } from "../model/llama2c.ts";
import type { LlamaConfig, LlamaModelData } from "../model/types.ts";
import { Rng } from "../util/rng.ts";

/** fsync of a file or a folder (a folder's entries: the renames in it). */
function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** For tests: runs between the two renames of FullTrainer.save (where a crash leaves only `*-old`). */
export const checkpointHooks: { betweenRenames?: () => void } = {};

/** A checkpoint folder as save() leaves it: all three files. */
const isCompleteCheckpoint = (dir: string): boolean => ["model.bin", "optimizer.bin", "state.json"].every((f) => existsSync(join(dir, f)));

/**
 * Makes `dir` a loadable checkpoint again after a crash inside FullTrainer.save: when `dir` is gone (or
 * incomplete) but a `.<dir>.tmp-<pid>-old` sibling holds the previous checkpoint, that is renamed back
 * (and leftover temporary folders are removed). Returns whether `dir` now holds a checkpoint.
 */
export function recoverCheckpoint(dir: string, warn: (message: string) => void = (m) => console.warn(m)): boolean {
  const parent = dirname(dir);
  const prefix = `.${basename(dir)}.tmp-`;
  const siblings = existsSync(parent) ? readdirSync(parent).filter((name) => name.startsWith(prefix)) : [];
  if (!isCompleteCheckpoint(dir)) {
    const old = siblings.filter((name) => name.endsWith("-old") && isCompleteCheckpoint(join(parent, name)));
    if (old.length > 0) {
      // The newest, should several crashed saves have left one each.
      const step = (name: string): number => (JSON.parse(readFileSync(join(parent, name, "state.json"), "utf8")) as { step?: number }).step ?? -1;
      const best = old.sort((a, b) => step(b) - step(a))[0]!;
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      renameSync(join(parent, best), dir);
      fsyncPath(parent);
      warn(`${dir}: a save was interrupted between its renames; the previous checkpoint (step ${step(basename(dir))}) is back from ${best}`);
    }
  }
  for (const name of siblings) if (existsSync(join(parent, name))) rmSync(join(parent, name), { recursive: true, force: true });
  return isCompleteCheckpoint(dir);
}

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
  /**
   * Scored token positions as [start, end) ranges, instead of everything from `lossFrom` on: several
   * answers in one sequence (the reader's multi-question rows) without scoring the questions between.
   */
  scored?: readonly (readonly [number, number])[];
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
      if (e.scored ? e.scored.some(([a, z]) => t + 1 >= a && t + 1 < z) : t + 1 >= e.lossFrom) {
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
  /** The model being trained (its weights are the variables below). */
  readonly model: TfLlama;
  private readonly params: LlamaParameter[];
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(model: LlamaModelData, optim: Partial<PretrainOptimConfig> = {}) {
    this.config = model.config;
    this.optim = { ...pretrainOptimDefaults, ...optim };
    // Variable names are global to TF.js: a per-trainer prefix lets several trainers live in one process.
    this.model = new TfLlama(model, { trainable: true, variablePrefix: `pretrain${trainerCount++}.`, source: "FullTrainer" });
    this.params = this.model.parameters;
    this.m = this.params.map((q) => new Float32Array(q.variable.size));
    this.v = this.params.map((q) => new Float32Array(q.variable.size));
  }

  get parameterCount(): number {
    return this.params.reduce((n, q) => n + q.variable.size, 0);
  }

  /** Logits [rows, V] for the flat positions `rows` of ids [batch, seq] (all positions without rows). */
  forward(ids: Int32Array, batch: number, seq: number, rows?: Int32Array): tf.Tensor2D {
    return this.model.forward(ids, batch, seq, { rows });
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
    return tf.tidy(() => this.model.loss(b.ids, b.batch, b.seq, b.rows, b.targets, 1 / b.rows.length).dataSync()[0]!);
  }

  /** Loss and gradients of `scale` x (sum of token losses of the batch), in parameter order. */
  gradients(b: LmBatch, scale = 1 / b.rows.length): { loss: number; values: Float32Array[] } {
    if (b.rows.length === 0) return { loss: 0, values: this.params.map((q) => new Float32Array(q.variable.size)) };
    let loss = 0;
    let values: Float32Array[] = [];
    // The arrays leave the scope through the closure, not as tidy's result: tidy walks a result's
    // contents, element by element for typed arrays (it cost 0.8 s a step on the 1.33M model).
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => this.model.loss(b.ids, b.batch, b.seq, b.rows, b.targets, scale), this.params.map((q) => q.variable));
      // On the cpu backend (native engine) dataSync is the gradient's own array, which outlives the tensor: no copy.
      const own = this.model.native;
      loss = value.dataSync()[0]!;
      values = this.params.map((q) => (own ? (grads[q.variable.name]!.dataSync() as Float32Array) : Float32Array.from(grads[q.variable.name]!.dataSync() as Float32Array)));
    });
    return { loss, values };
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
    const native = this.model.native ? nativeApi() : undefined;
    let sq = 0;
    if (native) for (const g of grads) sq += native.sumSquares(g);
    else for (const g of grads) for (let j = 0; j < g.length; j++) sq += g[j]! * g[j]!;
    const gradNorm = Math.sqrt(sq);
    const clip = o.maxGradNorm > 0 ? Math.min(1, o.maxGradNorm / (gradNorm + 1e-6)) : 1;
    const t = ++this.step;
    const bc1 = 1 - Math.pow(o.beta1, t);
    const sqrtBc2 = Math.sqrt(1 - Math.pow(o.beta2, t));
    this.params.forEach((q, i) => {
      const g = grads[i]!;
      const m = this.m[i]!;
      const v = this.v[i]!;
      const decay = q.decay ? 1 - lr * o.weightDecay : 1;
      if (native) {
        // The cpu backend's dataSync is the variable's own array: updated in place, no upload.
        native.adamw(q.variable.dataSync() as Float32Array, g, m, v, lr, o.beta1, o.beta2, o.eps, decay, clip, bc1, sqrtBc2);
        return;
      }
      const w = q.variable.dataSync() as Float32Array;
      const out = new Float32Array(w.length);
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
    const byName = new Map(this.params.map((q) => [q.name, q]));
    const get = (name: string): Float32Array => Float32Array.from(byName.get(name)!.variable.dataSync() as Float32Array);
    const emb = get("embedding");
    const d = c.dim;
    const kv = (c.nKvHeads * c.dim) / c.nHeads;
    const layers = Array.from({ length: c.nLayers }, (_, l) => {
      const qkv = get(`l${l}.wqkv`);
      const w13 = get(`l${l}.w13`);
      const hd = c.hiddenDim * d;
      return {
        attnNorm: get(`l${l}.attnNorm`),
        wq: qkv.slice(0, d * d),
        wk: qkv.slice(d * d, d * d + kv * d),
        wv: qkv.slice(d * d + kv * d),
        wo: get(`l${l}.wo`),
        ffnNorm: get(`l${l}.ffnNorm`),
        w1: w13.slice(0, hd),
        w3: w13.slice(hd),
        w2: get(`l${l}.w2`),
      };
    });
    return { config: c, weights: { tokenEmbedding: emb, layers, finalNorm: get("finalNorm"), lmHead: byName.has("lmHead") ? get("lmHead") : emb } };
  }

  /**
   * Writes model.bin, optimizer.bin and state.json (with `extra`) into `dir`, atomically as a folder:
   * the files and the temporary folder are fsynced before the renames, the parent after them. A crash
   * between the two renames leaves the previous checkpoint in `.<dir>.tmp-<pid>-old`, which
   * recoverCheckpoint puts back.
   */
  save(dir: string, extra: Record<string, unknown> = {}): void {
    const temp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
    rmSync(temp, { recursive: true, force: true });
    mkdirSync(temp, { recursive: true });
    saveLlama2c(join(temp, "model.bin"), this.toModelData());
    const moments = concatFloat(...this.m, ...this.v);
    writeFileSync(join(temp, "optimizer.bin"), new Uint8Array(moments.buffer, moments.byteOffset, moments.byteLength));
    writeFileSync(join(temp, "state.json"), JSON.stringify({ step: this.step, optim: this.optim, ...extra }, null, 1) + "\n");
    for (const file of ["model.bin", "optimizer.bin", "state.json"]) fsyncPath(join(temp, file));
    fsyncPath(temp);
    if (existsSync(dir)) {
      const old = `${temp}-old`;
      rmSync(old, { recursive: true, force: true });
      renameSync(dir, old);
      checkpointHooks.betweenRenames?.();
      renameSync(temp, dir);
      fsyncPath(dirname(dir));
      rmSync(old, { recursive: true, force: true });
    } else renameSync(temp, dir);
    fsyncPath(dirname(dir));
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
    this.model.dispose();
  }
}
