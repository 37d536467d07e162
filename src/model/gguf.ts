/**
 * GGUF (version 3), the single-file format of llama.cpp, Ollama and LM Studio: our Llama models with
 * their llama2.c (SentencePiece-style) tokenizer, in F32 or F16, written from the format's published
 * specification (ggml docs/gguf.md) and gguf-py's key and tensor names.
 *
 * Layout: "GGUF", uint32 version 3, uint64 tensor count, uint64 metadata count; metadata as (string key,
 * uint32 type, value); tensor infos as (name, uint32 n_dims, uint64 ne[n_dims] innermost first, uint32
 * ggml type, uint64 offset into the data section); padding to general.alignment (32); the tensors,
 * each starting at a multiple of 32. Strings are uint64 length + UTF-8 bytes; all little-endian.
 *
 * Model: architecture "llama" with llama.cpp's names (token_embd, blk.N.attn_q, ..., output_norm,
 * output; output is left out when the head is tied to the embedding, as llama.cpp then reuses
 * token_embd). A PyTorch [out, in] matrix is ne = [in, out] with the same bytes. llama.cpp's llama
 * RoPE pairs adjacent dimensions (llama2.c's interleaved layout), so the q and k rows of a rotate-half
 * (Hugging Face) model are permuted back, as convert_hf_to_gguf.py does. In F16 files the matrices
 * and the embedding are F16 and the norms stay F32 (as llama.cpp's converter writes them).
 *
 * Tokenizer: tokenizer.ggml.model "llama" (SentencePiece): pieces with spaces as U+2581, the piece
 * scores (merge priorities), token types (unknown, control for <s> </s>, byte for <0xNN>, normal), BOS
 * added, a dummy-prefix space: the same encoding run.c (and our Llama2cTokenizer) gives.
 */
import { closeSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { Llama2cTokenizer } from "./llama2c-tokenizer.ts";
import { f16ToF32, f32ToF16 } from "./safetensors.ts";
import type { LlamaConfig, LlamaModelData } from "./types.ts";

const MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const VERSION = 3;
const ALIGNMENT = 32;

/** GGUF metadata value types. */
const T = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;
/** ggml tensor types used here. */
export const GGML_F32 = 0;
export const GGML_F16 = 1;
/** llama_ftype: general.file_type. */
const FILE_TYPE = { F32: 0, F16: 1 } as const;
/** llama.cpp token types. */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const;

type Meta =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "str"; value: string | Uint8Array }
  | { type: "str[]"; value: (string | Uint8Array)[] }
  | { type: "f32[]"; value: ArrayLike<number> }
  | { type: "i32[]"; value: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  /** ggml ne: innermost (contiguous) dimension first. */
  ne: number[];
  type: typeof GGML_F32 | typeof GGML_F16;
  data: Float32Array;
}

const utf8 = new TextEncoder();
const SPACE = utf8.encode("\u2581");

/** Appends little-endian values to growing byte chunks. */
class Writer {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private at = 0;
  length = 0;
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.flushBuf();
    if (n > this.buf.length) {
      this.buf = new Uint8Array(n);
      this.view = new DataView(this.buf.buffer);
    }
  }
  private flushBuf(): void {
    if (this.at > 0) this.chunks.push(this.buf.slice(0, this.at));
    this.at = 0;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.at, v, true);
    this.at += 4;
    this.length += 4;
  }
  i32(v: number): void {
    this.room(4);
    this.view.setInt32(this.at, v, true);
    this.at += 4;
    this.length += 4;
  }
  u64(v: number): void {
    this.room(8);
    this.view.setBigUint64(this.at, BigInt(v), true);
    this.at += 8;
    this.length += 8;
  }
  f32(v: number): void {
    this.room(4);
    this.view.setFloat32(this.at, v, true);
    this.at += 4;
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    this.length += b.length;
  }
  str(s: string | Uint8Array): void {
    const b = typeof s === "string" ? utf8.encode(s) : s;
    this.u64(b.length);
    this.bytes(b);
  }
  pad(): void {
    const n = (ALIGNMENT - (this.length % ALIGNMENT)) % ALIGNMENT;
    this.bytes(new Uint8Array(n));
  }
  take(): Uint8Array[] {
    this.flushBuf();
    const c = this.chunks;
    this.chunks = [];
    return c;
  }
}

