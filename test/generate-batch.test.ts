import assert from "node:assert/strict";
import { test } from "node:test";
import { NativeDecoder } from "../src/model/decode-native.ts";
import { BatchQueue, generate, generateBatch, stepDecoderFor, type GenerateOptions } from "../src/model/generate.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { loadNative } from "../src/model/native.ts";
import type { LlamaConfig, LlamaModelData } from "../src/model/types.ts";
import { initLlama } from "../src/train/pretrain.ts";
import { dataPath } from "../src/util/paths.ts";

const native = loadNative({ quiet: true });
const skip = native.engine ? false : `native engine unavailable: ${native.reason}`;

const stories = loadLlama2c(dataPath("models", "stories260K", "stories260K.bin"));
const storiesTok = Llama2cTokenizer.load(dataPath("models", "stories260K", "tok512.bin"), 512);
const readerTok = Llama2cTokenizer.load(dataPath("models", "reader", "tokenizer.bin"), 4096);

/** The reader's shape (1.33M): d128, 4 layers, 4 heads, hidden 352, vocab 4096, 320 positions. */
const READER: LlamaConfig = { arch: "llama", dim: 128, hiddenDim: 352, nLayers: 4, nHeads: 4, nKvHeads: 4, vocabSize: 4096, seqLen: 320, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
/** Grouped-query attention, rotate-half RoPE, an untied head and attention biases (Qwen2-like). */
const GQA: LlamaConfig = { arch: "llama", dim: 96, hiddenDim: 200, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 512, seqLen: 96, normEps: 1e-6, ropeTheta: 100000, ropeStyle: "rotate-half", tiedEmbeddings: false };

/** Random weights at a larger scale than training's init, so that greedy paths vary from token to token. */
function randomModel(config: LlamaConfig, seed: number, bias = false): LlamaModelData {
  const m = initLlama(config, seed);
  const scale = (a: Float32Array, s: number) => a.forEach((v, i) => (a[i] = v * s));
  scale(m.weights.tokenEmbedding, 50);
  if (!config.tiedEmbeddings) scale(m.weights.lmHead, 50);
  for (const l of m.weights.layers) {
    for (const w of [l.wq, l.wk, l.wv, l.w1, l.w3]) scale(w, 3);
    if (bias) {
      const kv = (config.dim / config.nHeads) * config.nKvHeads;
      l.bq = Float32Array.from({ length: config.dim }, (_, i) => Math.sin(i) * 0.1);
      l.bk = Float32Array.from({ length: kv }, (_, i) => Math.cos(i) * 0.1);
      l.bv = Float32Array.from({ length: kv }, (_, i) => Math.sin(3 * i) * 0.1);
    }
  }
  return m;
}

/** Prompts of assorted lengths (ids), BOS first. */
const idPrompts = (n: number, vocab: number, maxLen: number): number[][] =>
  Array.from({ length: n }, (_, i) => [1, ...Array.from({ length: 1 + ((i * 29) % (maxLen - 1)) }, (_, j) => 3 + ((i * 131 + j * 37) % (vocab - 3)))]);

const same = (a: { tokenIds: number[]; text: string; finishReason: string }[], b: { tokenIds: number[]; text: string; finishReason: string }[]) => {
  assert.equal(a.length, b.length);
  a.forEach((r, i) => {
    assert.deepEqual(r.tokenIds, b[i]!.tokenIds, `prompt ${i}: tokens`);
    assert.equal(r.text, b[i]!.text, `prompt ${i}: text`);
    assert.equal(r.finishReason, b[i]!.finishReason, `prompt ${i}: finish reason`);
  });
};

const cases: { name: string; model: LlamaModelData; tok: Llama2cTokenizer; prompts: (string | number[])[]; options: GenerateOptions }[] = [
  {
    name: "stories260K, text prompts, greedy",
    model: stories,
    tok: storiesTok,
    prompts: ["Once upon a time", "Lily and Tom went to the park. They saw", "The cat", "One day, a little bird", "Sam had a big red ball.", "Mom said", "It was a sunny day"],
    options: { maxNewTokens: 40 },
  },
  {
    name: "stories260K, sampled at 0.8 / top-p 0.9 with a stop string",
    model: stories,
    tok: storiesTok,
    prompts: ["Once upon a time", "The dog ran", "Tim wanted a cake", "She was sad because", "There was a big tree"],
    options: { maxNewTokens: 60, temperature: 0.8, topP: 0.9, seed: 42, stop: ["."] },
  },
  {
    name: "random 1.33M reader shape (320 positions), greedy, long prompts",
    model: randomModel(READER, 3),
    tok: readerTok,
    prompts: idPrompts(11, 4096, 300),
    options: { maxNewTokens: 24, stopTokens: [] },
  },
  {
    name: "random 1.33M reader shape, sampled at temperature 1",
    model: randomModel(READER, 4),
    tok: readerTok,
    prompts: idPrompts(9, 4096, 120),
    options: { maxNewTokens: 30, temperature: 1, seed: 7, stopTokens: [] },
  },
  {
    name: "random GQA (6 heads / 2 kv), rotate-half, biases, untied head; runs to the context's end",
    model: randomModel(GQA, 5, true),
    tok: storiesTok,
    prompts: idPrompts(8, 512, 90),
    options: { maxNewTokens: 200, temperature: 0.7, seed: 3, stopTokens: [] },
  },
];

for (const c of cases) {
  test(`generateBatch on the native engine equals generate() one sequence at a time: ${c.name}`, { skip }, () => {
    const decoder = new NativeDecoder(c.model);
    const single = c.prompts.map((p) => generate(decoder, c.tok, p, c.options));
    assert.ok(single.some((r) => r.tokenIds.length > 1));
    // Several batch sizes: sequences join as others finish (continuous batching), prompts share passes.
    for (const batch of [1, 3, 64]) same(generateBatch(decoder, c.tok, c.prompts, { ...c.options, batch }), single);
    // The same through the model: engine "auto" picks the native decoder here.
    assert.ok(stepDecoderFor(c.model) instanceof NativeDecoder);
    same(generateBatch(c.model, c.tok, c.prompts, { ...c.options, batch: 4 }), single);
  });
}

test("the native engine's greedy tokens equal the WebAssembly decoder's on stories260K and the reader shape", { skip }, () => {
  for (const c of [cases[0]!, cases[2]!]) {
    const wasm = c.prompts.map((p) => generate(c.model, c.tok, p, { ...c.options, engine: "wasm" }));
    same(generateBatch(c.model, c.tok, c.prompts, { ...c.options, batch: 8 }), wasm);
  }
});

test("BatchQueue: concurrent submissions join passes and get generate()'s results; errors reach their caller", { skip }, async () => {
  const c = cases[1]!;
  const decoder = new NativeDecoder(c.model);
  const single = c.prompts.map((p) => generate(decoder, c.tok, p, c.options));
  const queue = new BatchQueue(decoder, c.tok, 2);
  const results = await Promise.all(c.prompts.map((p) => queue.submit(p, c.options)));
  same(results, single);
  // A request arriving while others run joins them.
  const first = queue.submit(c.prompts[0]!, c.options);
  await new Promise((r) => setImmediate(r));
  const late = await Promise.all([first, queue.submit(c.prompts[3]!, c.options)]);
  same(late, [single[0]!, single[3]!]);
  await assert.rejects(queue.submit("x".repeat(4000), c.options), /context/);
  assert.equal((await queue.submit("Hi", { maxNewTokens: 0 })).tokenIds.length, 0);
});

test("the native decoder's caches: released caches are reused, bad input is refused", { skip }, () => {
  const d = new NativeDecoder(stories);
  const a = d.newCache(20);
  assert.equal(a.capacity, 32);
  d.prefill(a, [1, 2, 3]);
  a.release();
  assert.throws(() => d.step(a, 4), /released/);
  const b = d.newCache(30);
  assert.equal(b.length, 0);
  assert.throws(() => d.step(b, 9999), /outside the vocabulary/);
  assert.throws(() => d.prefill(b, Array.from({ length: 33 }, () => 5)), /beyond the context/);
  assert.throws(() => d.forward([{ cache: b, tokens: [1] }, { cache: b, tokens: [2] }]), /once per pass/);
});
