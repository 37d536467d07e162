import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Decoder } from "../src/model/decode.ts";
import { continuationLogprobs, generate, generateBatch, generateStream, nextTokenLogprobs } from "../src/model/generate.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { Sampler, XorShiftRng } from "../src/model/sampler.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const MODEL = dataPath("models", "stories260K", "stories260K.bin");
const TOKENIZER = dataPath("models", "stories260K", "tok512.bin");
const REF = dataPath("models", "stories260K", "reference");
const model = loadLlama2c(MODEL);
const tok = Llama2cTokenizer.load(TOKENIZER, 512);
const decoder = new Decoder(model);
const readRef = (name: string): string => readFileSync(join(REF, name), "utf8");

interface TeacherForced {
  ids: number[];
  target_logprobs: number[];
  sum_nll_over_targets: number;
  positions: { logits: number[] }[];
}
const teacher = JSON.parse(readRef("teacher_forced_once_upon_a_time_lily_park.json")) as TeacherForced;

test("full-sequence logits are within 1e-4 of run.c's at every position", () => {
  const logits = decoder.forwardAll(teacher.ids);
  let max = 0;
  teacher.positions.forEach((p, t) => p.logits.forEach((v, i) => (max = Math.max(max, Math.abs(logits[t * 512 + i]! - v)))));
  assert.ok(max < 1e-4, `max |diff| ${max}`);
  const greedy = JSON.parse(readRef("greedy_empty_n256.json")) as { positions: { input_id: number; logits?: number[]; next_id: number }[] };
  const ids = greedy.positions.map((p) => p.input_id);
  const all = decoder.forwardAll(ids);
  greedy.positions.forEach((p, t) => {
    if (p.logits) p.logits.forEach((v, i) => assert.ok(Math.abs(all[t * 512 + i]! - v) < 1e-4));
    let best = 0;
    for (let i = 1; i < 512; i++) if (all[t * 512 + i]! > all[t * 512 + best]!) best = i;
    assert.equal(best, p.next_id, `argmax at position ${t}`);
  });
});

test("KV-cache decoding, batched steps and prefill equal the full-sequence forward", () => {
  const full = decoder.forwardAll(teacher.ids);
  const cache = decoder.newCache();
  teacher.ids.forEach((id, t) => assert.deepEqual(decoder.step(cache, id), full.subarray(t * 512, (t + 1) * 512)));
  // Three sequences at different lengths stepping together.
  const caches = [decoder.newCache(), decoder.newCache(), decoder.newCache()];
  decoder.prefill(caches[1]!, teacher.ids.slice(0, 5));
  decoder.prefill(caches[2]!, teacher.ids.slice(0, 11));
  const rows = decoder.stepBatch(caches, [teacher.ids[0]!, teacher.ids[5]!, teacher.ids[11]!]);
  [0, 5, 11].forEach((t, r) => assert.deepEqual(rows.subarray(r * 512, (r + 1) * 512), full.subarray(t * 512, (t + 1) * 512)));
  assert.deepEqual(caches.map((c) => c.length), [1, 6, 12]);
  assert.throws(() => decoder.step(cache, 9999), /token id 9999 is outside the vocabulary/);
  // Prompts longer than one prefill pass (64 positions) go through in several passes.
  const long = Array.from({ length: 150 }, (_, i) => teacher.ids[i % teacher.ids.length]!);
  const chunked = decoder.forwardAll(long);
  const one = decoder.newCache();
  long.forEach((id, t) => assert.deepEqual(decoder.step(one, id), chunked.subarray(t * 512, (t + 1) * 512), `position ${t}`));
  const last = decoder.newCache();
  assert.deepEqual(decoder.prefill(last, long), chunked.subarray(149 * 512));
  assert.equal(last.length, 150);
});

test("the JavaScript kernel path gives the same logits, and finished sequences give their memory back", () => {
  const js = new Decoder(model, { kernel: "js" });
  assert.equal(js.kernel, "js");
  assert.equal(decoder.kernel, "wasm");
  const a = js.forwardAll(teacher.ids);
  const b = decoder.forwardAll(teacher.ids);
  assert.ok(a.every((v, i) => Math.abs(v - b[i]!) < 2e-5));
  const prompts = Array.from({ length: 24 }, (_, i) => "Once upon a time ".repeat(1 + (i % 6)) + "Lily".repeat(i % 3));
  const own = new Decoder(model);
  const run = () => prompts.forEach((p, i) => generate(own, tok, p, { maxNewTokens: 5 + 13 * (i % 5), temperature: 1, topP: 0.9, seed: i + 1 }));
  run();
  const bytes = own.memoryBytes;
  run();
  run();
  assert.equal(own.memoryBytes, bytes, "wasm memory grew although every sequence released its cache");
  assert.deepEqual(generate(js, tok, "Tom", { maxNewTokens: 40 }).tokenIds, generate(own, tok, "Tom", { maxNewTokens: 40 }).tokenIds);
});