function writeMeta(w: Writer, key: string, m: Meta): void {
  w.str(key);
  switch (m.type) {
    case "u32": w.u32(T.UINT32); w.u32(m.value); break;
    case "i32": w.u32(T.INT32); w.i32(m.value); break;
    case "f32": w.u32(T.FLOAT32); w.f32(m.value); break;
    case "bool": w.u32(T.BOOL); w.bytes(new Uint8Array([m.value ? 1 : 0])); break;
    case "str": w.u32(T.STRING); w.str(m.value); break;
    case "str[]": w.u32(T.ARRAY); w.u32(T.STRING); w.u64(m.value.length); for (const s of m.value) w.str(s); break;
    case "f32[]": w.u32(T.ARRAY); w.u32(T.FLOAT32); w.u64(m.value.length); for (let i = 0; i < m.value.length; i++) w.f32(m.value[i]!); break;
    case "i32[]": w.u32(T.ARRAY); w.u32(T.INT32); w.u64(m.value.length); for (let i = 0; i < m.value.length; i++) w.i32(m.value[i]!); break;
  }
}

/** Rotate-half (Hugging Face) q/k rows back to llama.cpp's interleaved pairs (convert_hf_to_gguf's permute). */
export function rotateHalfToInterleaved(w: Float32Array, heads: number, headDim: number, inDim: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < headDim / 2; i++)
      for (let two = 0; two < 2; two++) {
        const src = h * headDim + two * (headDim / 2) + i;
        const dst = h * headDim + 2 * i + two;
        out.set(w.subarray(src * inDim, (src + 1) * inDim), dst * inDim);
      }
  return out;
}

/** The tokenizer metadata of a llama2.c tokenizer (llama.cpp's SentencePiece "llama" vocabulary). */
function tokenizerMeta(tok: Llama2cTokenizer): [string, Meta][] {
  const tokens: Uint8Array[] = [];
  const types: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (id === 0) {
      tokens.push(utf8.encode("<unk>"));
      types.push(TOKEN_TYPE.UNKNOWN);
      continue;
    }
    if (id === tok.bosId || id === tok.eosId) {
      tokens.push(utf8.encode(id === tok.bosId ? "<s>" : "</s>"));
      types.push(TOKEN_TYPE.CONTROL);
      continue;
    }
    const raw = tok.pieceBytes(id);
    const text = new TextDecoder().decode(raw);
    if (/^<0x[0-9A-Fa-f]{2}>$/.test(text)) {
      tokens.push(raw);
      types.push(TOKEN_TYPE.BYTE);
      continue;
    }
    // Spaces as U+2581, byte for byte otherwise.
    const parts: number[] = [];
    for (const b of raw) {
      if (b === 0x20) parts.push(...SPACE);
      else parts.push(b);
    }
    tokens.push(Uint8Array.from(parts));
    types.push(TOKEN_TYPE.NORMAL);
  }
  return [
    ["tokenizer.ggml.model", { type: "str", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "str[]", value: tokens }],
    ["tokenizer.ggml.scores", { type: "f32[]", value: tok.scores.subarray(0, tok.vocabSize) }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: types }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: tok.bosId }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: tok.eosId }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: 0 }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
    ["tokenizer.ggml.add_space_prefix", { type: "bool", value: true }],
  ];
}

