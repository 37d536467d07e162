/**
 * The shapes a user brings: a SmolLM2-135M-shaped Llama (d576, 30 layers, 9 heads, 3 KV heads, ffn
 * 1536, vocab 49152, tied embeddings, rotate-half RoPE; random weights) in two jobs, ours on the
 * engine that runs (KTU_ENGINE; native where the addon loads) against PyTorch 2.x CPU
 * (bench/peers/torch_llama_shape.py from bench/.venv) in the same run, at 1 thread and at all cores,
 * alternately, each measurement in its own process (peak RSS is that job's):
 *   lora:  one LoRA step, r16 (alpha 32) on all seven projections, AdamW, batch 4 x 256, loss on every position;
 *   score: prefill of 512-token prompts (batch 2), the mean token NLL, no gradient.
 * Prints the load average before and after; bench/run.ts takes the figures into the README only when
 * it stayed under 0.3 per core.
 * Usage: node --import tsx bench/lora-135m.ts [--steps 3] [--jobs lora,score] [--threads 1,2]
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { describeBackend, initBackend, tf } from "../src/model/backend.ts";
import { TfLlama } from "../src/model/llama-tf.ts";
import type { LlamaConfig, LlamaModelData } from "../src/model/types.ts";
import type { SftExample } from "../src/train/dataset.ts";
import { SftTrainer } from "../src/train/sft.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { repoRoot } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { load1, loadReport, runOursChild, runTorch, threadCounts, torchPeer } from "./peers/torch.ts";

const { values } = parseArgs({ options: { steps: { type: "string", default: "3" }, jobs: { type: "string", default: "lora,score" }, threads: { type: "string" }, child: { type: "string" } } });
const steps = Number(values.steps);
const config: LlamaConfig = { arch: "llama", dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, vocabSize: 49152, seqLen: 2048, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "rotate-half", tiedEmbeddings: true };
const shapes = { lora: { batch: 4, seq: 256 }, score: { batch: 2, seq: 512 } } as const;
type Job = keyof typeof shapes;
const rank = 16;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Random weights, N(0, 0.02)-like (uniform with the same spread; fast to make), norms at 1. */
function randomModel(): LlamaModelData {
  const rng = new Rng(0);
  const c = config;
  const spread = 0.02 * Math.sqrt(3);
  const mat = (n: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (2 * rng.next() - 1) * spread;
    return a;
  };
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const kv = (c.nKvHeads * c.dim) / c.nHeads;
  const tokenEmbedding = mat(c.vocabSize * c.dim);
  const layers = Array.from({ length: c.nLayers }, () => ({ attnNorm: ones(c.dim), wq: mat(c.dim * c.dim), wk: mat(kv * c.dim), wv: mat(kv * c.dim), wo: mat(c.dim * c.dim), ffnNorm: ones(c.dim), w1: mat(c.hiddenDim * c.dim), w2: mat(c.dim * c.hiddenDim), w3: mat(c.hiddenDim * c.dim) }));
  return { config: c, weights: { tokenEmbedding, layers, finalNorm: ones(c.dim), lmHead: tokenEmbedding } };
}

interface OursRun {
  engine: string;
  ms: number;
  cpuMs: number;
  rssMb: number;
  loss: number;
}

