/**
 * LoRA SFT step on stories260K (r=8 on wq and wv, alpha 16, Adam), batch 8 x 64 tokens with the loss
 * on every position, ours (SftTrainer on TF.js) against PyTorch CPU (bench/peers/torch_lora_step.py,
 * Debian python3-torch, one thread) in the same run. Torch runs before and after ours and the two are
 * averaged, since other work on the machine changes the speed of both. Reported: median wall ms/step
 * and CPU ms/step (process CPU time, less sensitive to a busy machine), peak RSS of each process.
 * Variants: wasm, wasm with 2 worker threads (data parallel), and once the cpu backend.
 * Usage: node --import tsx bench/lora-step.ts [--steps 8] [--batch 8] [--seq 64] [--no-cpu]
 */
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initBackend } from "../src/model/backend.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import type { AttentionMode } from "../src/model/llama-tf.ts";
import type { SftExample } from "../src/train/dataset.ts";
import { SftTrainer } from "../src/train/sft.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";

const { values } = parseArgs({ options: { steps: { type: "string", default: "8" }, batch: { type: "string", default: "8" }, seq: { type: "string", default: "64" }, "no-cpu": { type: "boolean", default: false } } });
const [steps, B, T] = [values.steps, values.batch, values.seq].map(Number) as [number, number, number];
const modelPath = dataPath("models/stories260K/stories260K.bin");
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function torchRun(): { wall: number; cpu: number; rssMb: number; loss: number; version: string } | undefined {
  const py = spawnSync("/usr/bin/python3", [join(repoRoot, "bench", "peers", "torch_lora_step.py"), modelPath, String(B), String(T), "1"], { encoding: "utf8" });
  if (py.status !== 0) {
    console.error(`torch peer failed (apt-get install -y python3-torch): ${(py.stderr || py.error?.message || "").trim().split("\n").pop()}`);
    return undefined;
  }
  const last = JSON.parse(py.stdout.trim().split("\n").pop()!) as { ms_per_step: number; cpu_ms_per_step: number; max_rss_mb: number; loss: number; torch: string };
  return { wall: last.ms_per_step, cpu: last.cpu_ms_per_step, rssMb: last.max_rss_mb, loss: last.loss, version: last.torch };
}

/** The same synthetic task as the torch peer: random ids in [3, V), loss on all T positions. */
function examples(): SftExample[] {
  const rng = new Rng(0);
  return Array.from({ length: B }, (_, row) => {
    const inputIds = Int32Array.from({ length: T + 1 }, () => rng.int(3, 511));
    const labels = Int32Array.from(inputIds);
    labels[0] = -100;
    return { inputIds, labels, row, fullLength: T + 1 };
  });
}

async function ours(backend: "wasm" | "cpu", workers: number, n: number, attention?: AttentionMode): Promise<{ wall: number; cpu: number; firstLoss: number }> {
  await initBackend(backend);
  const model = loadLlama2c(modelPath);
  const trainer = new SftTrainer({
    model,
    train: examples(),
    attention,
    config: { learningRate: 1e-3, maxSteps: n, batchSize: B, maxGradNorm: 0, lrSchedulerType: "constant", workers, lora: { rank: 8, alpha: 16, dropout: 0, targets: ["wq", "wv"] } },
  });
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const s = await trainer.runStep();
    const c = process.cpuUsage(c0);
    wall.push(s.ms);
    cpu.push((c.user + c.system) / 1000);
  }
  const firstLoss = trainer.history[0]!.loss;
  trainer.dispose();
  // Two warm-up steps (kernel set-up, worker start) are left out.
  return { wall: median(wall.slice(2)), cpu: median(cpu.slice(2)), firstLoss };
}

const torchBefore = torchRun();
const variants: { name: string; run: () => Promise<{ wall: number; cpu: number; firstLoss: number }> }[] = [
  { name: "wasm", run: () => ours("wasm", 1, steps) },
  { name: "wasm, 2 threads (data parallel)", run: () => ours("wasm", 2, steps) },
  { name: "wasm, typed-array attention", run: () => ours("wasm", 1, Math.max(4, steps / 2), "js") },
];
if (!values["no-cpu"]) variants.push({ name: "cpu backend", run: () => ours("cpu", 1, 3) });
const rows: Record<string, unknown>[] = [];
for (const v of variants) {
  const r = await v.run();
  rows.push({ variant: v.name, ms_per_step: Math.round(r.wall), cpu_ms_per_step: Math.round(r.cpu), tokens_per_s: Math.round((B * T * 1000) / r.wall), first_loss: Math.round(r.firstLoss * 1e4) / 1e4 });
  console.log(JSON.stringify(rows.at(-1)));
}
const ourPeakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
const torchAfter = torchRun();
const torchRuns = [torchBefore, torchAfter].filter((t): t is NonNullable<typeof t> => t !== undefined);
const torch = torchRuns.length ? { wall: torchRuns.reduce((s, t) => s + t.wall, 0) / torchRuns.length, cpu: torchRuns.reduce((s, t) => s + t.cpu, 0) / torchRuns.length, rssMb: Math.max(...torchRuns.map((t) => t.rssMb)), version: torchRuns[0]!.version, loss: torchRuns[0]!.loss } : undefined;
for (const row of rows) {
  row.ratio_vs_torch = torch ? Math.round((torch.wall / (row.ms_per_step as number)) * 1000) / 1000 : null;
  row.cpu_ratio_vs_torch = torch ? Math.round((torch.cpu / (row.cpu_ms_per_step as number)) * 1000) / 1000 : null;
}
const best = rows.reduce((a, b) => ((a.ms_per_step as number) <= (b.ms_per_step as number) ? a : b));
const out = {
  bench: "lora-step",
  task: `stories260K LoRA r=8 alpha=16 on wq,wv, Adam, batch ${B}x${T}, loss on all positions`,
  torch: torch ? { version: torch.version, threads: 1, ms_per_step: Math.round(torch.wall), cpu_ms_per_step: Math.round(torch.cpu), tokens_per_s: Math.round((B * T * 1000) / torch.wall), peak_rss_mb: torch.rssMb, runs_ms: torchRuns.map((t) => Math.round(t.wall)) } : null,
  ours: rows,
  ratio_vs_torch: best.ratio_vs_torch,
  best_variant: best.variant,
  ours_peak_rss_mb: ourPeakRssMb,
  cpus: cpus().length,
  loadavg_1m: Math.round(loadavg()[0]! * 100) / 100,
  date: new Date().toISOString(),
};
await writeJsonAtomic(join(repoRoot, "bench", "results", "lora-step.json"), out);
console.log(`torch ${torch ? `${Math.round(torch.wall)} ms/step (cpu ${Math.round(torch.cpu)} ms), runs ${torchRuns.map((t) => Math.round(t.wall)).join(" / ")}` : "unavailable"}`);
console.log(`ratio = torch ms/step / ours (above 1: ours is faster): best ${best.variant} ${best.ratio_vs_torch}; peak RSS ours ${ourPeakRssMb} MB, torch ${torch?.rssMb ?? "?"} MB; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cpus`);
