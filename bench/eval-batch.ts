/**
 * `ktu eval run` before and after batched generation, alternately in one run: 1,000 benchmark rows
 * (2,000 answers) built from the shipped SQuAD dev articles (the question on its paragraph; the unknown
 * question is another article's), asked of a random model of the reader's shape (1.33M: d128, 4 layers,
 * 4 heads, hidden 352, vocabulary 4,096, 320 positions) beside the reader's tokenizer.bin and
 * prompt.json (its QA template, 600-character passages, at most 24 answer tokens, stop at a line break
 * or EOS). `--batch 1` is the path before this change (one answer at a time on the WebAssembly decoder);
 * each batch size runs in a fresh output folder (no answer cache), and the predictions of every run
 * are checked to equal the first run's. Under load, compare user+sys CPU seconds (wall time measures
 * the scheduler); a `--limit 1` run's CPU time is the start-up cost (loading the CLI and the model).
 * Usage: node --import tsx bench/eval-batch.ts [--rows N] [--batches 1,8,16,32,64] [--rounds R]
 * Prints one JSON line per run and a summary line; writes bench/results/eval-batch.json.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { readSquad } from "../src/data/squad.ts";
import { saveLlama2c } from "../src/model/llama2c.ts";
import type { LlamaConfig } from "../src/model/types.ts";
import { initLlama } from "../src/train/pretrain.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";

const { values } = parseArgs({ options: { rows: { type: "string", default: "1000" }, batches: { type: "string", default: "1,32" }, rounds: { type: "string", default: "1" } } });
const rows = Number(values.rows);
const batches = values.batches.split(",").map(Number);
const rounds = Number(values.rounds);

const dir = mkdtempSync(join(tmpdir(), "ktu-eval-batch-"));
const READER: LlamaConfig = { arch: "llama", dim: 128, hiddenDim: 352, nLayers: 4, nHeads: 4, nKvHeads: 4, vocabSize: 4096, seqLen: 320, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
const modelDir = join(dir, "reader");
mkdirSync(modelDir);
saveLlama2c(join(modelDir, "reader.bin"), initLlama(READER, 1));
for (const f of ["tokenizer.bin", "prompt.json"]) copyFileSync(dataPath("models", "reader", f), join(modelDir, f));

// Benchmark rows: each SQuAD question on its paragraph, the unknown question from the next article.
const articles = readSquad();
const qs = articles.flatMap((a, ai) => a.paragraphs.flatMap((p) => p.qas.map((q) => ({ ai, context: p.context, question: q.question, answers: q.answers.map((x) => x.text) }))));
const bench: object[] = [];
for (let i = 0; i < qs.length && bench.length < rows; i++) {
  const q = qs[i]!;
  const other = qs.find((o, j) => j > (i * 7919) % qs.length && o.ai !== q.ai) ?? qs.find((o) => o.ai !== q.ai)!;
  bench.push({ id: i, context: q.context, pos_query: q.question, pos_answer: q.answers, neg_query: other.question });
}
if (bench.length < rows) throw new Error(`only ${bench.length} rows could be built`);
const benchmark = join(dir, "benchmark.jsonl");
writeFileSync(benchmark, bench.map((r) => JSON.stringify(r)).join("\n") + "\n");

const uptime = () => loadavg().map((x) => x.toFixed(2)).join(" ");
interface Run {
  batch: number;
  round: number;
  seconds: number;
  user_s: number;
  sys_s: number;
  load_before: string;
  load_after: string;
  same_as_first_run?: boolean;
}
const results: Run[] = [];
const predictions = new Map<number, string>();
// Start-up cost: the same command answering one row.
const startup = spawnSync("/usr/bin/time", ["-f", "TIME %e %U %S", process.execPath, join(repoRoot, "bin", "ktu.js"), "eval", "run", "--benchmark", benchmark, "--model", join(modelDir, "reader.bin"), "--out", join(dir, "startup"), "--limit", "1"], { encoding: "utf8" });
const st = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(startup.stderr);
const startupCpu = st ? Number(st[2]) + Number(st[3]) : NaN;
process.stdout.write(JSON.stringify({ startup_cpu_s: startupCpu }) + "\n");
for (let round = 0; round < rounds; round++) {
  for (const batch of batches) {
    const out = join(dir, `out-${batch}-${round}`);
    const load_before = uptime();
    const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %U %S", process.execPath, join(repoRoot, "bin", "ktu.js"), "eval", "run", "--benchmark", benchmark, "--model", join(modelDir, "reader.bin"), "--out", out, "--batch", String(batch)], { encoding: "utf8", maxBuffer: 1 << 26 });
    const t = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
    if (r.status !== 0 || !t) throw new Error(`eval run --batch ${batch} failed (${r.status}): ${r.stderr.slice(-2000)}`);
    const pred = readFileSync(join(out, "predictions.jsonl"), "utf8");
    const run: Run = { batch, round, seconds: Number(t[1]), user_s: Number(t[2]), sys_s: Number(t[3]), load_before, load_after: uptime() };
    // Every run's predictions against the first run's (equal answers at every batch size).
    if (!predictions.has(0)) predictions.set(0, pred);
    else run.same_as_first_run = pred === predictions.get(0);
    results.push(run);
    process.stdout.write(JSON.stringify(run) + "\n");
  }
}
const best = (b: number) => Math.min(...results.filter((r) => r.batch === b).map((r) => r.seconds));
const bestCpu = (b: number) => Math.min(...results.filter((r) => r.batch === b).map((r) => r.user_s + r.sys_s));
const summary = {
  rows,
  answers: 2 * rows,
  shape: "reader 1.33M (d128, L4, H4, hidden 352, vocab 4096, seqLen 320), random weights, prompt.json: 24 tokens max, stop at newline/EOS",
  seconds: Object.fromEntries(batches.map((b) => [b, best(b)])),
  cpu_seconds: Object.fromEntries(batches.map((b) => [b, +bestCpu(b).toFixed(2)])),
  startup_cpu_s: startupCpu,
  speedup_vs_batch1: batches.includes(1) ? Object.fromEntries(batches.filter((b) => b !== 1).map((b) => [b, +(best(1) / best(b)).toFixed(2)])) : undefined,
  cpu_speedup_vs_batch1: batches.includes(1) ? Object.fromEntries(batches.filter((b) => b !== 1).map((b) => [b, +(bestCpu(1) / bestCpu(b)).toFixed(2)])) : undefined,
  cpu_speedup_past_startup: batches.includes(1) ? Object.fromEntries(batches.filter((b) => b !== 1).map((b) => [b, +((bestCpu(1) - startupCpu) / (bestCpu(b) - startupCpu)).toFixed(2)])) : undefined,
  runs: results,
};
process.stdout.write(JSON.stringify({ summary: { seconds: summary.seconds, cpu_seconds: summary.cpu_seconds, speedup_vs_batch1: summary.speedup_vs_batch1, cpu_speedup_vs_batch1: summary.cpu_speedup_vs_batch1, cpu_speedup_past_startup: summary.cpu_speedup_past_startup } }) + "\n");
await writeJsonAtomic(join(repoRoot, "bench", "results", "eval-batch.json"), summary);