if (values.child) {
  const job = values.child as Job;
  const { batch, seq } = shapes[job];
  const info = await initBackend();
  const model = randomModel();
  const rng = new Rng(1);
  const ms: number[] = [];
  const cpu: number[] = [];
  let loss = 0;
  if (job === "lora") {
    const train: SftExample[] = Array.from({ length: batch }, (_, row) => {
      const inputIds = Int32Array.from({ length: seq + 1 }, () => rng.int(3, config.vocabSize - 1));
      const labels = Int32Array.from(inputIds);
      labels[0] = -100;
      return { inputIds, labels, row, fullLength: seq + 1 };
    });
    const trainer = new SftTrainer({ model, train, config: { learningRate: 1e-4, maxSteps: steps, batchSize: batch, maxGradNorm: 1, lrSchedulerType: "constant", lora: { rank, alpha: 2 * rank, dropout: 0, targets: ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] } } });
    for (let s = 0; s < steps; s++) {
      const c0 = process.cpuUsage();
      const r = await trainer.runStep();
      const c = process.cpuUsage(c0);
      ms.push(r.ms);
      cpu.push((c.user + c.system) / 1000);
      loss = r.loss;
    }
    trainer.dispose();
  } else {
    const m = new TfLlama(model);
    const ids = Int32Array.from({ length: batch * seq }, () => rng.int(3, config.vocabSize - 1));
    const rows = Int32Array.from({ length: batch * seq }, (_, i) => i);
    const targets = Int32Array.from(rows, (i) => ids[(i + 1) % ids.length]!);
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      loss = tf.tidy(() => m.loss(ids, batch, seq, rows, targets, 1 / rows.length).dataSync()[0]!);
      const c = process.cpuUsage(c0);
      ms.push(performance.now() - t0);
      cpu.push((c.user + c.system) / 1000);
    }
    m.dispose();
  }
  const timed = ms.length > 1 ? ms.slice(1) : ms;
  const out: OursRun = { engine: describeBackend(info), ms: median(timed), cpuMs: median(cpu.length > 1 ? cpu.slice(1) : cpu), rssMb: Math.round(process.resourceUsage().maxRSS / 1024), loss };
  console.log(JSON.stringify(out));
  process.exit(0);
}

const ours = (job: Job, threads: number): OursRun | undefined => runOursChild<OursRun>(fileURLToPath(import.meta.url), ["--child", job, "--steps", steps], threads, job);

const loadBefore = load1();
const peer = torchPeer();
const engineLine = describeBackend(await initBackend());
console.log(`${engineLine}; PyTorch peer ${peer ? `${peer.version}${peer.fallback ? " (FALLBACK, not 2.x)" : ""}` : "missing"}; load average ${loadBefore} before`);
const threadList = values.threads?.split(",").map(Number) ?? threadCounts();
type TorchRun = { ms_per_step: number; cpu_ms_per_step: number; max_rss_mb: number; loss: number; torch: string };
const results: Record<string, unknown>[] = [];
for (const job of values.jobs!.split(",") as Job[]) {
  const { batch, seq } = shapes[job];
  for (const threads of threadList) {
    const c = config;
    const torch = runTorch<TorchRun>("torch_llama_shape.py", [job, c.dim, c.nLayers, c.nHeads, c.nKvHeads, c.hiddenDim, c.vocabSize, batch, seq, threads, steps, rank], threads);
    const o = ours(job, threads);
    const row = {
      job: job === "lora" ? `LoRA r${rank} all projections, AdamW, ${batch}x${seq}` : `scoring (prefill) of ${seq}-token prompts, batch ${batch}`,
      variant: job,
      shape: "SmolLM2-135M-shaped (d576 L30 H9 KV3 ffn1536 V49152, tied, random weights)",
      threads,
      engine: o?.engine ?? null,
      ms_per_step: o ? Math.round(o.ms) : null,
      cpu_ms_per_step: o ? Math.round(o.cpuMs) : null,
      tokens_per_s: o ? Math.round((batch * seq * 1000) / o.ms) : null,
      ktu_peak_rss_mb: o?.rssMb ?? null,
      torch_ms_per_step: torch ? Math.round(torch.ms_per_step) : null,
      torch_tokens_per_s: torch ? Math.round((batch * seq * 1000) / torch.ms_per_step) : null,
      torch_peak_rss_mb: torch ? Math.round(torch.max_rss_mb) : null,
      ratio_vs_torch: o && torch ? Math.round((torch.ms_per_step / o.ms) * 1000) / 1000 : null,
      rss_ratio_vs_torch: o && torch ? Math.round((o.rssMb / torch.max_rss_mb) * 100) / 100 : null,
      load_1m: load1(),
    };
    console.log(JSON.stringify(row));
    results.push(row);
  }
}
const load = loadReport(loadBefore);
await writeJsonAtomic(join(repoRoot, "bench", "results", "lora-135m.json"), { bench: "lora-135m", engine: engineLine, torch: peer ? { version: peer.version, python: peer.python } : null, torch_fallback: peer?.fallback ?? null, ...load, date: new Date().toISOString(), results });
console.log("ratio = torch ms/step / ours at the same thread count (above 1: ours is faster); rss_ratio = our peak RSS / torch's");
