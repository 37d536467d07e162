/**
 * llama2.c checkpoint files (.bin), as written by karpathy/llama2.c export.py:
 * - v0 "legacy": 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
 *   negative vocab_size means an untied classifier stored last), then fp32 tensors in run.c's order
 *   including the unused freq_cis tables.
 * - v1: magic "ak42" (0x616b3432), int32 version 1, the 7 params, uint8 shared_classifier, padded to
 *   256 bytes; fp32 norms first, then embedding and matrices.
 * - v2: as v1 plus int32 group_size after the flag; matrices in Q8_0 (int8 values then fp32 scales per
 *   tensor), dequantized here to fp32 because every consumer works in fp32.
 * Weights of v0 are views on the file buffer (no copy). RoPE is llama2.c's interleaved layout.
 */
import { readFileSync } from "node:fs";
import { InputError } from "../util/errors.ts";
import { writeFileAtomicSync } from "../util/fs.ts";
import type { LlamaConfig, LlamaLayerWeights, LlamaModelData, LlamaWeights } from "./types.ts";

const MAGIC = 0x616b3432;
const HEADER_FIELDS = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"] as const;
const MATRICES = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const;

interface Header {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  tied: boolean;
}

function readHeader(file: string, view: DataView, offset: number, version: string): Header {
  if (view.byteLength < offset + 28) {
    throw new InputError(file, undefined, "header", `file is ${view.byteLength} bytes, too short for a llama2.c ${version} header`);
  }
  const v = HEADER_FIELDS.map((_, i) => view.getInt32(offset + 4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = v as [number, number, number, number, number, number, number];
  for (const [i, name] of HEADER_FIELDS.entries()) {
    const value = name === "vocab_size" ? Math.abs(v[i]!) : v[i]!;
    if (!(value > 0) || value > 1 << 24) throw new InputError(file, undefined, name, `must be a positive size, got ${v[i]} (not a llama2.c checkpoint?)`);
  }
  if (dim % nHeads !== 0) throw new InputError(file, undefined, "n_heads", `dim ${dim} is not a multiple of n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw new InputError(file, undefined, "n_kv_heads", `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) throw new InputError(file, undefined, "n_heads", `head size ${dim / nHeads} must be even for RoPE`);
  return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(rawVocab), seqLen, tied: rawVocab > 0 };
}

function toConfig(h: Header): LlamaConfig {
  return {
    arch: "llama",
    dim: h.dim,
    hiddenDim: h.hiddenDim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    vocabSize: h.vocabSize,
    seqLen: h.seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "interleaved",
    tiedEmbeddings: h.tied,
  };
}

/** Floats per layer of each matrix, [out, in]. */
function matrixSizes(h: Header): Record<(typeof MATRICES)[number], number> {
  const kvDim = (h.dim / h.nHeads) * h.nKvHeads;
  return { wq: h.dim * h.dim, wk: kvDim * h.dim, wv: kvDim * h.dim, wo: h.dim * h.dim, w1: h.hiddenDim * h.dim, w2: h.dim * h.hiddenDim, w3: h.hiddenDim * h.dim };
}

/** Float32 view of `bytes` at `byteOffset` without copying when aligned (Buffer pools may not be). */
function floatView(bytes: Uint8Array, byteOffset: number, count: number): Float32Array {
  const abs = bytes.byteOffset + byteOffset;
  if (abs % 4 === 0) return new Float32Array(bytes.buffer, abs, count);
  const copy = new Float32Array(count);
  new Uint8Array(copy.buffer).set(bytes.subarray(byteOffset, byteOffset + count * 4));
  return copy;
}

function expectSize(file: string, actual: number, expected: number, h: Header, what: string): void {
  if (actual === expected) return;
  const shape = `dim ${h.dim}, hidden_dim ${h.hiddenDim}, n_layers ${h.nLayers}, n_heads ${h.nHeads}, n_kv_heads ${h.nKvHeads}, vocab_size ${h.vocabSize}, seq_len ${h.seqLen}, ${h.tied ? "tied" : "untied"} classifier`;
  const problem = actual < expected ? `truncated: ${actual} bytes, but the header (${shape}) needs ${expected}` : `wrong size: ${actual} bytes, but the header (${shape}) needs exactly ${expected}`;
  throw new InputError(file, undefined, what, problem);
}

/** Reads a llama2.c checkpoint (v0, v1 or v2) into the shared weight layout. */
export function loadLlama2c(path: string): LlamaModelData {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new InputError(path, undefined, undefined, `cannot read llama2.c checkpoint: ${(error as Error).message}`, { cause: error });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength >= 8 && view.getUint32(0, true) === MAGIC) {
    const version = view.getInt32(4, true);
    if (version === 1) return loadV1(path, bytes, view);
    if (version === 2) return loadV2(path, bytes, view);
    throw new InputError(path, undefined, "version", `llama2.c export version ${version} is not supported (only 0, 1 and 2)`);
  }
  return loadV0(path, bytes, view);
}

