/**
 * Full-parameter training tokens/s of the reader-base shapes: our FullTrainer on the engine that runs
 * (KTU_ENGINE; native where the addon loads) against PyTorch 2.x CPU (bench/peers/torch_pretrain_step.py
 * from bench/.venv, scripts/install-bench-deps.sh) on the same shape, batch and length, at 1 thread and
 * at all cores, measured alternately in one run (torch, ours, torch, ours per thread count), each
 * measurement in its own process so peak RSS is that step's; median step time after 2 warm-up steps.
 * Prints the load average before and after; bench/run.ts takes the figures into the README only
 * when the load stayed under 0.3 per core.
 * Usage: node --import tsx bench/pretrain-throughput.ts [--shapes 128x4,256x4] [--vocab 4096]
 *        [--batch 8] [--seq 128] [--steps 6] [--threads 1,2]
 * Output: one JSON line per shape (ktu_tokens_per_s: ours at all cores), then bench/results/pretrain-throughput.json.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { describeBackend, initBackend } from "../src/model/backend.ts";
import type { LlamaConfig } from "../src/model/types.ts";
import { FullTrainer, initLlama, makeLmBatch } from "../src/train/pretrain.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { repoRoot } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { load1, loadReport, runOursChild, runTorch, threadCounts, torchPeer } from "./peers/torch.ts";

const { values } = parseArgs({
  options: {
    shapes: { type: "string", default: "128x4,256x4" },
    vocab: { type: "string", default: "4096" },
    batch: { type: "string", default: "8" },
    seq: { type: "string", default: "128" },
    steps: { type: "string", default: "6" },
    threads: { type: "string" },
    // Kept for old command lines: the torch thread counts are now --threads.
    "torch-threads": { type: "string" },
    child: { type: "string" },
  },
});
const [V, B, T, steps] = [values.vocab, values.batch, values.seq, values.steps].map(Number) as [number, number, number, number];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const shapeConfig = (shape: string): LlamaConfig => {
  const [dim, layers] = shape.split("x").map(Number) as [number, number];
  const heads = dim / 32;
  const hidden = Math.round((dim * 8) / 3 / 32) * 32;
  return { arch: "llama", dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKvHeads: heads, vocabSize: V, seqLen: T + 1, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
};

interface OursRun {
  engine: string;
  line: string;
  ms: number;
  rssMb: number;
  params: number;
  loss: number;
}

if (values.child) {
  // One measurement in this process: the engine's thread count comes from KTU_NATIVE_THREADS.
  const info = await initBackend();
  const config = shapeConfig(values.child);
  const trainer = new FullTrainer(initLlama(config, 0), { warmupSteps: 1, learningRate: 1e-3 });
  const rng = new Rng(0);
  const batch = makeLmBatch(Array.from({ length: B }, () => ({ ids: Array.from({ length: T + 1 }, () => rng.int(3, V - 1)), lossFrom: 0 })));
  const ms: number[] = [];
  let loss = 0;
  for (let s = 0; s < steps; s++) {
    const r = trainer.trainStep(batch);
    ms.push(r.ms);
    loss = r.loss;
  }
  const out: OursRun = { engine: info.name, line: describeBackend(info), ms: median(ms.slice(2)), rssMb: Math.round(process.resourceUsage().maxRSS / 1024), params: trainer.parameterCount, loss };
  console.log(JSON.stringify(out));
  process.exit(0);
}

const ours = (shape: string, threads: number): OursRun | undefined =>
  runOursChild<OursRun>(fileURLToPath(import.meta.url), ["--child", shape, "--vocab", V, "--batch", B, "--seq", T, "--steps", steps], threads, shape);

const loadBefore = load1();
const peer = torchPeer();
const threadList = (values.threads ?? values["torch-threads"])?.split(",").map(Number) ?? threadCounts();
const engineLine = describeBackend(await initBackend());
console.log(`${engineLine}; PyTorch peer ${peer ? `${peer.version}${peer.fallback ? " (FALLBACK, not 2.x)" : ""}` : "missing"}; load average ${loadBefore} before`);
type TorchRun = { ms_per_step: number; tokens_per_s: number; torch: string; max_rss_mb?: number };
const results: Record<string, unknown>[] = [];
for (const shape of values.shapes!.split(",")) {
  const c = shapeConfig(shape);
  const byThreads: Record<string, Record<string, number | string | null>> = {};
  let params = 0;
  let engine = "";
  for (const threads of threadList) {
    const torch = runTorch<TorchRun>("torch_pretrain_step.py", [c.dim, c.nLayers, c.nHeads, c.hiddenDim, V, B, T, threads, steps], threads);
    const o = ours(shape, threads);
    if (o) {
      params = o.params;
      engine = o.engine;
    }
    byThreads[String(threads)] = {
      ktu_ms_per_step: o ? Math.round(o.ms) : null,
      ktu_tokens_per_s: o ? Math.round((B * T * 1000) / o.ms) : null,
      ktu_peak_rss_mb: o?.rssMb ?? null,
      torch_ms_per_step: torch ? Math.round(torch.ms_per_step) : null,
      torch_tokens_per_s: torch ? Math.round(torch.tokens_per_s) : null,
      torch_peak_rss_mb: torch?.max_rss_mb !== undefined ? Math.round(torch.max_rss_mb) : null,
      ratio_vs_torch: o && torch ? Math.round((torch.ms_per_step / o.ms) * 1000) / 1000 : null,
      load_1m: load1(),
    };
  }
  const all = byThreads[String(threadList.at(-1))]!;
  const row = {
    shape: `d${c.dim} L${c.nLayers} H${c.nHeads} ffn${c.hiddenDim} V${V}`,
    params,
    batch: `${B}x${T}`,
    engine,
    threads: threadList.at(-1),
    ktu_ms_per_step: all.ktu_ms_per_step,
    ktu_tokens_per_s: all.ktu_tokens_per_s,
    torch_ms_per_step: all.torch_ms_per_step,
    torch_tokens_per_s: all.torch_tokens_per_s,
    ratio_vs_torch: all.ratio_vs_torch,
    by_threads: byThreads,
  };
  console.log(JSON.stringify(row));
  results.push(row);
}
const load = loadReport(loadBefore);
const out = { bench: "pretrain-throughput", engine: engineLine, torch: peer ? { version: peer.version, python: peer.python } : null, torch_fallback: peer?.fallback ?? null, ...load, date: new Date().toISOString(), results };
await writeJsonAtomic(join(repoRoot, "bench", "results", "pretrain-throughput.json"), out);
console.log(`ratio = torch ms/step / ours (above 1: ours is faster), same thread count`);
