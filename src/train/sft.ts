import { appendFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { currentBackend } from "../model/backend.ts";
import { TfLlama, type AttentionMode } from "../model/llama-tf.ts";
import type { LlamaModelData } from "../model/types.ts";
import { throwIfCancelled } from "../util/cancel.ts";
import { writeFileAtomicSync } from "../util/fs.ts";
import { Rng } from "../util/rng.ts";
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainerSnapshot } from "./checkpoint.ts";
import { sftDefaults, type SftConfig } from "./config.ts";
import { lossAndGrads, padBatch } from "./batch.ts";
import { GradPool } from "./grad-pool.ts";
import { IGNORE_INDEX, type SftExample } from "./dataset.ts";
import { LoraAdapter, mergeLora } from "./lora.ts";

/**
 * LoRA supervised fine-tuning in the Hugging Face Trainer's arithmetic: token-mean cross-entropy on
 * response tokens (normalised over the whole accumulation group), global-norm clipping, torch AdamW,
 * linear warmup then cosine (or linear/constant) decay, epoch-wise seeded shuffling. Steps come from an
 * async iterator; between two steps the trainer is consistent, so a notebook can stop, change
 * `trainer.config.learningRate` and go on, and a checkpoint can be taken.
 */
export interface StepResult {
  readonly step: number;
  readonly totalSteps: number;
  /** Fractional epochs done. */
  readonly epoch: number;
  readonly loss: number;
  readonly lr: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  /** Response tokens the loss was computed on. */
  readonly targetTokens: number;
  /** Input tokens (padding excluded) the step processed; tokensPerSec counts these, as HF's throughput does. */
  readonly tokens: number;
  readonly tokensPerSec: number;
  readonly ms: number;
  /** Set on steps where a validation pass ran. */
  readonly evalLoss?: number;
}

export class TrainingError extends Error {
  override name = "TrainingError";
}

export interface SftTrainerOptions {
  model: LlamaModelData;
  train: readonly SftExample[];
  val?: readonly SftExample[];
  config?: Partial<SftConfig>;
  /** Where trainer_log.jsonl, checkpoint-N folders and the final adapter go; nothing is written without it. */
  outputDir?: string;
  /** Recorded as base_model_name_or_path in adapter_config.json. */
  baseModelName?: string;
  /** Filler for shorter rows in a batch (never scored). */
  padId?: number;
  /** A checkpoint folder to continue from, or true for the latest in outputDir. */
  resumeFrom?: string | true;
  /** Attention implementation (default: TfLlama's choice for the backend). */
  attention?: AttentionMode;
}

const fingerprint = (examples: readonly SftExample[]): string => {
  let h = 0x811c9dc5;
  const mix = (x: number): void => {
    h = Math.imul(h ^ (x & 0xffff), 16777619) >>> 0;
    h = Math.imul(h ^ (x >>> 16), 16777619) >>> 0;
  };
  for (const e of examples) {
    mix(e.inputIds.length);
    e.inputIds.forEach(mix);
    e.labels.forEach(mix);
  }
  return `${examples.length}:${h.toString(16)}`;
};

/** Python's str(timedelta(seconds=int(s))). */
export function formatElapsed(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const rest = s % 86400;
  const hms = `${Math.floor(rest / 3600)}:${String(Math.floor((rest % 3600) / 60)).padStart(2, "0")}:${String(rest % 60).padStart(2, "0")}`;
  return days ? `${days} day${days > 1 ? "s" : ""}, ${hms}` : hms;
}

