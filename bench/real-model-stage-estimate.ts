/**
 * How long each US-Tuning stage would take on a CPU for a real hub model, estimated on a random model
 * of the same shape (no download): LoRA r=8 on q_proj,v_proj, batch 1 x --seq tokens, with the
 * in-process TF.js trainer (SftTrainer, wasm backend; the engine main has today). Times per step are
 * measured (median after one warm-up step) and multiplied out to the paper's stage sizes
 * (max_samples 1000; stage 1 one epoch, stage 2 five epochs), assuming --seq tokens per example.
 * Usage: node --import tsx bench/real-model-stage-estimate.ts [--shape smollm2-135m|qwen2.5-0.5b] [--seq 256] [--steps 3] [--backend wasm|cpu]
 */
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initBackend } from "../src/model/backend.ts";
import type { LlamaConfig, LlamaModelData } from "../src/model/types.ts";
import type { SftExample } from "../src/train/dataset.ts";
import { SftTrainer } from "../src/train/sft.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { repoRoot } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";

/** config.json values of the hub models (HuggingFaceTB/SmolLM2-135M-Instruct, Qwen/Qwen2.5-0.5B-Instruct). */
const SHAPES: Record<string, { config: LlamaConfig; qkvBias: boolean }> = {
  "smollm2-135m": { config: { arch: "llama", dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, vocabSize: 49152, seqLen: 8192, normEps: 1e-5, ropeTheta: 100000, ropeStyle: "rotate-half", tiedEmbeddings: true }, qkvBias: false },
  "qwen2.5-0.5b": { config: { arch: "llama", dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, vocabSize: 151936, seqLen: 32768, normEps: 1e-6, ropeTheta: 1000000, ropeStyle: "rotate-half", tiedEmbeddings: true }, qkvBias: true },
};

const { values } = parseArgs({ options: { shape: { type: "string", default: "smollm2-135m" }, seq: { type: "string", default: "256" }, steps: { type: "string", default: "3" }, backend: { type: "string", default: "wasm" } } });
const shape = SHAPES[values.shape!];
if (!shape) throw new Error(`--shape: one of ${Object.keys(SHAPES).join(", ")}`);
const T = Number(values.seq);
const steps = Number(values.steps);

function randomModel(c: LlamaConfig, qkvBias: boolean): LlamaModelData {
  const rng = new Rng(1);
  const rand = (n: number, scale = 0.02) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 2 * scale);
  const ones = (n: number) => new Float32Array(n).fill(1);
  const hs = c.dim / c.nHeads;
  const kv = c.nKvHeads * hs;
  const embedding = rand(c.vocabSize * c.dim);
  return {
    config: c,
    weights: {
      tokenEmbedding: embedding,
      finalNorm: ones(c.dim),
      lmHead: embedding,
      layers: Array.from({ length: c.nLayers }, () => ({
        attnNorm: ones(c.dim), ffnNorm: ones(c.dim),
        wq: rand(c.dim * c.dim), wk: rand(kv * c.dim), wv: rand(kv * c.dim), wo: rand(c.dim * c.dim),
        w1: rand(c.hiddenDim * c.dim), w2: rand(c.dim * c.hiddenDim), w3: rand(c.hiddenDim * c.dim),
        ...(qkvBias ? { bq: rand(c.dim), bk: rand(kv), bv: rand(kv) } : {}),
      })),
    },
  };
}

// wasm (XNNPACK) is the fast one, but its 4 GB address space may not hold a 135M-parameter model's packed
// weights and 49k-entry logits; --backend cpu (plain JS) always fits.
const backend = await initBackend(values.backend as "wasm" | "cpu");
const model = randomModel(shape.config, shape.qkvBias);
const rng = new Rng(0);
const train: SftExample[] = Array.from({ length: steps + 1 }, (_, row) => {
  const inputIds = Int32Array.from({ length: T + 1 }, () => rng.int(3, shape.config.vocabSize - 1));
  const labels = Int32Array.from(inputIds);
  labels[0] = -100;
  return { inputIds, labels, row, fullLength: T + 1 };
});
const trainer = new SftTrainer({ model, train, config: { learningRate: 1e-4, maxSteps: steps + 1, batchSize: 1, maxGradNorm: 1, lrSchedulerType: "constant", lora: { rank: 8, alpha: 16, dropout: 0, targets: ["wq", "wv"] } } });
const ms: number[] = [];
for (let i = 0; i <= steps; i++) ms.push((await trainer.runStep()).ms);
trainer.dispose();
const perStep = [...ms.slice(1)].sort((a, b) => a - b)[Math.floor((ms.length - 1) / 2)]!;
const hours = (examples: number) => (examples * perStep) / 3.6e6;
const result = {
  shape: values.shape,
  backend: backend.name,
  tokensPerExample: T,
  msPerExample: Math.round(perStep),
  stage1Hours: +hours(1000).toFixed(2),
  stage2Hours: +hours(5000).toFixed(2),
  cpus: cpus().length,
  loadavg: loadavg()[0],
  measuredAt: new Date().toISOString(),
};
console.log(JSON.stringify(result));
await writeJsonAtomic(join(repoRoot, "bench", "results", `stage-estimate-${values.shape}.json`), result);
