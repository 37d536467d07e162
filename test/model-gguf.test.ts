import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { initBackend } from "../src/model/backend.ts";
import { Decoder } from "../src/model/decode.ts";
import { exportModel } from "../src/model/export-cli.ts";
import { generate } from "../src/model/generate.ts";
import { readGguf, rotateHalfToInterleaved, roundLikeGguf, writeGguf } from "../src/model/gguf.ts";
import { interleavedToRotateHalf } from "../src/model/hf.ts";
import { loadLlama2c, saveLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import type { LlamaConfig, LlamaModelData } from "../src/model/types.ts";
import { LoraAdapter, mergeLora } from "../src/train/lora.ts";
import { initLlama } from "../src/train/pretrain.ts";
import { dataPath } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { runKtu } from "./helpers/cli.ts";

const MODEL = dataPath("models", "stories260K", "stories260K.bin");
const TOK = dataPath("models", "stories260K", "tok512.bin");
const stories = loadLlama2c(MODEL);
const tok = Llama2cTokenizer.load(TOK, 512);
const tmp = mkdtempSync(join(tmpdir(), "ktu-gguf-"));

// ---------------------------------------------------------------------------------------------------
// llama.cpp through node-llama-cpp's prebuilt CPU binaries, where installed: in this repository's
// node_modules, or in the folder KTU_NODE_LLAMA_CPP names (one with node_modules/node-llama-cpp and
// @node-llama-cpp/linux-x64). Without it the llama.cpp tests are skipped; the file checks still run.
/** The part of node-llama-cpp's API used here (it is not a dependency, so its types are not either). */
interface LlamaCppModel {
  trainContextSize: number;
  tokenize(text: string, special: boolean): Iterable<number>;
  createContext(o: { contextSize: number; threads: number; batchSize: number }): Promise<{ getSequence(): { evaluate(tokens: number[], o: { temperature: number }): AsyncIterable<number> }; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(o: { gpu: false; build: "never"; logLevel: unknown; progressLogs: boolean }): Promise<{ loadModel(o: { modelPath: string }): Promise<LlamaCppModel> }>;
  LlamaLogLevel: { error: unknown };
}
async function findLlamaCpp(): Promise<{ mod?: NodeLlamaCpp; reason?: string }> {
  const places = [process.env.KTU_NODE_LLAMA_CPP ? pathToFileURL(join(process.env.KTU_NODE_LLAMA_CPP, "node_modules", "node-llama-cpp", "dist", "index.js")).href : undefined, "node-llama-cpp"];
  for (const place of places) {
    if (!place) continue;
    try {
      return { mod: (await import(place)) as NodeLlamaCpp };
    } catch {
      // try the next place
    }
  }
  return { reason: "node-llama-cpp is not installed (npm i node-llama-cpp @node-llama-cpp/linux-x64 in KTU_NODE_LLAMA_CPP's folder)" };
}
const llamaCpp = await findLlamaCpp();
let llamaInstance: Awaited<ReturnType<NodeLlamaCpp["getLlama"]>> | undefined;
let llamaReason = llamaCpp.reason;
if (llamaCpp.mod) {
  try {
    llamaInstance = await llamaCpp.mod.getLlama({ gpu: false, build: "never", logLevel: llamaCpp.mod.LlamaLogLevel.error, progressLogs: false });
  } catch (error) {
    llamaReason = `node-llama-cpp has no usable prebuilt binary here: ${(error as Error).message}`;
  }
}
const skipLlama = llamaInstance ? false : llamaReason;

/** llama.cpp's greedy continuation of `prompt` (ids, BOS included) from a GGUF file, `n` tokens, no stop. */
async function llamaCppGreedy(file: string, prompt: number[], n: number, text: string): Promise<{ ids: number[]; tokenized: number[] }> {
  const model = await llamaInstance!.loadModel({ modelPath: file });
  const ctx = await model.createContext({ contextSize: Math.min(model.trainContextSize, 512), threads: 1, batchSize: 512 });
  try {
    const out: number[] = [];
    for await (const t of ctx.getSequence().evaluate(prompt, { temperature: 0 })) {
      out.push(t);
      if (out.length >= n) break;
    }
    return { ids: out, tokenized: [...model.tokenize(text, false)].map(Number) };
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

/** An adapter with non-zero B on q, k, v and the FFN, so that the merge matters. */
async function trainedAdapter(model: LlamaModelData, dir: string): Promise<void> {
  await initBackend();
  const rng = new Rng(11);
  const adapter = LoraAdapter.create(model.config, { rank: 4, alpha: 8, dropout: 0, targets: ["wq", "wk", "wv", "w1", "w2"] }, rng);
  for (const p of adapter.parameters) if (p.kind === "B") adapter.setValues(p, Float32Array.from(p.values, () => (rng.next() - 0.5) * 0.2));
  await adapter.save(dir, MODEL);
  adapter.dispose();
}

const READER: LlamaConfig = { arch: "llama", dim: 128, hiddenDim: 352, nLayers: 4, nHeads: 4, nKvHeads: 4, vocabSize: 4096, seqLen: 320, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
/** Random weights scaled so that greedy paths vary (training's init gives near-uniform logits). */
function randomReader(): LlamaModelData {
  const m = initLlama(READER, 9);
  m.weights.tokenEmbedding.forEach((v, i, a) => (a[i] = v * 50));
  for (const l of m.weights.layers) for (const w of [l.wq, l.wk, l.wv, l.w1, l.w3]) w.forEach((v, i, a) => (a[i] = v * 3));
  return m;
}

test("ktu model export --format gguf writes GGUF v3: llama metadata, the tokenizer, tensors by llama.cpp's names (F32 exact, F16 rounded)", () => {
  for (const dtype of ["F32", "F16"] as const) {
    const file = join(tmp, `stories-${dtype}.gguf`);
    const r = runKtu(["model", "export", "--format", "gguf", "--dtype", dtype, "--model", MODEL, "--out", file]);
    assert.equal(r.status, 0, r.stderr);
    const g = readGguf(file);
    assert.equal(g.version, 3);
    const m = g.metadata;
    assert.equal(m.get("general.architecture"), "llama");
    assert.equal(m.get("general.file_type"), dtype === "F32" ? 0 : 1);
    const c = stories.config;
    assert.deepEqual(
      ["context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count", "attention.head_count_kv", "rope.dimension_count"].map((k) => m.get(`llama.${k}`)),
      [c.seqLen, c.dim, c.nLayers, c.hiddenDim, c.nHeads, c.nKvHeads, c.dim / c.nHeads],
    );
    assert.equal(m.get("tokenizer.ggml.model"), "llama");
    const tokens = m.get("tokenizer.ggml.tokens") as string[];
    assert.equal(tokens.length, 512);
    assert.deepEqual(tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
    assert.ok(tokens.includes("\u2581the"), "spaces are U+2581");
    assert.deepEqual((m.get("tokenizer.ggml.token_type") as number[]).slice(0, 4), [2, 3, 3, 6]);
    assert.equal(m.get("tokenizer.ggml.bos_token_id"), 1);
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    assert.equal(g.tensors.length, 2 + 9 * c.nLayers, "tied head: no output.weight");
    assert.deepEqual(byName.get("blk.0.ffn_gate.weight")!.ne, [c.dim, c.hiddenDim]);
    assert.equal(byName.get("blk.0.attn_norm.weight")!.type, 0, "norms stay F32");
    const q = byName.get("blk.3.attn_q.weight")!;
    assert.equal(q.type, dtype === "F32" ? 0 : 1);
    const expect = roundLikeGguf(stories, dtype).weights.layers[3]!.wq;
    assert.deepEqual(q.data, expect);
  }
  const bad = runKtu(["model", "export", "--format", "gguf", "--dtype", "BF16", "--model", MODEL, "--out", join(tmp, "x.gguf")]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /F32 or F16/);
});

test("rotate-half q/k rows go back to llama.cpp's interleaved pairs: the permuted model computes the same logits", () => {
  const hf: LlamaModelData = {
    config: { ...stories.config, ropeStyle: "rotate-half" },
    weights: {
      ...stories.weights,
      layers: stories.weights.layers.map((l) => ({ ...l, wq: interleavedToRotateHalf(l.wq, 8, 8, 64), wk: interleavedToRotateHalf(l.wk, 4, 8, 64) })),
    },
  };
  const file = join(tmp, "hf.gguf");
  writeGguf(file, hf, tok);
  const back = readGguf(file);
  const q0 = back.tensors.find((t) => t.name === "blk.0.attn_q.weight")!;
  assert.deepEqual(q0.data, stories.weights.layers[0]!.wq);
  assert.deepEqual(rotateHalfToInterleaved(hf.weights.layers[1]!.wk, 4, 8, 64), stories.weights.layers[1]!.wk);
  const ids = tok.encode("Once upon a time", { bos: true });
  const a = new Decoder(hf).forwardAll(ids);
  const b = new Decoder(stories).forwardAll(ids);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  assert.ok(max < 1e-4, `max |diff| ${max}`);
});

test("llama.cpp continues prompts with exactly our greedy tokens: stories260K F32 and F16, with a merged LoRA, and the reader's shape", { skip: skipLlama }, async () => {
  const prompts = ["Once upon a time", "Lily and Tom went to the park. They saw", "The little dog"];
  const cases: { name: string; file: string; ours: LlamaModelData; tokenizer: Llama2cTokenizer; texts: string[]; n: number }[] = [];
  for (const dtype of ["F32", "F16"] as const) {
    const file = join(tmp, `llama-${dtype}.gguf`);
    await exportModel({ model: MODEL, tokenizer: TOK, out: file, format: "gguf", dtype });
    cases.push({ name: `stories260K ${dtype}`, file, ours: roundLikeGguf(stories, dtype), tokenizer: tok, texts: prompts, n: 48 });
  }
  const adapterDir = join(tmp, "adapter");
  await trainedAdapter(stories, adapterDir);
  const merged = join(tmp, "merged.gguf");
  await exportModel({ model: MODEL, tokenizer: TOK, adapter: adapterDir, out: merged, format: "gguf" });
  const adapter = LoraAdapter.load(adapterDir, stories.config);
  const mergedModel = mergeLora(stories, adapter);
  adapter.dispose();
  cases.push({ name: "stories260K + LoRA merged", file: merged, ours: mergedModel, tokenizer: tok, texts: prompts, n: 48 });
  const readerDir = join(tmp, "reader");
  const reader = randomReader();
  saveLlama2c(join(tmp, "reader.bin"), reader);
  const readerTok = Llama2cTokenizer.load(dataPath("models", "reader", "tokenizer.bin"), 4096);
  await exportModel({ model: join(tmp, "reader.bin"), tokenizer: dataPath("models", "reader", "tokenizer.bin"), out: readerDir, format: "gguf" });
  cases.push({ name: "random 1.33M reader shape", file: join(readerDir, "model.gguf"), ours: reader, tokenizer: readerTok, texts: ["QUESTION: Who wrote it?\nCONTEXT: The book was written in 1901.\nANSWER:"], n: 24 });
  for (const c of cases) {
    assert.ok(existsSync(c.file));
    for (const text of c.texts) {
      const ours = generate(c.ours, c.tokenizer, text, { maxNewTokens: c.n, stopTokens: [], engine: "wasm" });
      const theirs = await llamaCppGreedy(c.file, ours.promptTokens, c.n, text);
      assert.deepEqual(theirs.ids, ours.tokenIds, `${c.name}: ${JSON.stringify(text)}`);
      assert.deepEqual(theirs.tokenized, c.tokenizer.encode(text, { bos: false }), `${c.name}: llama.cpp tokenizes ${JSON.stringify(text)} as we do`);
    }
  }
});
