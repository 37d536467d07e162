import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Decoder } from "../src/model/decode.ts";
import { loadLlama2c, saveLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import type { LlamaModelData } from "../src/model/types.ts";
import { InputError } from "../src/util/errors.ts";
import { dataPath } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const MODEL = dataPath("models", "stories260K", "stories260K.bin");
const TOKENIZER = dataPath("models", "stories260K", "tok512.bin");
const REF = dataPath("models", "stories260K", "reference");
const tmp = mkdtempSync(join(tmpdir(), "ktu-llama2c-"));
const model = loadLlama2c(MODEL);

const MATS = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const;

/** export.py's version1_export layout, written independently of the loader. */
function writeV1(path: string, m: LlamaModelData): void {
  const c = m.config;
  const w = m.weights;
  const arrays = [...w.layers.map((l) => l.attnNorm), ...w.layers.map((l) => l.ffnNorm), w.finalNorm, w.tokenEmbedding, ...MATS.flatMap((k) => w.layers.map((l) => l[k]))];
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0);
  header.writeInt32LE(1, 4);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
  header.writeUInt8(1, 36);
  writeFileSync(path, Buffer.concat([header, ...arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))]));
}

/** export.py's version2_export (Q8_0 with group size 64), written independently of the loader. */
function writeV2(path: string, m: LlamaModelData, group = 64): void {
  const c = m.config;
  const w = m.weights;
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0);
  header.writeInt32LE(2, 4);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
  header.writeUInt8(1, 36);
  header.writeInt32LE(group, 37);
  const parts: Buffer[] = [header];
  const f32 = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  for (const l of w.layers) parts.push(f32(l.attnNorm));
  for (const l of w.layers) parts.push(f32(l.ffnNorm));
  parts.push(f32(w.finalNorm));
  const tensors = [w.tokenEmbedding, ...MATS.map((k) => Float32Array.from(w.layers.flatMap((l) => Array.from(l[k]))))];
  for (const t of tensors) {
    const q = new Int8Array(t.length);
    const s = new Float32Array(t.length / group);
    for (let g = 0; g < s.length; g++) {
      let max = 0;
      for (let i = 0; i < group; i++) max = Math.max(max, Math.abs(t[g * group + i]!));
      s[g] = max / 127;
      for (let i = 0; i < group; i++) q[g * group + i] = Math.round(t[g * group + i]! / s[g]!);
    }
    parts.push(Buffer.from(q.buffer), f32(s));
  }
  writeFileSync(path, Buffer.concat(parts));
}

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test("the v0 header of stories260K gives the documented architecture, tied classifier, views on the file", () => {
  const c = model.config;
  assert.deepEqual([c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen], [64, 172, 5, 8, 4, 512, 512]);
  assert.equal(c.ropeStyle, "interleaved");
  assert.equal(model.weights.lmHead, model.weights.tokenEmbedding);
  // wq[0] starts at byte 132380 (PROVENANCE.md's offset table).
  const raw = readFileSync(MODEL);
  assert.equal(model.weights.layers[0]!.wq[1], raw.readFloatLE(132380 + 4));
  assert.equal(model.weights.layers[4]!.w3.length, 172 * 64);
});

test("v1 (fp32) and v2 (Q8_0) exports load to the same model", () => {
  const v1 = join(tmp, "v1.bin");
  writeV1(v1, model);
  const m1 = loadLlama2c(v1);
  assert.deepEqual(m1.config, model.config);
  for (const k of MATS) assert.equal(maxAbsDiff(m1.weights.layers[3]![k], model.weights.layers[3]![k]), 0);
  const v2 = join(tmp, "v2.bin");
  writeV2(v2, model);
  const m2 = loadLlama2c(v2);
  // Q8_0 error is at most half a quantization step (max|w|/127/2 per group).
  const err = maxAbsDiff(m2.weights.layers[2]!.w1, model.weights.layers[2]!.w1);
  assert.ok(err > 0 && err < 0.02, `dequantization error ${err}`);
  assert.equal(maxAbsDiff(m2.weights.finalNorm, model.weights.finalNorm), 0);
});

test("saveLlama2c round-trips byte for byte, and an untied head is stored after freq_cis", () => {
  const out = join(tmp, "saved.bin");
  saveLlama2c(out, model);
  // The freq_cis tables are recomputed, so compare everything else exactly and those within float error.
  const a = readFileSync(MODEL);
  const b = readFileSync(out);
  assert.equal(b.length, a.length);
  assert.ok(a.subarray(0, 1040156).equals(b.subarray(0, 1040156)));
  const untied: LlamaModelData = { config: { ...model.config, tiedEmbeddings: false }, weights: { ...model.weights, lmHead: model.weights.tokenEmbedding.map((v) => v * 2) } };
  saveLlama2c(out, untied);
  const back = loadLlama2c(out);
  assert.equal(back.config.tiedEmbeddings, false);
  assert.equal(back.weights.lmHead[7], model.weights.tokenEmbedding[7]! * 2);
  assert.equal(readFileSync(out).readInt32LE(20), -512);
});