/** The model's tensors under llama.cpp's names, in the order its converter writes them. */
export function ggufTensors(model: LlamaModelData, dtype: "F32" | "F16" = "F32"): GgufTensor[] {
  const c = model.config;
  const w = model.weights;
  const hd = c.dim / c.nHeads;
  const kv = hd * c.nKvHeads;
  const mat = dtype === "F16" ? GGML_F16 : GGML_F32;
  const qk = (a: Float32Array, heads: number) => (c.ropeStyle === "rotate-half" ? rotateHalfToInterleaved(a, heads, hd, c.dim) : a);
  const out: GgufTensor[] = [{ name: "token_embd.weight", ne: [c.dim, c.vocabSize], type: mat, data: w.tokenEmbedding }];
  w.layers.forEach((l, i) => {
    if (l.bq || l.bk || l.bv) throw new RangeError("GGUF export covers Llama models without attention biases (this model has q/k/v biases)");
    const p = `blk.${i}.`;
    out.push(
      { name: `${p}attn_norm.weight`, ne: [c.dim], type: GGML_F32, data: l.attnNorm },
      { name: `${p}attn_q.weight`, ne: [c.dim, c.dim], type: mat, data: qk(l.wq, c.nHeads) },
      { name: `${p}attn_k.weight`, ne: [c.dim, kv], type: mat, data: qk(l.wk, c.nKvHeads) },
      { name: `${p}attn_v.weight`, ne: [c.dim, kv], type: mat, data: l.wv },
      { name: `${p}attn_output.weight`, ne: [c.dim, c.dim], type: mat, data: l.wo },
      { name: `${p}ffn_norm.weight`, ne: [c.dim], type: GGML_F32, data: l.ffnNorm },
      { name: `${p}ffn_gate.weight`, ne: [c.dim, c.hiddenDim], type: mat, data: l.w1 },
      { name: `${p}ffn_down.weight`, ne: [c.hiddenDim, c.dim], type: mat, data: l.w2 },
      { name: `${p}ffn_up.weight`, ne: [c.dim, c.hiddenDim], type: mat, data: l.w3 },
    );
  });
  out.push({ name: "output_norm.weight", ne: [c.dim], type: GGML_F32, data: w.finalNorm });
  if (!c.tiedEmbeddings && w.lmHead !== w.tokenEmbedding) out.push({ name: "output.weight", ne: [c.dim, c.vocabSize], type: mat, data: w.lmHead });
  return out;
}

function modelMeta(c: LlamaConfig, name: string, dtype: "F32" | "F16"): [string, Meta][] {
  return [
    ["general.architecture", { type: "str", value: "llama" }],
    ["general.name", { type: "str", value: name }],
    ["general.file_type", { type: "u32", value: FILE_TYPE[dtype] }],
    ["general.alignment", { type: "u32", value: ALIGNMENT }],
    ["llama.vocab_size", { type: "u32", value: c.vocabSize }],
    ["llama.context_length", { type: "u32", value: c.seqLen }],
    ["llama.embedding_length", { type: "u32", value: c.dim }],
    ["llama.block_count", { type: "u32", value: c.nLayers }],
    ["llama.feed_forward_length", { type: "u32", value: c.hiddenDim }],
    ["llama.rope.dimension_count", { type: "u32", value: c.dim / c.nHeads }],
    ["llama.rope.freq_base", { type: "f32", value: c.ropeTheta }],
    ["llama.attention.head_count", { type: "u32", value: c.nHeads }],
    ["llama.attention.head_count_kv", { type: "u32", value: c.nKvHeads }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: c.normEps }],
  ];
}

export interface GgufExportOptions {
  dtype?: "F32" | "F16";
  /** general.name (default "ktu-llama"). */
  name?: string;
}