export class SftTrainer {
  /** Live settings: the next step reads learningRate, maxGradNorm, loggingSteps, ... from here. */
  readonly config: SftConfig;
  readonly model: TfLlama;
  readonly adapter: LoraAdapter;
  readonly history: StepResult[] = [];
  readonly logHistory: Record<string, unknown>[] = [];
  private readonly base: LlamaModelData;
  private readonly trainSet: readonly SftExample[];
  private readonly val: readonly SftExample[];
  private readonly outputDir?: string;
  private readonly baseModelName: string;
  private readonly padId: number;
  private readonly rng: Rng;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private globalStep = 0;
  private adamStep = 0;
  private epochIndex = 0;
  private cursor = 0;
  private order: number[] = [];
  private lossSinceLog = 0;
  private stepsSinceLog = 0;
  private startedAt = performance.now();
  private stepsThisRun = 0;
  private pool?: GradPool;
  readonly totalSteps: number;
  readonly batchesPerEpoch: number;
  readonly stepsPerEpoch: number;

  constructor(options: SftTrainerOptions) {
    const config = (this.config = { ...sftDefaults, ...options.config, lora: { ...sftDefaults.lora, ...options.config?.lora } });
    if (options.train.length === 0) throw new TrainingError("no training examples");
    this.base = options.model;
    this.trainSet = options.train;
    this.val = options.val ?? [];
    this.outputDir = options.outputDir;
    if (this.outputDir) mkdirSync(this.outputDir, { recursive: true });
    this.baseModelName = options.baseModelName ?? "model";
    this.padId = options.padId ?? 0;
    this.rng = new Rng(config.seed);
    this.model = new TfLlama(options.model, { source: this.baseModelName, attention: options.attention });
    this.adapter = LoraAdapter.create(options.model.config, config.lora, new Rng(config.seed));
    this.m = this.adapter.parameters.map((p) => new Float32Array(p.values.length));
    this.v = this.adapter.parameters.map((p) => new Float32Array(p.values.length));
    this.batchesPerEpoch = Math.ceil(this.trainSet.length / config.batchSize);
    this.stepsPerEpoch = Math.ceil(this.batchesPerEpoch / config.gradientAccumulationSteps);
    this.totalSteps = config.maxSteps > 0 ? config.maxSteps : Math.ceil(config.numTrainEpochs * this.stepsPerEpoch);
    const resume = options.resumeFrom === true ? (this.outputDir ? latestCheckpoint(this.outputDir) : undefined) : options.resumeFrom;
    if (resume) this.restore(loadCheckpoint(resume), resume);
    else if (this.outputDir && config.overwriteOutputDir && existsSync(this.logPath!)) rmSync(this.logPath!);
  }

  get step(): number {
    return this.globalStep;
  }

  get done(): boolean {
    return this.globalStep >= this.totalSteps;
  }

  private get logPath(): string | undefined {
    return this.outputDir ? join(this.outputDir, "trainer_log.jsonl") : undefined;
  }

  /** The learning rate the scheduler gives optimizer step `s` (0-based), from the live config. */
  learningRateAt(s: number): number {
    const c = this.config;
    const warmup = c.warmupSteps > 0 ? c.warmupSteps : Math.ceil(c.warmupRatio * this.totalSteps);
    if (s < warmup && c.lrSchedulerType !== "constant") return (c.learningRate * s) / Math.max(1, warmup);
    const progress = (s - warmup) / Math.max(1, this.totalSteps - warmup);
    switch (c.lrSchedulerType) {
      case "cosine": return c.learningRate * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
      case "linear": return c.learningRate * Math.max(0, (this.totalSteps - s) / Math.max(1, this.totalSteps - warmup));
      case "constant":
      case "constant_with_warmup": return c.learningRate;
    }
  }

  private epochOrder(epoch: number): number[] {
    return new Rng((this.config.seed + Math.imul(epoch + 1, 0x9e3779b1)) >>> 0).shuffle(this.trainSet.map((_, i) => i));
  }

  /** The worker pool for config.workers > 1, started on first use. */
  private gradPool(): GradPool | undefined {
    // The native engine threads each op over all cores itself; worker copies would only compete with it.
    if (this.config.workers <= 1 || this.model.native) return undefined;
    if (this.pool && this.pool.size === this.config.workers) return this.pool;
    void this.pool?.close();
    this.pool = new GradPool(this.config.workers, { model: this.base, lora: this.config.lora, backend: currentBackend()?.name ?? "wasm", attention: this.model.attention, padId: this.padId });
    return this.pool;
  }

