/**
 * Runs the benchmarks (all, or those named on the command line), each in its own process, then
 * rewrites the README's benchmark table from bench/results/*.json so the README shows the latest
 * figures. `npm run bench -- --readme-only` only rewrites the table.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { writeFileAtomicSync } from "../src/util/fs.ts";
import { repoRoot } from "../src/util/paths.ts";

const benches = ["hotpot-stream", "kernel", "decode", "serve", "lora-step", "pretrain-throughput", "lora-135m"] as const;
/** Benches against PyTorch on the CPU: their figures enter the README only from a run whose load stayed under 0.3 per core. */
const loadGated: ReadonlySet<string> = new Set(["lora-step", "pretrain-throughput", "lora-135m"]);
type Bench = (typeof benches)[number];
type Json = Record<string, any>;

const fixed = (x: number, digits = 2): string => x.toFixed(digits);

/** One README row per figure: what, ours, peer, ratio. */
const summarise: Record<Bench, (r: Json) => string[][]> = {
  "hotpot-stream": (r) => [
    [`HotpotQA streaming read, ${r.file_mb} MB`, `${fixed(r.stream.mb_per_s, 0)} MB/s, peak RSS ${fixed(r.stream.maxRssMB, 0)} MB`, `JSON.parse: ${fixed(r.json_parse.mb_per_s, 0)} MB/s, ${fixed(r.json_parse.maxRssMB, 0)} MB`, `${fixed(r.ratio_speed_stream_over_json_parse)}x speed, ${fixed(r.ratio_rss_json_parse_over_stream)}x less memory`],
  ],
  kernel: (r) => {
    const ours = r.results["know-the-unknown"], ipy = r.results.ipykernel, tslab = r.results.tslab;
    return [
      ["Kernel start to kernel_info_reply (median)", `${fixed(ours.startMs, 0)} ms`, `ipykernel ${fixed(ipy.startMs, 0)} ms, tslab ${fixed(tslab.startMs, 0)} ms`, `${fixed(r.ratios.start_vs_ipykernel)}x ipykernel's time, ${fixed(r.ratios.start_vs_tslab)}x tslab's`],
      ["Round trip of `1+1` (median)", `${fixed(ours.roundTripMs, 1)} ms`, `ipykernel ${fixed(ipy.roundTripMs, 1)} ms, tslab ${fixed(tslab.roundTripMs, 1)} ms`, `${fixed(r.ratios.round_trip_vs_ipykernel)}x ipykernel's time`],
    ];
  },
  decode: (r) => [
    ["Greedy decode, stories260K", `${fixed(r.ktu_tok_s, 0)} tok/s, RSS ${fixed(r.ktu_max_rss_mb, 0)} MB`, `llama2.c run.c -O3: ${fixed(r.peer_tok_s, 0)} tok/s`, `${fixed(r.ratio)}x run.c`],
  ],
  serve: (r) =>
    (r.levels as Json[]).map((level) => [
      `ktu serve, concurrency ${level.concurrency}`,
      `${fixed(level.requests_per_s, 1)} req/s, ${fixed(level.tokens_per_s, 0)} tok/s`,
      `run.c single stream: ${fixed(level.runc_tok_s ?? r.peer_tok_s, 0)} tok/s`,
      `${fixed(level.ratio_vs_runc_single_stream)}x run.c`,
    ]),
  "lora-step": (r) => {
    const torchAt = (threads: number): Json | null => (threads > 1 ? r.torch_all_cores : r.torch);
    const best = (r.ours as Json[]).find((o) => o.variant === r.best_variant) ?? r.ours[0];
    const shown = (r.ours as Json[]).filter((o) => String(o.variant).startsWith("native") || o === best);
    return shown.map((o) => {
      const t = torchAt(o.threads ?? 1);
      return [`LoRA step, stories260K r=8 wq,wv, batch 8x64 (${o.variant})`, `${o.ms_per_step} ms wall, ${o.cpu_ms_per_step} ms CPU, RSS ${r.ours_peak_rss_mb} MB`, t ? `PyTorch ${t.version}, ${t.threads} thread${t.threads > 1 ? "s" : ""}: ${t.ms_per_step} ms wall, RSS ${fixed(t.peak_rss_mb, 0)} MB${r.torch_fallback ? " (Debian fallback)" : ""}` : "PyTorch: not run", `${fixed(o.ratio_vs_torch)}x wall, ${fixed(o.cpu_ratio_vs_torch)}x CPU time`];
    });
  },
  "pretrain-throughput": (r) =>
    (r.results as Json[]).flatMap((s) =>
      Object.entries((s.by_threads ?? { [String(s.threads ?? 1)]: s }) as Record<string, Json>).map(([threads, t]) => [
        `Full training step, ${s.shape} (${(s.params / 1e6).toFixed(2)}M params), ${s.batch}, ${threads} thread${threads === "1" ? "" : "s"}`,
        `${t.ktu_tokens_per_s} tok/s, RSS ${t.ktu_peak_rss_mb ?? "?"} MB (${s.engine ?? r.backend})`,
        `PyTorch ${r.torch?.version ?? ""}${r.torch_fallback ? " (Debian fallback)" : ""}: ${t.torch_tokens_per_s} tok/s, RSS ${t.torch_peak_rss_mb ?? "?"} MB`,
        `${fixed(t.ratio_vs_torch)}x`,
      ]),
    ),
  "lora-135m": (r) =>
    (r.results as Json[]).map((x) => [
      `${x.job}, ${x.shape}, ${x.threads} thread${x.threads > 1 ? "s" : ""}`,
      `${x.ms_per_step} ms, ${x.tokens_per_s} tok/s, RSS ${x.ktu_peak_rss_mb} MB (${String(x.engine ?? "").replace(/^engine: /, "")})`,
      `PyTorch ${r.torch?.version ?? ""}${r.torch_fallback ? " (Debian fallback)" : ""}: ${x.torch_ms_per_step} ms, RSS ${x.torch_peak_rss_mb} MB`,
      `${fixed(x.ratio_vs_torch)}x time, ${fixed(x.rss_ratio_vs_torch)}x memory`,
    ]),
};