/** Writes `model` with `tokenizer` as a GGUF file at `path` (via a temporary file renamed into place). */
export function writeGguf(path: string, model: LlamaModelData, tokenizer: Llama2cTokenizer, options: GgufExportOptions = {}): { bytes: number; tensors: number } {
  const dtype = options.dtype ?? "F32";
  const c = model.config;
  if (tokenizer.vocabSize !== c.vocabSize) throw new RangeError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${c.vocabSize}`);
  const tensors = ggufTensors(model, dtype);
  const meta = [...modelMeta(c, options.name ?? "ktu-llama", dtype), ...tokenizerMeta(tokenizer)];
  const w = new Writer();
  w.u32(MAGIC);
  w.u32(VERSION);
  w.u64(tensors.length);
  w.u64(meta.length);
  for (const [k, m] of meta) writeMeta(w, k, m);
  let offset = 0;
  const sizes = tensors.map((t) => t.data.length * (t.type === GGML_F16 ? 2 : 4));
  tensors.forEach((t, i) => {
    const count = t.ne.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new RangeError(`${t.name}: ${t.data.length} values for shape [${t.ne.join(", ")}]`);
    w.str(t.name);
    w.u32(t.ne.length);
    for (const n of t.ne) w.u64(n);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(sizes[i]! / ALIGNMENT) * ALIGNMENT;
  });
  w.pad();
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  let total = 0;
  const put = (chunks: Uint8Array[]) => {
    for (const b of chunks) {
      writeSync(fd, b);
      total += b.length;
    }
  };
  try {
    put(w.take());
    for (const [i, t] of tensors.entries()) {
      const bytes = sizes[i]!;
      const buf = new Uint8Array(Math.ceil(bytes / ALIGNMENT) * ALIGNMENT);
      if (t.type === GGML_F32) buf.set(new Uint8Array(t.data.buffer, t.data.byteOffset, bytes));
      else {
        const h = new Uint16Array(buf.buffer, 0, t.data.length);
        for (let k = 0; k < t.data.length; k++) h[k] = f32ToF16(t.data[k]!);
      }
      put([buf]);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return { bytes: total, tensors: tensors.length };
}

export interface GgufFile {
  version: number;
  metadata: Map<string, unknown>;
  tensors: { name: string; ne: number[]; type: number; data: Float32Array }[];
}

/** Reads a GGUF file of F32/F16 tensors (what writeGguf writes), for checks; values widened to float32. */
export function readGguf(path: string): GgufFile {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const u32 = () => ((at += 4), view.getUint32(at - 4, true));
  const u64 = () => ((at += 8), Number(view.getBigUint64(at - 8, true)));
  const str = () => {
    const n = u64();
    at += n;
    return new TextDecoder().decode(bytes.subarray(at - n, at));
  };
  const value = (type: number): unknown => {
    switch (type) {
      case T.UINT8: return view.getUint8((at += 1) - 1);
      case T.INT8: return view.getInt8((at += 1) - 1);
      case T.UINT16: return view.getUint16((at += 2) - 2, true);
      case T.INT16: return view.getInt16((at += 2) - 2, true);
      case T.UINT32: return u32();
      case T.INT32: return view.getInt32((at += 4) - 4, true);
      case T.FLOAT32: return view.getFloat32((at += 4) - 4, true);
      case T.BOOL: return view.getUint8((at += 1) - 1) !== 0;
      case T.STRING: return str();
      case T.UINT64: return u64();
      case T.INT64: return Number(view.getBigInt64((at += 8) - 8, true));
      case T.FLOAT64: return view.getFloat64((at += 8) - 8, true);
      case T.ARRAY: {
        const et = u32();
        const n = u64();
        return Array.from({ length: n }, () => value(et));
      }
      default: throw new RangeError(`unknown GGUF value type ${type} at byte ${at}`);
    }
  };
  if (u32() !== MAGIC) throw new RangeError(`${path} is not a GGUF file`);
  const version = u32();
  const nt = u64();
  const nm = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < nm; i++) {
    const k = str();
    metadata.set(k, value(u32()));
  }
  const infos = Array.from({ length: nt }, () => {
    const name = str();
    const nd = u32();
    const ne = Array.from({ length: nd }, () => u64());
    return { name, ne, type: u32(), offset: u64() };
  });
  const align = Number(metadata.get("general.alignment") ?? ALIGNMENT);
  const base = Math.ceil(at / align) * align;
  const tensors = infos.map((t) => {
    const n = t.ne.reduce((a, b) => a * b, 1);
    const start = base + t.offset;
    const data = new Float32Array(n);
    if (t.type === GGML_F32) for (let i = 0; i < n; i++) data[i] = view.getFloat32(start + 4 * i, true);
    else if (t.type === GGML_F16) for (let i = 0; i < n; i++) data[i] = f16ToF32(view.getUint16(start + 2 * i, true));
    else throw new RangeError(`${t.name}: ggml type ${t.type} is not read here (F32 and F16 only)`);
    return { name: t.name, ne: t.ne, type: t.type, data };
  });
  return { version, metadata, tensors };
}

/** The model as llama.cpp reads a GGUF of it: weights rounded through F16 where the file stores F16. */
export function roundLikeGguf(model: LlamaModelData, dtype: "F32" | "F16"): LlamaModelData {
  if (dtype === "F32") return model;
  const r = (a: Float32Array) => a.map((v) => f16ToF32(f32ToF16(v)));
  const w = model.weights;
  const tokenEmbedding = r(w.tokenEmbedding);
  return {
    config: model.config,
    weights: {
      tokenEmbedding,
      layers: w.layers.map((l) => ({ ...l, wq: r(l.wq), wk: r(l.wk), wv: r(l.wv), wo: r(l.wo), w1: r(l.w1), w2: r(l.w2), w3: r(l.w3) })),
      finalNorm: w.finalNorm,
      lmHead: w.lmHead === w.tokenEmbedding ? tokenEmbedding : r(w.lmHead),
    },
  };
}
