/**
 * Greedy decode tokens/s on stories260K: our typed-array decoder against llama2.c's run.c (built here
 * with its Makefile's `run` flags, gcc -O3), measured alternately in the same run, median of R runs.
 * Both count tokens as run.c does: (positions - 1) / time since the first generated token.
 * Usage: node --import tsx bench/decode.ts [--runs R] [--steps N]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Decoder } from "../src/model/decode.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { argmax } from "../src/model/sampler.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "9" }, steps: { type: "string", default: "256" } } });
const runs = Number(values.runs);
const steps = Number(values.steps);
const MODEL = dataPath("models", "stories260K", "stories260K.bin");
const TOKENIZER = dataPath("models", "stories260K", "tok512.bin");
const PROMPT = "Once upon a time";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function buildRunc(): string {
  const dir = mkdtempSync(join(tmpdir(), "ktu-bench-runc-"));
  const exe = join(dir, "run");
  const cc = spawnSync("gcc", ["-O3", "-o", exe, join(repoRoot, "bench", "peers", "llama2c", "run.c"), "-lm"], { encoding: "utf8" });
  if (cc.error || cc.status !== 0) throw new Error(`cannot build run.c with gcc: ${cc.error?.message ?? cc.stderr}`);
  return exe;
}

function runc(exe: string): { tokS: number; maxRssKb: number } {
  const r = spawnSync("/usr/bin/time", ["-f", "maxrss_kb=%M", exe, MODEL, "-z", TOKENIZER, "-t", "0", "-n", String(steps), "-i", PROMPT], { encoding: "utf8" });
  const m = /achieved tok\/s: ([\d.]+)/.exec(r.stderr);
  if (!m) throw new Error(`run.c printed no speed: ${r.stderr}`);
  return { tokS: Number(m[1]), maxRssKb: Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1] ?? NaN) };
}

const model = loadLlama2c(MODEL);
const tokenizer = Llama2cTokenizer.load(TOKENIZER, model.config.vocabSize);
const decoder = new Decoder(model);

/** run.c's generate loop, greedy, without printing; returns tok/s as run.c computes it. */
function ours(): { tokS: number; text: number[] } {
  const prompt = tokenizer.encode(PROMPT);
  const cache = decoder.newCache(steps);
  let token = prompt[0]!;
  let start = 0;
  let pos = 0;
  const out: number[] = [];
  while (pos < steps) {
    const logits = decoder.step(cache, token);
    const next = pos < prompt.length - 1 ? prompt[pos + 1]! : argmax(logits);
    pos++;
    if (next === 1) break;
    out.push(next);
    token = next;
    if (start === 0) start = performance.now();
  }
  return { tokS: (pos - 1) / ((performance.now() - start) / 1000), text: out };
}

const exe = buildRunc();
ours(); // JIT warm-up, as run.c needs none
const peer: number[] = [];
const mine: number[] = [];
let rss = NaN;
for (let i = 0; i < runs; i++) {
  const p = runc(exe);
  peer.push(p.tokS);
  rss = p.maxRssKb;
  mine.push(ours().tokS);
}
const result = {
  bench: "decode",
  what: `greedy decode of stories260K, ${steps} positions from "${PROMPT}", tok/s as run.c reports it, median of ${runs} alternating runs`,
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model,
  node: process.version,
  peer: "llama2.c run.c (350e04f), gcc -O3",
  peer_tok_s: median(peer),
  ktu_tok_s: median(mine),
  ratio: median(mine) / median(peer),
  goal_ratio: 0.5,
  peer_max_rss_mb: rss / 1024,
  ktu_max_rss_mb: process.resourceUsage().maxRSS / 1024,
  runs: { peer, ktu: mine },
};
await writeJsonAtomic(join(repoRoot, "bench", "results", "decode.json"), result);
console.log(`decode stories260K: ktu ${result.ktu_tok_s.toFixed(0)} tok/s, run.c ${result.peer_tok_s.toFixed(0)} tok/s, ratio ${result.ratio.toFixed(2)}x (goal >= 0.5x)`);
console.log(`peak RSS: ktu ${result.ktu_max_rss_mb.toFixed(0)} MB (node + tsx), run.c ${result.peer_max_rss_mb.toFixed(1)} MB`);