test("q/k/v biases (Qwen2) give the TF.js model's logits, in both RoPE layouts", async () => {
  const { initBackend } = await import("../src/model/backend.ts");
  const { TfLlama } = await import("../src/model/llama-tf.ts");
  await initBackend();
  const rng = new XorShiftRng(77);
  const bias = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.nextF32() - 0.5);
  for (const ropeStyle of ["interleaved", "rotate-half"] as const) {
    const biased = {
      config: { ...model.config, ropeStyle },
      weights: { ...model.weights, layers: model.weights.layers.map((l) => ({ ...l, bq: bias(64), bk: bias(32), bv: bias(32) })) },
    };
    const ids = teacher.ids.slice(0, 12);
    const tf = new TfLlama(biased);
    const expected = tf.logits(Int32Array.from(ids), 1, ids.length);
    tf.dispose();
    const ours = new Decoder(biased).forwardAll(ids);
    const plain = decoder.forwardAll(ids);
    assert.ok(ours.every((v, i) => Math.abs(v - expected[i]!) < 1e-4), ropeStyle);
    assert.ok(ours.some((v, i) => Math.abs(v - plain[i]!) > 1e-2), "the biases matter");
  }
});

test("the sampler's xorshift reproduces run.c's random_u32 sequence", () => {
  // run.c: unsigned long long s = 133742; random_u32(&s) x3 (printed by a C program calling run.c's function).
  const rng = new XorShiftRng(133742);
  assert.deepEqual([rng.nextU32(), rng.nextU32(), rng.nextU32()], [3033531262, 2674377904, 2312864567]);
  const neg = new XorShiftRng(-5);
  assert.equal(neg.nextU32(), 688859603);
  const greedy = new Sampler({ vocabSize: 4, temperature: 0, topP: 0.9, seed: 1 });
  assert.equal(greedy.sample(Float32Array.of(1, 3, 3, 2)), 1);
  assert.throws(() => new Sampler({ vocabSize: 4, temperature: 1, topP: 0.9, seed: 0 }), /seed 0 leaves run.c's xorshift generator stuck/);
});

test("ktu generate prints exactly run.c's reference output (greedy and seeded top-p)", () => {
  const base = ["generate", "--model", MODEL, "--tokenizer", TOKENIZER];
  const cases: [string[], string][] = [
    [["--temperature", "0", "--steps", "200"], "run_t0_empty_n200.txt"],
    [["--temperature", "0"], "run_t0_empty_n256.txt"],
    [["--temperature", "1.0", "--top-p", "0.9", "--seed", "133742"], "run_t1_p0.9_s133742_empty_n256.txt"],
  ];
  for (const [args, file] of cases) {
    const r = runKtu([...base, ...args]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, readRef(file), file);
    assert.match(r.stderr, /^achieved tok\/s: \d+\.\d{6}\n$/);
  }
});

test("ktu generate equals a freshly built run.c on other prompts, seeds and temperatures", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-runc-"));
  const run = join(dir, "run");
  const cc = spawnSync("gcc", ["-O2", "-o", run, join(repoRoot, "bench", "peers", "llama2c", "run.c"), "-lm"], { encoding: "utf8" });
  if (cc.error || cc.status !== 0) {
    t.skip(`gcc is not available to build run.c: ${cc.error?.message ?? cc.stderr}`);
    return;
  }
  const prompts = ["Once upon a time", "Lily and Tom went to the park", "naïve café 日本語 😀", "  two  spaces"];
  const settings = [["0", "0.9", "1"], ["1", "0.9", "42"], ["1", "0.9", "7"], ["0.8", "1", "99"]] as const;
  let i = 0;
  for (const prompt of prompts) {
    const [temp, topp, seed] = settings[i++ % settings.length]!;
    for (const [t2, p2, s2] of [[temp, topp, seed], ["1", "0.9", String(1000 + i)]]) {
      const ref = spawnSync(run, [MODEL, "-z", TOKENIZER, "-t", t2, "-p", p2, "-s", s2, "-n", "120", "-i", prompt], { encoding: "utf8" });
      const ours = runKtu(["generate", "--model", MODEL, "--tokenizer", TOKENIZER, "--temperature", t2, "--top-p", p2, "--seed", s2, "--steps", "120", "--prompt", prompt]);
      assert.equal(ours.stdout, ref.stdout, `prompt ${JSON.stringify(prompt)} -t ${t2} -p ${p2} -s ${s2}`);
    }
  }
});