test("a rotate-half model saves to interleaved llama2.c and gives the same logits", () => {
  // HF's permutation of q/k rows (PROVENANCE.md), applied here to build the rotate-half twin.
  const permute = (w: Float32Array, heads: number, hs: number, cols: number): Float32Array => {
    const out = new Float32Array(w.length);
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < hs / 2; j++)
        for (const [src, dst] of [[2 * j, j], [2 * j + 1, j + hs / 2]] as const) out.set(w.subarray((h * hs + src) * cols, (h * hs + src + 1) * cols), (h * hs + dst) * cols);
    return out;
  };
  const c = model.config;
  const hf: LlamaModelData = {
    config: { ...c, ropeStyle: "rotate-half" },
    weights: { ...model.weights, layers: model.weights.layers.map((l) => ({ ...l, wq: permute(l.wq, c.nHeads, 8, c.dim), wk: permute(l.wk, c.nKvHeads, 8, c.dim) })) },
  };
  const ids = [1, 403, 407, 261, 378];
  const ref = new Decoder(model).forwardAll(ids);
  assert.ok(maxAbsDiff(new Decoder(hf).forwardAll(ids), ref) < 1e-5);
  const out = join(tmp, "from-hf.bin");
  saveLlama2c(out, hf);
  assert.ok(readFileSync(out).subarray(0, 1040156).equals(readFileSync(MODEL).subarray(0, 1040156)));
});

test("truncated, oversized and non-checkpoint files fail naming the file and field", () => {
  const raw = readFileSync(MODEL);
  const cut = join(tmp, "cut.bin");
  writeFileSync(cut, raw.subarray(0, 500_000));
  assert.throws(() => loadLlama2c(cut), (e: unknown) => e instanceof InputError && e.file === cut && e.field === "weights" && /truncated: 500000 bytes.*needs 1056540/.test(e.message));
  const big = join(tmp, "big.bin");
  writeFileSync(big, Buffer.concat([raw, Buffer.alloc(8)]));
  assert.throws(() => loadLlama2c(big), /big\.bin, field weights: wrong size: 1056548 bytes/);
  const text = join(tmp, "text.bin");
  writeFileSync(text, "this is not a checkpoint at all, just text");
  assert.throws(() => loadLlama2c(text), (e: unknown) => e instanceof InputError && e.file === text && e.field !== undefined);
  const v9 = Buffer.alloc(300);
  v9.writeUInt32LE(0x616b3432, 0);
  v9.writeInt32LE(9, 4);
  writeFileSync(join(tmp, "v9.bin"), v9);
  assert.throws(() => loadLlama2c(join(tmp, "v9.bin")), /field version: llama2.c export version 9 is not supported/);
  assert.throws(() => loadLlama2c(join(tmp, "missing.bin")), /missing\.bin: cannot read/);
});

test("tokenizer encode matches run.c on every reference case", () => {
  const tok = Llama2cTokenizer.load(TOKENIZER, 512);
  const cases = JSON.parse(readFileSync(join(REF, "tokenizer_encode_cases.json"), "utf8")) as { text: string; ids_bos1_eos0: number[] }[];
  assert.equal(cases.length, 15);
  for (const c of cases) assert.deepEqual(tok.encode(c.text, { bos: true, eos: false }), c.ids_bos1_eos0, JSON.stringify(c.text));
  assert.deepEqual(tok.encode("Once upon a time", { bos: false, eos: true }), [403, 407, 261, 378, 2]);
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
});

test("tokenizer decode follows run.c: space stripped after BOS, byte tokens as raw bytes", () => {
  const tok = Llama2cTokenizer.load(TOKENIZER, 512);
  assert.equal(new TextDecoder().decode(tok.decodePiece(1, 403)), "Once");
  assert.equal(new TextDecoder().decode(tok.decodePiece(403, 407)), " upon");
  assert.deepEqual(Array.from(tok.decodePiece(5, 13)), [10]); // <0x0A>
  const text = "Lily's mom said, \"Don't worry.\" naïve café 日本語";
  assert.equal(tok.decode(tok.encode(text)), text);
});

test("a tokenizer that does not match the model's vocabulary is rejected", () => {
  const raw = readFileSync(TOKENIZER);
  assert.throws(() => Llama2cTokenizer.load(TOKENIZER, 32000), /tok512\.bin, field vocab_size: the tokenizer has 512 tokens but the model's vocab_size is 32000/);
  assert.throws(() => Llama2cTokenizer.load(TOKENIZER, 256), /has more than 256 tokens but the model's vocab_size is 256/);
  const cut = join(tmp, "tok-cut.bin");
  writeFileSync(cut, raw.subarray(0, 3000));
  assert.throws(() => Llama2cTokenizer.load(cut, 512), (e: unknown) => e instanceof InputError && e.file === cut && /token \d+/.test(e.message));
  const r = runKtu(["generate", "--model", MODEL, "--tokenizer", cut, "--steps", "5"]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^ktu: .*tok-cut\.bin, record token \d+, field len/);
});