  /** Runs one optimizer step (one accumulation group). */
  async runStep(): Promise<StepResult> {
    if (this.done) throw new TrainingError(`training is complete (${this.totalSteps} steps)`);
    const c = this.config;
    const t0 = performance.now();
    if (this.cursor === 0 || this.order.length === 0) this.order = this.epochOrder(this.epochIndex);
    const groupBatches: SftExample[][] = [];
    for (let k = 0; k < c.gradientAccumulationSteps && this.cursor + k < this.batchesPerEpoch; k++) {
      const start = (this.cursor + k) * c.batchSize;
      groupBatches.push(this.order.slice(start, start + c.batchSize).map((i) => this.trainSet[i]!));
    }
    let tokens = 0;
    let inputTokens = 0;
    for (const examples of groupBatches) {
      for (const e of examples) {
        inputTokens += e.inputIds.length;
        for (let t = 1; t < e.labels.length; t++) if (e.labels[t] !== IGNORE_INDEX) tokens++;
      }
    }
    const grads = this.adapter.parameters.map((p) => new Float32Array(p.values.length));
    const lr = this.learningRateAt(this.globalStep);
    let loss = 0;
    // Rolls the dropout RNG back if the step fails, so a retry (lower lr) starts from the same state.
    const rngBefore = this.rng.state;
    const pool = this.gradPool();
    const dropoutRng = this.config.lora.dropout > 0 ? this.rng : undefined;
    for (const examples of groupBatches) {
      const weight = 1 / Math.max(1, tokens);
      const part = pool
        ? await pool.lossAndGrads(this.model, this.adapter, examples, weight, this.padId, grads, dropoutRng)
        : lossAndGrads(this.model, this.adapter, examples, weight, this.padId, grads, dropoutRng);
      if (!Number.isFinite(part)) {
        this.rng.state = rngBefore;
        throw new TrainingError(`step ${this.globalStep + 1}: the loss is ${part}; the adapter was left as it was after step ${this.globalStep}. Try a lower learning rate (now ${c.learningRate}), a lower max_grad_norm, or check the data`);
      }
      loss += part;
    }
    let sq = 0;
    for (const g of grads) for (let j = 0; j < g.length; j++) sq += g[j]! * g[j]!;
    const gradNorm = Math.sqrt(sq);
    if (!Number.isFinite(gradNorm)) {
      this.rng.state = rngBefore;
      throw new TrainingError(`step ${this.globalStep + 1}: the gradient norm is ${gradNorm}. Try a lower learning rate (now ${c.learningRate})`);
    }
    const clip = c.maxGradNorm > 0 ? Math.min(1, c.maxGradNorm / (gradNorm + 1e-6)) : 1;
    this.adamw(grads, lr, clip);
    this.cursor += groupBatches.length;
    if (this.cursor >= this.batchesPerEpoch) {
      this.cursor = 0;
      this.epochIndex++;
      this.order = [];
    }
    this.globalStep++;
    this.stepsThisRun++;
    const ms = performance.now() - t0;
    let result: StepResult = { step: this.globalStep, totalSteps: this.totalSteps, epoch: this.epochNow(), loss, lr, gradNorm, targetTokens: tokens, tokens: inputTokens, tokensPerSec: (inputTokens / ms) * 1000, ms };
    this.lossSinceLog += loss;
    this.stepsSinceLog++;
    // As the Hugging Face trainer logs it: the scheduler's rate after its step, i.e. the next step's.
    if (this.globalStep % c.loggingSteps === 0 || this.done) this.log({ loss: Math.round((this.lossSinceLog / this.stepsSinceLog) * 1e4) / 1e4, lr: this.learningRateAt(this.globalStep) });
    if (this.val.length && ((c.evalSteps > 0 && this.globalStep % c.evalSteps === 0) || this.done)) {
      const evalLoss = this.evaluate();
      result = { ...result, evalLoss };
      this.log({ eval_loss: Math.round(evalLoss * 1e4) / 1e4 });
    }
    this.history.push(result);
    return result;
  }