test("generate continues the prompt greedily as run.c does, with stop strings and max tokens", () => {
  const runc = readRef("run_t0_empty_n256.txt");
  const r = generate(model, tok, "", { maxNewTokens: 256 });
  assert.equal(r.tokenIds.length, 256);
  assert.equal(r.text + "\n", runc);
  assert.deepEqual(r.promptTokens, [1]);
  const stopped = generate(model, tok, "", { maxNewTokens: 256, stop: ["Lily"] });
  assert.equal(stopped.finishReason, "stop");
  assert.equal(stopped.text, runc.slice(0, runc.indexOf("Lily")));
  const short = generate(model, tok, "Once upon a time", { maxNewTokens: 7 });
  assert.equal(short.tokenIds.length, 7);
  assert.equal(short.finishReason, "length");
  assert.ok(short.text.length > 10 && runc.startsWith("Once upon a time" + short.text), short.text);
  assert.throws(() => generate(model, tok, "word ".repeat(600)), /the prompt has \d+ tokens but the model's context is 512 positions/);
});

test("batched generation and streaming give the same text as one-at-a-time generation", async () => {
  const prompts = ["Once upon a time", "Tom had a red ball", "", "The sun"];
  const opts = { maxNewTokens: 40, temperature: 1, topP: 0.9, seed: 7 };
  const batch = generateBatch(model, tok, prompts, opts);
  prompts.forEach((p, i) => assert.deepEqual(batch[i]!.tokenIds, generate(model, tok, p, opts).tokenIds));
  let streamed = "";
  const stream = generateStream(model, tok, "Once upon a time", { maxNewTokens: 60, stop: ["park"] });
  let step = await stream.next();
  while (!step.done) {
    streamed += step.value.text;
    step = await stream.next();
  }
  assert.equal(streamed, step.value.text);
  assert.equal(streamed, generate(model, tok, "Once upon a time", { maxNewTokens: 60, stop: ["park"] }).text);
  assert.ok(!streamed.includes("park"));
});

test("continuation log-probabilities equal run.c's teacher-forced target log-probabilities", () => {
  const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
  const [whole] = continuationLogprobs(model, tok, "", [text]);
  assert.deepEqual(whole!.tokens, teacher.ids.slice(1));
  whole!.logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - teacher.target_logprobs[i]!) < 1e-4));
  assert.ok(Math.abs(-whole!.sum - teacher.sum_nll_over_targets) < 1e-4);
  // Splitting the same text into prompt and continuations scores the continuation's tokens only.
  const split = continuationLogprobs(model, tok, "Once upon a time, there was a little", [" girl named Lily.", " boy"]);
  const girl = split[0]!;
  assert.deepEqual(girl.tokens, teacher.ids.slice(10, 16));
  assert.ok(Math.abs(girl.sum - teacher.target_logprobs.slice(9, 15).reduce((a, b) => a + b)) < 1e-4);
  assert.ok(girl.logprobs[0]! > split[1]!.logprobs[0]!, "after 'a little', ' girl' is likelier than ' boy'");
  // A continuation that merges with the prompt's last characters is scored on the merged tokens.
  const prompt = "Once upon a ti";
  const conts = ["me, there", " was", "ny dog", "me"];
  const ctxIds = tok.encode(prompt);
  continuationLogprobs(model, tok, prompt, conts).forEach((score, i) => {
    const whole = tok.encode(prompt + conts[i]!);
    let k = 0;
    while (k < ctxIds.length && k < whole.length - 1 && whole[k] === ctxIds[k]) k++;
    const all = decoder.forwardAll(whole);
    const expected = whole.slice(k).map((id, j) => {
      const row = all.subarray((k + j - 1) * 512, (k + j) * 512);
      const max = Math.max(...row);
      return row[id]! - (max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)));
    });
    assert.deepEqual(score.tokens, whole.slice(k), conts[i]);
    score.logprobs.forEach((lp, j) => assert.ok(Math.abs(lp - expected[j]!) < 1e-5, `${conts[i]} token ${j}`));
  });
  const top = nextTokenLogprobs(model, tok, "Once upon a time, there was a little", 3);
  assert.equal(top[0]!.token, girl.tokens[0]);
  assert.ok(Math.abs(top[0]!.logprob - girl.logprobs[0]!) < 1e-9);
});
