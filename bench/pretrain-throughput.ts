/**
 * Full-parameter training tokens/s of the reader-base shapes: our TF.js FullTrainer (wasm, one thread)
 * against PyTorch CPU (Debian python3-torch, bench/peers/torch_pretrain_step.py) on the same shape,
 * batch and length, measured alternately in the same run; median step time after 2 warm-up steps.
 * Usage: node --import tsx bench/pretrain-throughput.ts [--shapes 128x4,192x6] [--vocab 4096]
 *        [--batch 8] [--seq 128] [--steps 6] [--torch-threads 1]
 */
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initBackend } from "../src/model/backend.ts";
import type { LlamaConfig } from "../src/model/types.ts";
import { FullTrainer, initLlama, makeLmBatch } from "../src/train/pretrain.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { repoRoot } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";

const { values } = parseArgs({
  options: {
    shapes: { type: "string", default: "128x4,192x6" },
    vocab: { type: "string", default: "4096" },
    batch: { type: "string", default: "8" },
    seq: { type: "string", default: "128" },
    steps: { type: "string", default: "5" },
    "torch-threads": { type: "string", default: "1" },
  },
});
const [V, B, T, steps, threads] = [values.vocab, values.batch, values.seq, values.steps, values["torch-threads"]].map(Number) as [number, number, number, number, number];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const backend = await initBackend();
const results: Record<string, unknown>[] = [];
for (const shape of values.shapes!.split(",")) {
  const [dim, layers] = shape.split("x").map(Number) as [number, number];
  const heads = dim / 32;
  const hidden = Math.round((dim * 8) / 3 / 32) * 32;
  const config: LlamaConfig = { arch: "llama", dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKvHeads: heads, vocabSize: V, seqLen: T + 1, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
  const trainer = new FullTrainer(initLlama(config, 0), { warmupSteps: 1, learningRate: 1e-3 });
  const rng = new Rng(0);
  const batch = makeLmBatch(Array.from({ length: B }, () => ({ ids: Array.from({ length: T + 1 }, () => rng.int(3, V - 1)), lossFrom: 0 })));
  const ms: number[] = [];
  for (let s = 0; s < steps; s++) ms.push(trainer.trainStep(batch).ms);
  const ours = median(ms.slice(2));
  trainer.dispose();
  const py = spawnSync("/usr/bin/python3", [join(repoRoot, "bench", "peers", "torch_pretrain_step.py"), ...[dim, layers, heads, hidden, V, B, T, threads, steps].map(String)], { encoding: "utf8" });
  let torch: { ms_per_step: number; tokens_per_s: number; torch: string } | undefined;
  if (py.status === 0) torch = JSON.parse(py.stdout.trim().split("\n").pop()!) as typeof torch;
  else console.error(`torch peer failed: ${py.stderr || py.error?.message}`);
  const row = {
    shape: `d${dim} L${layers} H${heads} ffn${hidden} V${V}`,
    params: trainer.parameterCount,
    batch: `${B}x${T}`,
    ktu_ms_per_step: Math.round(ours),
    ktu_tokens_per_s: Math.round((B * T * 1000) / ours),
    torch_ms_per_step: torch ? Math.round(torch.ms_per_step) : null,
    torch_tokens_per_s: torch ? Math.round(torch.tokens_per_s) : null,
    ratio_vs_torch: torch ? Math.round((torch.ms_per_step / ours) * 1000) / 1000 : null,
  };
  console.log(JSON.stringify(row));
  results.push(row);
}
const out = { bench: "pretrain-throughput", backend: backend.name, torch_threads: threads, cpus: cpus().length, loadavg_1m: loadavg()[0], date: new Date().toISOString(), results };
await writeJsonAtomic(join(repoRoot, "bench", "results", "pretrain-throughput.json"), out);
console.log(`ratio = torch ms/step / ktu ms/step (above 1: ours is faster); load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cpus`);