function loadV0(file: string, bytes: Uint8Array, view: DataView): LlamaModelData {
  const h = readHeader(file, view, 0, "v0");
  const sizes = matrixSizes(h);
  const headSize = h.dim / h.nHeads;
  const L = h.nLayers;
  const perLayer = Object.values(sizes).reduce((a, b) => a + b, 0) + 2 * h.dim;
  const floats = h.vocabSize * h.dim + L * perLayer + h.dim + h.seqLen * headSize + (h.tied ? 0 : h.vocabSize * h.dim);
  expectSize(file, bytes.byteLength, 28 + floats * 4, h, "weights");
  let offset = 28;
  const take = (count: number): Float32Array => {
    const a = floatView(bytes, offset, count);
    offset += count * 4;
    return a;
  };
  const tokenEmbedding = take(h.vocabSize * h.dim);
  const attnNorm = take(L * h.dim);
  const mats: Record<string, Float32Array> = {};
  for (const m of MATRICES.slice(0, 4)) mats[m] = take(L * sizes[m]);
  const ffnNorm = take(L * h.dim);
  for (const m of MATRICES.slice(4)) mats[m] = take(L * sizes[m]);
  const finalNorm = take(h.dim);
  take(h.seqLen * headSize); // freq_cis_real and freq_cis_imag: run.c recomputes RoPE
  const lmHead = h.tied ? tokenEmbedding : take(h.vocabSize * h.dim);
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < L; l++) {
    const layer = { attnNorm: attnNorm.subarray(l * h.dim, (l + 1) * h.dim), ffnNorm: ffnNorm.subarray(l * h.dim, (l + 1) * h.dim) } as LlamaLayerWeights;
    for (const m of MATRICES) layer[m] = mats[m]!.subarray(l * sizes[m], (l + 1) * sizes[m]);
    layers.push(layer);
  }
  return { config: toConfig(h), weights: { tokenEmbedding, layers, finalNorm, lmHead } };
}

function readV1Header(file: string, view: DataView): Header {
  const h = readHeader(file, view, 8, "v1/v2");
  const flag = view.getUint8(36);
  if (flag > 1) throw new InputError(file, undefined, "shared_classifier", `must be 0 or 1, got ${flag}`);
  return { ...h, tied: flag === 1 };
}

function loadV1(file: string, bytes: Uint8Array, view: DataView): LlamaModelData {
  const h = readV1Header(file, view);
  const sizes = matrixSizes(h);
  const L = h.nLayers;
  const floats = 2 * L * h.dim + h.dim + h.vocabSize * h.dim + L * Object.values(sizes).reduce((a, b) => a + b, 0) + (h.tied ? 0 : h.vocabSize * h.dim);
  expectSize(file, bytes.byteLength, 256 + floats * 4, h, "weights");
  let offset = 256;
  const take = (count: number): Float32Array => {
    const a = floatView(bytes, offset, count);
    offset += count * 4;
    return a;
  };
  const attnNorm = take(L * h.dim);
  const ffnNorm = take(L * h.dim);
  const finalNorm = take(h.dim);
  const tokenEmbedding = take(h.vocabSize * h.dim);
  const mats: Record<string, Float32Array> = {};
  for (const m of MATRICES) mats[m] = take(L * sizes[m]);
  const lmHead = h.tied ? tokenEmbedding : take(h.vocabSize * h.dim);
  return { config: toConfig(h), weights: assemble(h, sizes, attnNorm, ffnNorm, mats, tokenEmbedding, finalNorm, lmHead) };
}

function loadV2(file: string, bytes: Uint8Array, view: DataView): LlamaModelData {
  const h = readV1Header(file, view);
  const groupSize = view.getInt32(37, true);
  if (!(groupSize > 0)) throw new InputError(file, undefined, "group_size", `must be positive, got ${groupSize}`);
  const sizes = matrixSizes(h);
  const L = h.nLayers;
  const quantized = [h.vocabSize * h.dim, ...MATRICES.map((m) => L * sizes[m]), ...(h.tied ? [] : [h.vocabSize * h.dim])];
  for (const n of quantized) {
    if (n % groupSize !== 0) throw new InputError(file, undefined, "group_size", `a tensor of ${n} values is not a multiple of group_size ${groupSize}`);
  }
  const expected = 256 + (2 * L * h.dim + h.dim) * 4 + quantized.reduce((a, n) => a + n + (n / groupSize) * 4, 0);
  expectSize(file, bytes.byteLength, expected, h, "weights");
  let offset = 256;
  const take = (count: number): Float32Array => {
    const a = floatView(bytes, offset, count);
    offset += count * 4;
    return a;
  };
  const dequant = (n: number): Float32Array => {
    const q = new Int8Array(bytes.buffer, bytes.byteOffset + offset, n);
    offset += n;
    const scales = take(n / groupSize);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = q[i]! * scales[Math.floor(i / groupSize)]!;
    return out;
  };
  const attnNorm = take(L * h.dim);
  const ffnNorm = take(L * h.dim);
  const finalNorm = take(h.dim);
  const tokenEmbedding = dequant(h.vocabSize * h.dim);
  const mats: Record<string, Float32Array> = {};
  for (const m of MATRICES) mats[m] = dequant(L * sizes[m]);
  const lmHead = h.tied ? tokenEmbedding : dequant(h.vocabSize * h.dim);
  return { config: toConfig(h), weights: assemble(h, sizes, attnNorm, ffnNorm, mats, tokenEmbedding, finalNorm, lmHead) };
}

