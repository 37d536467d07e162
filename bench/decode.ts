/**
 * Greedy decode tokens/s: our decoder against llama2.c's run.c (built here with its Makefile's `run`
 * flags, gcc -O3), measured alternately in the same run, median of R runs, on stories260K and on a
 * random model of stories15M's shape (dim 288, 6 layers, 6 heads, hidden 768; the 512-token
 * vocabulary so tok512.bin fits), written here with saveLlama2c so both read the same file.
 * Both count tokens as run.c does: (positions - 1) / time since the first generated token.
 * Usage: node --import tsx bench/decode.ts [--runs R] [--steps N]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Decoder } from "../src/model/decode.ts";
import { loadLlama2c, saveLlama2c } from "../src/model/llama2c.ts";
import type { LlamaModelData } from "../src/model/types.ts";
import { Rng } from "../src/util/rng.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { generateBatch } from "../src/model/generate.ts";
import { generateParallel } from "../src/model/parallel.ts";
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

/** One run.c run: its own tok/s line, plus CPU seconds and positions for a load-independent rate. */
function runc(exe: string, modelPath: string): { tokS: number; maxRssKb: number; cpuS: number } {
  const r = spawnSync("/usr/bin/time", ["-f", "maxrss_kb=%M cpu_s=%U+%S", exe, modelPath, "-z", TOKENIZER, "-t", "0", "-n", String(steps), "-i", PROMPT], { encoding: "utf8" });
  const m = /achieved tok\/s: ([\d.]+)/.exec(r.stderr);
  const cpu = /cpu_s=([\d.]+)\+([\d.]+)/.exec(r.stderr);
  if (!m || !cpu) throw new Error(`run.c printed no speed: ${r.stderr}`);
  return { tokS: Number(m[1]), maxRssKb: Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1] ?? NaN), cpuS: Number(cpu[1]) + Number(cpu[2]) };
}

/** A model of stories15M's shape with small random weights (speed does not depend on their values). */
function syntheticModel(): string {
  const rng = new Rng(288);
  const [dim, hidden, layers, heads, vocab, seqLen] = [288, 768, 6, 6, 512, 256];
  const rand = (n: number, scale: number): Float32Array => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
  const emb = rand(vocab * dim, 1);
  const model: LlamaModelData = {
    config: { arch: "llama", dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKvHeads: heads, vocabSize: vocab, seqLen, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true },
    weights: {
      tokenEmbedding: emb,
      lmHead: emb,
      finalNorm: new Float32Array(dim).fill(1),
      layers: Array.from({ length: layers }, () => ({
        attnNorm: new Float32Array(dim).fill(1),
        ffnNorm: new Float32Array(dim).fill(1),
        wq: rand(dim * dim, 0.06),
        wk: rand(dim * dim, 0.06),
        wv: rand(dim * dim, 0.06),
        wo: rand(dim * dim, 0.06),
        w1: rand(hidden * dim, 0.06),
        w2: rand(dim * hidden, 0.04),
        w3: rand(hidden * dim, 0.06),
      })),
    },
  };
  const path = join(mkdtempSync(join(tmpdir(), "ktu-bench-288-")), "random288.bin");
  saveLlama2c(path, model);
  return path;
}

const tokenizer = Llama2cTokenizer.load(TOKENIZER, 512);

/** run.c's generate loop, greedy, without printing: tok/s as run.c computes it, positions run, CPU seconds. */
function ours(decoder: Decoder): { tokS: number; positions: number; cpuS: number } {
  const cpu0 = process.cpuUsage();
  const prompt = tokenizer.encode(PROMPT);
  const n = Math.min(steps, decoder.config.seqLen);
  const cache = decoder.newCache(n);
  let token = prompt[0]!;
  let start = 0;
  let pos = 0;
  while (pos < n) {
    const logits = decoder.step(cache, token);
    const next = pos < prompt.length - 1 ? prompt[pos + 1]! : argmax(logits);
    pos++;
    if (next === 1) break;
    token = next;
    if (start === 0) start = performance.now();
  }
  cache.release();
  const tokS = (pos - 1) / ((performance.now() - start) / 1000);
  const cpu = process.cpuUsage(cpu0);
  return { tokS, positions: pos, cpuS: (cpu.user + cpu.system) / 1e6 };
}

interface Comparison {
  peer: number[];
  ktu: number[];
  rssKb: number;
  /** Positions per CPU second over all runs: unaffected by other processes sharing the machine. */
  peerCpuTokS: number;
  ktuCpuTokS: number;
}

