/**
 * Runs the benchmarks (all, or those named on the command line), each in its own process, then
 * rewrites the README's benchmark table from bench/results/*.json so the README shows the latest
 * figures. `npm run bench -- --readme-only` only rewrites the table.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../src/util/fs.ts";
import { repoRoot } from "../src/util/paths.ts";

const benches = ["hotpot-stream", "kernel", "decode", "serve", "lora-step", "pretrain-throughput"] as const;
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
    const best = (r.ours as Json[]).find((o) => o.variant === r.best_variant) ?? r.ours[0];
    return [
      [`LoRA step, stories260K r=8 wq,wv, batch 8x64 (${best.variant})`, `${best.ms_per_step} ms wall, ${best.cpu_ms_per_step} ms CPU, RSS ${r.ours_peak_rss_mb} MB`, `PyTorch ${r.torch.version} CPU: ${r.torch.ms_per_step} ms wall, ${r.torch.cpu_ms_per_step} ms CPU`, `${fixed(best.ratio_vs_torch)}x wall, ${fixed(best.cpu_ratio_vs_torch)}x CPU time`],
    ];
  },
  "pretrain-throughput": (r) =>
    (r.results as Json[]).map((s) => [`Full training step, ${s.shape} (${(s.params / 1e6).toFixed(2)}M params), ${s.batch}`, `${s.ktu_tokens_per_s} tok/s`, `PyTorch CPU: ${s.torch_tokens_per_s} tok/s`, `${fixed(s.ratio_vs_torch)}x`]),
};

function readmeTable(): string {
  const rows: string[][] = [];
  const dates: string[] = [];
  for (const name of benches) {
    const file = join(repoRoot, "bench", "results", `${name}.json`);
    if (!existsSync(file)) continue;
    const result = JSON.parse(readFileSync(file, "utf8")) as Json;
    if (typeof result.date === "string") dates.push(`${name} ${result.date.slice(0, 16).replace("T", " ")}`);
    rows.push(...summarise[name](result).map((row) => [...row, `bench/${name}.ts`]));
  }
  const head = "| what | ours | peer, same run | ratio | bench |\n|---|---|---|---|---|\n";
  const body = rows.map((row) => `| ${row.join(" | ")} |`).join("\n");
  return `${head}${body}\n\nMeasured on the 2-core development machine (UTC): ${dates.join("; ")}. Other jobs shared the machine during several of these runs, so wall-clock ratios are noisy; the benches that can also print CPU-time ratios do.\n`;
}

function updateReadme(): void {
  const path = join(repoRoot, "README.md");
  const readme = readFileSync(path, "utf8");
  const start = "<!-- bench:start -->", end = "<!-- bench:end -->";
  const from = readme.indexOf(start), to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${path}: missing the ${start} ... ${end} markers`);
  writeFileAtomicSync(path, readme.slice(0, from + start.length) + "\n" + readmeTable() + readme.slice(to));
}

const args = process.argv.slice(2);
if (!args.includes("--readme-only")) {
  const chosen = args.length > 0 ? args : [...benches];
  for (const name of chosen) {
    if (!(benches as readonly string[]).includes(name)) throw new Error(`unknown bench ${JSON.stringify(name)}; one of ${benches.join(", ")}`);
    process.stderr.write(`== bench/${name}.ts\n`);
    const run = spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, "bench", `${name}.ts`)], { stdio: "inherit", cwd: repoRoot });
    if (run.status !== 0) process.stderr.write(`bench/${name}.ts exited with ${run.status}\n`);
  }
}
updateReadme();