function assemble(
  h: Header,
  sizes: Record<string, number>,
  attnNorm: Float32Array,
  ffnNorm: Float32Array,
  mats: Record<string, Float32Array>,
  tokenEmbedding: Float32Array,
  finalNorm: Float32Array,
  lmHead: Float32Array,
): LlamaWeights {
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < h.nLayers; l++) {
    const layer = { attnNorm: attnNorm.subarray(l * h.dim, (l + 1) * h.dim), ffnNorm: ffnNorm.subarray(l * h.dim, (l + 1) * h.dim) } as LlamaLayerWeights;
    for (const m of MATRICES) layer[m] = mats[m]!.subarray(l * sizes[m]!, (l + 1) * sizes[m]!);
    layers.push(layer);
  }
  return { tokenEmbedding, layers, finalNorm, lmHead };
}

/**
 * Rows of a rotate-half (HF) q/k projection reordered into llama2.c's interleaved pairs: the inverse
 * of convert_llama_weights_to_hf's permute, so the file runs unchanged in run.c.
 */
function toInterleaved(w: Float32Array, heads: number, headSize: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headSize / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (const [src, dst] of [[j, 2 * j], [j + half, 2 * j + 1]] as const) {
        out.set(w.subarray((h * headSize + src) * cols, (h * headSize + src + 1) * cols), (h * headSize + dst) * cols);
      }
    }
  }
  return out;
}

/** Writes the model as a llama2.c v0 checkpoint (atomically), readable by run.c. */
export function saveLlama2c(path: string, model: LlamaModelData): void {
  const c = model.config;
  const w = model.weights;
  if (c.dim % c.nHeads !== 0 || c.nHeads % c.nKvHeads !== 0) throw new InputError(path, undefined, "config", "llama2.c needs dim divisible by n_heads and n_heads by n_kv_heads");
  if (Math.abs(c.normEps - 1e-5) > 1e-12 || c.ropeTheta !== 10000) {
    throw new InputError(path, undefined, "config", `run.c hard-codes norm eps 1e-5 and RoPE theta 10000; this model has ${c.normEps} and ${c.ropeTheta}`);
  }
  if (w.layers.some((l) => l.bq || l.bk || l.bv)) throw new InputError(path, undefined, "bq", "llama2.c has no attention biases; this model (Qwen2-style) cannot be saved as a .bin");
  const headSize = c.dim / c.nHeads;
  const tied = w.lmHead === w.tokenEmbedding;
  const chunks: Float32Array[] = [];
  const perLayer = (pick: (l: LlamaLayerWeights) => Float32Array): void => {
    for (const layer of w.layers) chunks.push(pick(layer));
  };
  const rope = (m: Float32Array, heads: number): Float32Array => (c.ropeStyle === "rotate-half" ? toInterleaved(m, heads, headSize, c.dim) : m);
  chunks.push(w.tokenEmbedding);
  perLayer((l) => l.attnNorm);
  perLayer((l) => rope(l.wq, c.nHeads));
  perLayer((l) => rope(l.wk, c.nKvHeads));
  perLayer((l) => l.wv);
  perLayer((l) => l.wo);
  perLayer((l) => l.ffnNorm);
  perLayer((l) => l.w1);
  perLayer((l) => l.w2);
  perLayer((l) => l.w3);
  chunks.push(w.finalNorm);
  // freq_cis tables: unused by run.c but part of the v0 layout (the untied classifier follows them).
  const half = headSize / 2;
  const real = new Float32Array(c.seqLen * half);
  const imag = new Float32Array(c.seqLen * half);
  for (let p = 0; p < c.seqLen; p++) {
    for (let j = 0; j < half; j++) {
      const angle = p / Math.pow(c.ropeTheta, (2 * j) / headSize);
      real[p * half + j] = Math.cos(angle);
      imag[p * half + j] = Math.sin(angle);
    }
  }
  chunks.push(real, imag);
  if (!tied) chunks.push(w.lmHead);
  const total = chunks.reduce((a, x) => a + x.length, 0);
  const out = new Uint8Array(28 + total * 4);
  const header = new DataView(out.buffer);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, tied ? c.vocabSize : -c.vocabSize, c.seqLen].forEach((v, i) => header.setInt32(4 * i, v, true));
  const floats = new Float32Array(out.buffer, 28, total);
  let offset = 0;
  for (const chunk of chunks) {
    floats.set(chunk, offset);
    offset += chunk.length;
  }
  writeFileAtomicSync(path, out);
}