  /** torch.optim.AdamW with the gradient scaled by `clip` first. */
  private adamw(grads: Float32Array[], lr: number, clip: number): void {
    const c = this.config;
    this.adamStep++;
    const bc1 = 1 - Math.pow(c.adamBeta1, this.adamStep);
    const bc2 = 1 - Math.pow(c.adamBeta2, this.adamStep);
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    this.adapter.parameters.forEach((p, i) => {
      const g = grads[i]!;
      const m = this.m[i]!;
      const v = this.v[i]!;
      const w = p.values;
      for (let j = 0; j < w.length; j++) {
        const gj = g[j]! * clip;
        w[j] = w[j]! * (1 - lr * c.weightDecay);
        m[j] = c.adamBeta1 * m[j]! + (1 - c.adamBeta1) * gj;
        v[j] = c.adamBeta2 * v[j]! + (1 - c.adamBeta2) * gj * gj;
        w[j] = w[j]! - (stepSize * m[j]!) / (Math.sqrt(v[j]!) / sqrtBc2 + c.adamEpsilon);
      }
    });
    this.adapter.sync();
  }

  private epochNow(): number {
    return this.epochIndex + this.cursor / this.batchesPerEpoch;
  }

  /** Token-mean loss over the validation rows (no dropout, no gradient). */
  evaluate(examples: readonly SftExample[] = this.val): number {
    let sum = 0;
    let tokens = 0;
    for (let i = 0; i < examples.length; i += this.config.batchSize) {
      const chunk = examples.slice(i, i + this.config.batchSize);
      sum += lossAndGrads(this.model, this.adapter, chunk, 1, this.padId);
      tokens += padBatch(chunk, this.padId).rows.length;
    }
    return tokens ? sum / tokens : NaN;
  }

  private log(values: Record<string, number>): void {
    const elapsed = (performance.now() - this.startedAt) / 1000;
    const remaining = this.stepsThisRun ? ((this.totalSteps - this.globalStep) * elapsed) / this.stepsThisRun : 0;
    const row = {
      current_steps: this.globalStep,
      total_steps: this.totalSteps,
      ...values,
      epoch: Math.round(this.epochNow() * 100) / 100,
      percentage: this.totalSteps ? Math.round((this.globalStep / this.totalSteps) * 1e4) / 100 : 100,
      elapsed_time: formatElapsed(elapsed),
      remaining_time: formatElapsed(remaining),
    };
    // LLaMA-Factory's key order: loss / eval_loss, then lr, then epoch.
    const ordered: Record<string, unknown> = { current_steps: row.current_steps, total_steps: row.total_steps };
    for (const key of ["loss", "eval_loss", "lr"]) if (key in values) ordered[key] = values[key];
    Object.assign(ordered, { epoch: row.epoch, percentage: row.percentage, elapsed_time: row.elapsed_time, remaining_time: row.remaining_time });
    if ("loss" in values) {
      this.lossSinceLog = 0;
      this.stepsSinceLog = 0;
    }
    this.logHistory.push(ordered);
    if (this.logPath) appendFileSync(this.logPath, JSON.stringify(ordered) + "\n");
  }

