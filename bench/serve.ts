/**
 * `ktu serve` throughput on stories260K: requests/s and generated tokens/s at concurrency 1, 8 and 32
 * (real HTTP from this process to a `ktu serve` child), against llama2.c run.c's single-stream
 * tokens/s measured in the same run (gcc -O3, greedy, 256 positions, median of 3).
 * Usage: node --import tsx bench/serve.ts [--max-tokens N]
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";

const { values } = parseArgs({ options: { "max-tokens": { type: "string", default: "128" } } });
const maxTokens = Number(values["max-tokens"]);
const MODEL = dataPath("models", "stories260K", "stories260K.bin");
const TOKENIZER = dataPath("models", "stories260K", "tok512.bin");
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function buildRunc(): string {
  const exe = join(mkdtempSync(join(tmpdir(), "ktu-bench-runc-")), "run");
  const cc = spawnSync("gcc", ["-O3", "-o", exe, join(repoRoot, "bench", "peers", "llama2c", "run.c"), "-lm"], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(`cannot build run.c: ${cc.error?.message ?? cc.stderr}`);
  return exe;
}

function runcTokS(exe: string): number {
  const speeds = [0, 1, 2].map(() => {
    const r = spawnSync(exe, [MODEL, "-z", TOKENIZER, "-t", "0", "-n", "256", "-i", "Once upon a time"], { encoding: "utf8" });
    return Number(/achieved tok\/s: ([\d.]+)/.exec(r.stderr)?.[1]);
  });
  return median(speeds);
}

async function startServe(): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), "serve", "--model", MODEL, "--tokenizer", TOKENIZER, "--port", "0", "--max-batch", "32"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /on (http:\/\/[\d.]+:\d+)\/v1/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`ktu serve exited ${code}: ${out}`)));
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

async function load(url: string, concurrency: number, requests: number): Promise<{ requests: number; seconds: number; tokens: number }> {
  let next = 0;
  let tokens = 0;
  const started = performance.now();
  const client = async (): Promise<void> => {
    while (next < requests) {
      const i = next++;
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ prompt: "Once upon a time", max_tokens: maxTokens, temperature: 1, top_p: 0.9, seed: i + 1 }),
      });
      const json = (await res.json()) as { usage?: { completion_tokens: number }; error?: unknown };
      if (!json.usage) throw new Error(`request failed: ${JSON.stringify(json)}`);
      tokens += json.usage.completion_tokens;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return { requests, seconds: (performance.now() - started) / 1000, tokens };
}

const exe = buildRunc();
const peers: number[] = [];
const server = await startServe();
const levels: Record<string, unknown>[] = [];
try {
  await load(server.url, 4, 8); // JIT warm-up
  for (const c of [1, 8, 32]) {
    // run.c right before each level, so both see the same load on a shared machine.
    const peer = runcTokS(exe);
    peers.push(peer);
    const r = await load(server.url, c, Math.max(16, 2 * c));
    const tokS = r.tokens / r.seconds;
    levels.push({ concurrency: c, requests: r.requests, seconds: r.seconds, requests_per_s: r.requests / r.seconds, tokens_per_s: tokS, runc_tok_s: peer, ratio_vs_runc_single_stream: tokS / peer });
    console.log(`concurrency ${String(c).padStart(2)}: ${(r.requests / r.seconds).toFixed(1)} req/s, ${tokS.toFixed(0)} tok/s = ${(tokS / peer).toFixed(2)}x run.c single-stream (${peer.toFixed(0)} tok/s)`);
  }
} finally {
  server.stop();
}
await writeJsonAtomic(join(repoRoot, "bench", "results", "serve.json"), {
  bench: "serve",
  what: `ktu serve on stories260K, /v1/completions "Once upon a time", max_tokens ${maxTokens}, temperature 1, top_p 0.9; tokens are completion tokens`,
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model,
  node: process.version,
  peer: "llama2.c run.c (350e04f), gcc -O3, greedy 256 positions, single stream, median of 3 runs just before each level",
  peer_tok_s: median(peers),
  levels,
});
