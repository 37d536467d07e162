/**
 * LoRA SFT step on stories260K (r=8 on wq and wv, alpha 16, Adam), batch 8 x 64 tokens with the loss
 * on every position, ours (SftTrainer) against PyTorch 2.x CPU (bench/peers/torch_lora_step.py from
 * bench/.venv) in the same run, at 1 thread and at all cores. Torch runs before and after ours and
 * the two are averaged, since other work on the machine changes the speed of both. Reported: median
 * wall ms/step and CPU ms/step (process CPU time), peak RSS of each process, the load average before
 * and after. Each variant is compared with torch at its own thread count.
 * Variants: native (all cores, and 1 thread) where the addon loads, wasm, wasm with 2 worker threads
 * (data parallel), wasm with the typed-array attention, and once the cpu backend.
 * Usage: node --import tsx bench/lora-step.ts [--steps 8] [--batch 8] [--seq 64] [--no-cpu]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { describeBackend, initBackend, type EngineName } from "../src/model/backend.ts";
import { loadNative } from "../src/model/native.ts";
import { nativeApi } from "../src/model/ops-native.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import type { AttentionMode } from "../src/model/llama-tf.ts";
import type { SftExample } from "../src/train/dataset.ts";
import { SftTrainer } from "../src/train/sft.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { cores, load1, loadReport, runTorch, torchPeer } from "./peers/torch.ts";

const { values } = parseArgs({ options: { steps: { type: "string", default: "8" }, batch: { type: "string", default: "8" }, seq: { type: "string", default: "64" }, "no-cpu": { type: "boolean", default: false } } });
const [steps, B, T] = [values.steps, values.batch, values.seq].map(Number) as [number, number, number];
const modelPath = dataPath("models/stories260K/stories260K.bin");
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function torchRun(threads: number): { wall: number; cpu: number; rssMb: number; loss: number; version: string } | undefined {
  const last = runTorch<{ ms_per_step: number; cpu_ms_per_step: number; max_rss_mb: number; loss: number; torch: string }>("torch_lora_step.py", [modelPath, B, T, threads], threads);
  if (!last) return undefined;
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

async function ours(backend: EngineName, workers: number, n: number, attention?: AttentionMode, threads?: number): Promise<{ wall: number; cpu: number; firstLoss: number }> {
  await initBackend(backend);
  if (backend === "native") nativeApi().setThreads(threads ?? cores());
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

const loadBefore = load1();
const peer = torchPeer();
const nativeOk = loadNative({ quiet: true }).engine !== undefined;
console.log(`${describeBackend(await initBackend())}; PyTorch peer ${peer ? `${peer.version}${peer.fallback ? " (FALLBACK, not 2.x)" : ""}` : "missing"}; load average ${loadBefore} before`);
const allCores = cores();
const torchBefore = new Map([1, allCores].map((t) => [t, torchRun(t)]));
const variants: { name: string; threads: number; run: () => Promise<{ wall: number; cpu: number; firstLoss: number }> }[] = [];
if (nativeOk) {
  variants.push({ name: `native, ${allCores} threads`, threads: allCores, run: () => ours("native", 1, steps, undefined, allCores) });
  if (allCores > 1) variants.push({ name: "native, 1 thread", threads: 1, run: () => ours("native", 1, steps, undefined, 1) });
}
variants.push(
  { name: "wasm", threads: 1, run: () => ours("wasm", 1, steps) },
  { name: "wasm, 2 threads (data parallel)", threads: 2, run: () => ours("wasm", 2, steps) },
  { name: "wasm, typed-array attention", threads: 1, run: () => ours("wasm", 1, Math.max(4, steps / 2), "js") },
);
if (!values["no-cpu"]) variants.push({ name: "cpu backend", threads: 1, run: () => ours("cpu", 1, 3) });
const rows: Record<string, unknown>[] = [];
const threadsOf = new Map<Record<string, unknown>, number>();
for (const v of variants) {
  const r = await v.run();
  const row = { variant: v.name, threads: v.threads, ms_per_step: Math.round(r.wall), cpu_ms_per_step: Math.round(r.cpu), tokens_per_s: Math.round((B * T * 1000) / r.wall), first_loss: Math.round(r.firstLoss * 1e4) / 1e4 };
  rows.push(row);
  threadsOf.set(row, v.threads);
  console.log(JSON.stringify(row));
}
const ourPeakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
const torchAfter = new Map([1, allCores].map((t) => [t, torchRun(t)]));
const torchAt = (threads: number) => {
  const runs = [torchBefore.get(threads), torchAfter.get(threads)].filter((t): t is NonNullable<typeof t> => t !== undefined);
  return runs.length ? { wall: runs.reduce((s, t) => s + t.wall, 0) / runs.length, cpu: runs.reduce((s, t) => s + t.cpu, 0) / runs.length, rssMb: Math.max(...runs.map((t) => t.rssMb)), version: runs[0]!.version, loss: runs[0]!.loss, runs: runs.map((t) => Math.round(t.wall)) } : undefined;
};
for (const row of rows) {
  const torch = torchAt(Math.min(threadsOf.get(row)!, allCores));
  row.ratio_vs_torch = torch ? Math.round((torch.wall / (row.ms_per_step as number)) * 1000) / 1000 : null;
  row.cpu_ratio_vs_torch = torch ? Math.round((torch.cpu / (row.cpu_ms_per_step as number)) * 1000) / 1000 : null;
}
const torch = torchAt(1);
const torchAll = torchAt(allCores);
const load = loadReport(loadBefore);
const best = rows.reduce((a, b) => ((a.ms_per_step as number) <= (b.ms_per_step as number) ? a : b));
const out = {
  bench: "lora-step",
  task: `stories260K LoRA r=8 alpha=16 on wq,wv, Adam, batch ${B}x${T}, loss on all positions`,
  torch: torch ? { version: torch.version, threads: 1, ms_per_step: Math.round(torch.wall), cpu_ms_per_step: Math.round(torch.cpu), tokens_per_s: Math.round((B * T * 1000) / torch.wall), peak_rss_mb: torch.rssMb, runs_ms: torch.runs } : null,
  torch_all_cores: torchAll ? { version: torchAll.version, threads: allCores, ms_per_step: Math.round(torchAll.wall), cpu_ms_per_step: Math.round(torchAll.cpu), tokens_per_s: Math.round((B * T * 1000) / torchAll.wall), peak_rss_mb: torchAll.rssMb, runs_ms: torchAll.runs } : null,
  torch_fallback: peer?.fallback ?? null,
  ours: rows,
  ratio_vs_torch: best.ratio_vs_torch,
  best_variant: best.variant,
  ours_peak_rss_mb: ourPeakRssMb,
  ...load,
  date: new Date().toISOString(),
};
await writeJsonAtomic(join(repoRoot, "bench", "results", "lora-step.json"), out);
console.log(`torch 1 thread ${torch ? `${Math.round(torch.wall)} ms/step (cpu ${Math.round(torch.cpu)} ms), runs ${torch.runs.join(" / ")}` : "unavailable"}; ${allCores} threads ${torchAll ? `${Math.round(torchAll.wall)} ms/step, runs ${torchAll.runs.join(" / ")}` : "unavailable"}`);
console.log(`ratio = torch ms/step / ours at the same thread count (above 1: ours is faster): best ${best.variant} ${best.ratio_vs_torch}; peak RSS ours ${ourPeakRssMb} MB (all variants in one process), torch ${torch?.rssMb ?? "?"} MB`);