function compare(exe: string, modelPath: string, runs: number): Comparison {
  const decoder = new Decoder(loadLlama2c(modelPath));
  ours(decoder); // JIT warm-up, as run.c needs none
  const r: Comparison = { peer: [], ktu: [], rssKb: NaN, peerCpuTokS: 0, ktuCpuTokS: 0 };
  let positions = 0;
  let peerCpu = 0;
  let ktuCpu = 0;
  for (let i = 0; i < runs; i++) {
    const p = runc(exe, modelPath);
    r.peer.push(p.tokS);
    r.rssKb = p.maxRssKb;
    peerCpu += p.cpuS;
    const o = ours(decoder);
    r.ktu.push(o.tokS);
    ktuCpu += o.cpuS;
    // Greedy decoding runs the same positions in both (they stop at the same BOS).
    positions += o.positions;
  }
  r.peerCpuTokS = positions / peerCpu;
  r.ktuCpuTokS = positions / ktuCpu;
  return r;
}

/** Many prompts at once: in this thread (generateBatch) and over two worker threads (generateParallel). */
async function throughput(): Promise<{ one_thread_tok_s: number; two_workers_tok_s: number; prompts: number }> {
  const prompts = Array.from({ length: 64 }, (_, i) => ["Once upon a time", "Tom had a ball", "Lily saw a bird", "One day"][i % 4]!);
  const opts = { maxNewTokens: 128, temperature: 1, topP: 0.9, seed: 7 };
  const model = loadLlama2c(MODEL);
  let t0 = performance.now();
  const one = generateBatch(model, tokenizer, prompts, opts).reduce((a, r) => a + r.tokenIds.length, 0) / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  const results = await generateParallel({ model: MODEL, tokenizer: TOKENIZER }, prompts, opts, { workers: 2 });
  const two = results.reduce((a, r) => a + r.tokenIds.length, 0) / ((performance.now() - t0) / 1000);
  return { one_thread_tok_s: one, two_workers_tok_s: two, prompts: prompts.length };
}
const exe = buildRunc();
const small = compare(exe, MODEL, runs);
const big = compare(exe, syntheticModel(), Math.max(3, Math.ceil(runs / 3)));
const many = await throughput();
const summary = (r: Comparison) => ({
  peer_tok_s: median(r.peer),
  ktu_tok_s: median(r.ktu),
  ratio: median(r.ktu) / median(r.peer),
  cpu_time: { peer_tok_per_cpu_s: r.peerCpuTokS, ktu_tok_per_cpu_s: r.ktuCpuTokS, ratio: r.ktuCpuTokS / r.peerCpuTokS },
  runs: { peer: r.peer, ktu: r.ktu },
});
const result = {
  bench: "decode",
  what: `greedy decode, ${steps} positions from "${PROMPT}", tok/s as run.c reports it, median of alternating runs`,
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model,
  node: process.version,
  peer: "llama2.c run.c (350e04f), gcc -O3",
  goal_ratio: 0.5,
  ...summary(small),
  peer_max_rss_mb: small.rssKb / 1024,
  ktu_max_rss_mb: process.resourceUsage().maxRSS / 1024,
  random_dim288: summary(big),
  batch_throughput: { ...many, note: "64 prompts x 128 new tokens, sampled; two_workers includes starting the workers" },
};
await writeJsonAtomic(join(repoRoot, "bench", "results", "decode.json"), result);
console.log(`decode stories260K: ktu ${result.ktu_tok_s.toFixed(0)} tok/s, run.c ${result.peer_tok_s.toFixed(0)} tok/s, ratio ${result.ratio.toFixed(2)}x (goal >= 0.5x); per CPU second ${result.cpu_time.ratio.toFixed(2)}x`);
const b288 = result.random_dim288;
console.log(`decode random dim 288 x 6 layers: ktu ${b288.ktu_tok_s.toFixed(0)} tok/s, run.c ${b288.peer_tok_s.toFixed(0)} tok/s, ratio ${b288.ratio.toFixed(2)}x; per CPU second ${b288.cpu_time.ratio.toFixed(2)}x`);
console.log(`64 prompts: ${many.one_thread_tok_s.toFixed(0)} tok/s in one thread, ${many.two_workers_tok_s.toFixed(0)} tok/s over 2 worker threads (run.c single stream ${result.peer_tok_s.toFixed(0)})`);
console.log(`peak RSS: ktu ${result.ktu_max_rss_mb.toFixed(0)} MB (node + tsx), run.c ${result.peer_max_rss_mb.toFixed(1)} MB`);