const readResult = (name: string): Json | undefined => {
  const file = join(repoRoot, "bench", "results", `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Json) : undefined;
};

/** Why a load-gated result stays out of the table (undefined: it may go in). */
function notIdle(name: string, r: Json): string | undefined {
  if (!loadGated.has(name) || r.idle === true) return undefined;
  if (r.idle === undefined) return `bench/${name}.ts: its result file has no load check (older run)`;
  return `bench/${name}.ts ran at load average ${r.loadavg_before} before, ${r.loadavg_after} after on ${r.cpus} cores (over 0.3 per core)`;
}

function readmeTable(): string {
  const rows: string[][] = [];
  const dates: string[] = [];
  for (const name of benches) {
    const result = readResult(name);
    if (!result || notIdle(name, result)) continue;
    if (typeof result.date === "string") dates.push(`${name} ${result.date.slice(0, 16).replace("T", " ")}${loadGated.has(name) ? ` (load ${result.loadavg_before} / ${result.loadavg_after})` : ""}`);
    rows.push(...summarise[name](result).map((row) => [...row, `bench/${name}.ts`]));
  }
  const head = "| what | ours | peer, same run | ratio | bench |\n|---|---|---|---|---|\n";
  const body = rows.map((row) => `| ${row.join(" | ")} |`).join("\n");
  return `${head}${body}\n\nMeasured on the 2-core development machine (UTC): ${dates.join("; ")}. The PyTorch rows (same shapes, same thread count, measured alternately in one run) enter this table only from runs whose load average stayed under 0.3 per core; the other rows' runs may have shared the machine.\n`;
}

function updateReadme(): void {
  const path = join(repoRoot, "README.md");
  const readme = readFileSync(path, "utf8");
  const start = "<!-- bench:start -->", end = "<!-- bench:end -->";
  const from = readme.indexOf(start), to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${path}: missing the ${start} ... ${end} markers`);
  writeFileAtomicSync(path, readme.slice(0, from + start.length) + "\n" + readmeTable() + readme.slice(to));
}

/**
 * Waits (up to `maxSeconds`) for the 1-minute load average to fall under 0.3 per core, so that a
 * load-gated bench's "before" figure is other work's load, not the decay of the bench just run.
 */
async function settle(maxSeconds = 300): Promise<void> {
  const bar = 0.3 * cpus().length;
  const start = Date.now();
  if (loadavg()[0]! < bar) return;
  process.stderr.write(`waiting for the load average (${loadavg()[0]!.toFixed(2)}) to fall under ${bar.toFixed(1)} before the next PyTorch-peer bench\n`);
  while (loadavg()[0]! >= bar && Date.now() - start < maxSeconds * 1000) await new Promise((r) => setTimeout(r, 5000));
}

const args = process.argv.slice(2);
let chosen: string[] = [];
if (!args.includes("--readme-only")) {
  chosen = args.length > 0 ? args : [...benches];
  for (const name of chosen) {
    if (!(benches as readonly string[]).includes(name)) throw new Error(`unknown bench ${JSON.stringify(name)}; one of ${benches.join(", ")}`);
    if (loadGated.has(name)) await settle();
    process.stderr.write(`== bench/${name}.ts\n`);
    const run = spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, "bench", `${name}.ts`)], { stdio: "inherit", cwd: repoRoot });
    if (run.status !== 0) process.stderr.write(`bench/${name}.ts exited with ${run.status}\n`);
  }
}
// A run on a busy machine leaves the README as it is, and says so.
const busy = chosen.map((name) => [name, readResult(name)] as const).flatMap(([name, r]) => (r ? [notIdle(name, r)] : [])).filter((x): x is string => x !== undefined);
if (busy.length > 0) {
  process.stderr.write(`README table left unchanged: ${busy.join("; ")}. Rerun on an idle machine.\n`);
} else updateReadme();