  /**
   * Runs up to `count` optimizer steps, yielding after each; checkpoints every saveSteps when there is
   * an outputDir. Breaking out of the loop leaves the trainer ready to continue.
   */
  async *steps(count = Infinity): AsyncGenerator<StepResult> {
    for (let i = 0; i < count && !this.done; i++) {
      // A host's interrupt (a notebook's) stops the loop here, between two steps: the trainer is consistent.
      throwIfCancelled();
      const result = await this.runStep();
      if (this.outputDir && this.config.saveSteps > 0 && this.globalStep % this.config.saveSteps === 0) await this.saveCheckpoint();
      yield result;
      // Lets timers, signals and notebook interrupts run between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** All remaining steps, then the final adapter in outputDir. */
  async train(onStep?: (s: StepResult) => void): Promise<StepResult[]> {
    for await (const s of this.steps()) onStep?.(s);
    if (this.outputDir) await this.saveAdapter(this.outputDir);
    return this.history;
  }

  snapshot(): TrainerSnapshot {
    const byName = <T>(f: (i: number) => T): Record<string, T> => Object.fromEntries(this.adapter.parameters.map((p, i) => [p.peftName, f(i)]));
    return {
      globalStep: this.globalStep,
      totalSteps: this.totalSteps,
      epoch: this.epochNow(),
      epochIndex: this.epochIndex,
      cursor: this.cursor,
      order: [...this.order],
      rngState: this.rng.state,
      adamStep: this.adamStep,
      lossSinceLog: this.lossSinceLog,
      stepsSinceLog: this.stepsSinceLog,
      params: byName((i) => Float32Array.from(this.adapter.parameters[i]!.values)),
      m: byName((i) => Float32Array.from(this.m[i]!)),
      v: byName((i) => Float32Array.from(this.v[i]!)),
      config: this.config,
      dataFingerprint: fingerprint(this.trainSet),
      logHistory: [...this.logHistory],
      adapterConfig: this.adapter.peftConfig(this.baseModelName),
    };
  }

  async saveCheckpoint(dir = join(this.outputDir ?? ".", `checkpoint-${this.globalStep}`)): Promise<string> {
    await saveCheckpoint(dir, this.snapshot());
    return dir;
  }

  private restore(s: TrainerSnapshot, from: string): void {
    if (s.dataFingerprint !== fingerprint(this.trainSet)) throw new TrainingError(`${from}: the checkpoint was taken on different training data (${s.dataFingerprint}, now ${fingerprint(this.trainSet)}); resume needs the same dataset, template, cutoff_len and split`);
    const saved = s.config as SftConfig;
    for (const key of ["rank", "alpha"] as const) {
      if (saved.lora[key] !== this.config.lora[key]) throw new TrainingError(`${from}: lora ${key} is ${saved.lora[key]} in the checkpoint but ${this.config.lora[key]} now`);
    }
    this.adapter.parameters.forEach((p, i) => {
      const values = s.params[p.peftName];
      if (!values || values.length !== p.values.length) throw new TrainingError(`${from}: adapter tensor ${p.peftName} is missing or has the wrong size`);
      p.values.set(values);
      this.m[i]!.set(s.m[p.peftName]!);
      this.v[i]!.set(s.v[p.peftName]!);
    });
    this.adapter.sync();
    this.globalStep = s.globalStep;
    this.adamStep = s.adamStep;
    this.lossSinceLog = s.lossSinceLog;
    this.stepsSinceLog = s.stepsSinceLog;
    this.epochIndex = s.epochIndex;
    this.cursor = s.cursor;
    this.order = [...s.order];
    this.rng.state = s.rngState;
    this.logHistory.push(...s.logHistory);
    // The log continues from the checkpoint: rows written after it (by the killed run) are dropped.
    if (this.logPath) writeFileAtomicSync(this.logPath, this.logHistory.map((r) => JSON.stringify(r) + "\n").join(""));
  }

  async saveAdapter(dir: string): Promise<void> {
    await this.adapter.save(dir, this.baseModelName);
  }

  /** The base model with the adapter merged in (new arrays for merged matrices; the base is untouched). */
  merged(): LlamaModelData {
    return mergeLora(this.base, this.adapter);
  }

  dispose(): void {
    void this.pool?.close();
    this.model.dispose();
    this.adapter.dispose();
  }
}
