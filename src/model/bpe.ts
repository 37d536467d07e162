/**
 * A byte-fallback BPE tokenizer trained on our own text and saved in llama2.c's tokenizer.bin format,
 * so run.c, Llama2cTokenizer and the decoder read it unchanged. Layout of the vocabulary, as
 * SentencePiece exports for llama2.c: 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte pieces <0x00>..<0xFF>,
 * then single characters, then merges scored -rank (so run.c's "best score first" loop replays the
 * merges in training order).
 *
 * Encoding is defined as run.c's algorithm. BpeTokenizer gets the same ids faster by encoding
 * pre-split chunks (" word", " 7", " ,.", single whitespace) with a cache: training only merges inside
 * chunks, and the chunk rule never joins the two sides of a boundary, so no vocabulary piece spans one
 * and run.c's global merge loop cannot merge across it either (test/reader-bpe.test.ts checks equality).
 */
import { writeFileAtomicSync } from "../util/fs.ts";
import { bpeMerge, yieldToLoop } from "./bpe-merge.ts";
import { Llama2cTokenizer } from "./llama2c-tokenizer.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** Split digits, letters with their leading space, punctuation runs with theirs, and each other whitespace char alone. */
const CHUNK = / ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s/gu;
const SPECIALS = ["<unk>", "\n<s>\n", "\n</s>\n"];
const FIRST_CHAR_ID = 3 + 256;

export interface BpeTrainOptions {
  vocabSize: number;
  /** Characters seen fewer times than this fall back to bytes (default 30). */
  minCharCount?: number;
}

export interface BpeVocab {
  pieces: string[];
  scores: number[];
}

const chunksOf = (text: string): string[] => text.match(CHUNK) ?? [];

/**
 * Learns merges from `texts` (each is encoded with run.c's dummy-prefix space). Deterministic: ties
 * between equally frequent pairs go to the smaller (left id, right id).
 */
export function trainBpe(texts: Iterable<string>, options: BpeTrainOptions): BpeVocab {
  const minCharCount = options.minCharCount ?? 30;
  const wordCounts = new Map<string, number>();
  const charCounts = new Map<string, number>();
  for (const text of texts) {
    for (const chunk of chunksOf(" " + text)) {
      wordCounts.set(chunk, (wordCounts.get(chunk) ?? 0) + 1);
      for (const ch of chunk) charCounts.set(ch, (charCounts.get(ch) ?? 0) + 1);
    }
  }
  const pieces = [...SPECIALS];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const chars = [...charCounts].filter(([ch, n]) => n >= minCharCount || ch === " " || ch === "\n").sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([ch]) => ch);
  if (FIRST_CHAR_ID + chars.length >= options.vocabSize) throw new RangeError(`vocabSize ${options.vocabSize} leaves no room for merges after ${chars.length} characters`);
  const scores: number[] = pieces.map(() => 0);
  const idOf = new Map<string, number>();
  for (const ch of chars) {
    idOf.set(ch, pieces.length);
    pieces.push(ch);
    scores.push(-1e6);
  }
  // Words as symbol arrays; byte-fallback symbols (id < FIRST_CHAR_ID) never merge.
  const words: Int32Array[] = [];
  const counts: number[] = [];
  for (const [word, n] of wordCounts) {
    if (/^\s$/u.test(word)) continue; // single whitespace chunks never merge
    const ids: number[] = [];
    for (const ch of word) {
      const id = idOf.get(ch);
      if (id !== undefined) ids.push(id);
      else for (const byte of new TextEncoder().encode(ch)) ids.push(3 + byte);
    }
    if (ids.length > 1) {
      words.push(Int32Array.from(ids));
      counts.push(n);
    }
  }
  const key = (a: number, b: number): number => a * 65536 + b;
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addWord = (w: number, sign: number): void => {
    const s = words[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      if (s[i]! < FIRST_CHAR_ID || s[i + 1]! < FIRST_CHAR_ID) continue;
      const k = key(s[i]!, s[i + 1]!);
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + sign * counts[w]!);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(w);
      }
    }
  };
  words.forEach((_, w) => addWord(w, 1));
  let rank = 0;
  while (pieces.length < options.vocabSize) {
    let best = -1;
    let bestCount = 0;
    for (const [k, n] of pairCounts) if (n > bestCount || (n === bestCount && n > 0 && k < best)) [best, bestCount] = [k, n];
    if (best < 0 || bestCount < 2) break;
    const a = Math.floor(best / 65536);
    const b = best % 65536;
    const text = pieces[a]! + pieces[b]!;
    let merged = idOf.get(text);
    if (merged === undefined) {
      merged = pieces.length;
      idOf.set(text, merged);
      pieces.push(text);
      scores.push(-rank++);
    }
    for (const w of pairWords.get(best) ?? []) {
      const s = words[w]!;
      addWord(w, -1);
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(s[i]!);
      }
      words[w] = Int32Array.from(out);
      addWord(w, 1);
    }
    pairCounts.delete(best);
    pairWords.delete(best);
  }
  return { pieces, scores };
}

/** llama2.c tokenizer.bin bytes: int32 max_token_length, then per piece float32 score, int32 length, UTF-8 bytes. */
export function serializeBpe(vocab: BpeVocab): Uint8Array {
  const enc = new TextEncoder();
  const bytes = vocab.pieces.map((p) => enc.encode(p));
  const total = 4 + bytes.reduce((n, b) => n + 8 + b.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(...bytes.map((b) => b.length)), true);
  let at = 4;
  bytes.forEach((b, i) => {
    view.setFloat32(at, vocab.scores[i]!, true);
    view.setInt32(at + 4, b.length, true);
    out.set(b, at + 8);
    at += 8 + b.length;
  });
  return out;
}

export const saveBpe = (path: string, vocab: BpeVocab): void => writeFileAtomicSync(path, serializeBpe(vocab));

/** run.c's encoding of a tokenizer.bin vocabulary, computed per chunk with a cache. */
export class BpeTokenizer implements Tokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  private readonly ids = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  private readonly inner: Llama2cTokenizer;
  private readonly pieces: string[];

  constructor(inner: Llama2cTokenizer) {
    this.inner = inner;
    this.pieces = Array.from({ length: inner.vocabSize }, (_, id) => inner.piece(id));
    for (let id = inner.vocabSize - 1; id >= 0; id--) this.ids.set(this.pieces[id]!, id);
    if (!this.ids.has(" ")) throw new Error(`${inner.file}: the vocabulary has no " " piece, which run.c's dummy prefix needs`);
  }

  static load(path: string, vocabSize?: number): BpeTokenizer {
    return new BpeTokenizer(Llama2cTokenizer.load(path, vocabSize));
  }

  static fromVocab(vocab: BpeVocab): BpeTokenizer {
    const enc = new TextEncoder();
    const maxLen = Math.max(...vocab.pieces.map((p) => enc.encode(p).length));
    return new BpeTokenizer(new Llama2cTokenizer(vocab.pieces.map((p) => enc.encode(p)), Float32Array.from(vocab.scores), maxLen));
  }

  get vocabSize(): number {
    return this.inner.vocabSize;
  }

  /** The run.c-exact (slow on long text) reference encoder. */
  get reference(): Llama2cTokenizer {
    return this.inner;
  }

  piece(id: number): string {
    return this.inner.piece(id);
  }

  private encodeChunk(chunk: string): number[] {
    const hit = this.cache.get(chunk);
    if (hit) return hit;
    const tokens: number[] = [];
    for (const ch of chunk) {
      const id = this.ids.get(ch);
      if (id !== undefined) tokens.push(id);
      else for (const byte of new TextEncoder().encode(ch)) tokens.push(byte + 3);
    }
    // run.c's loop (best-scoring adjacent pair first, leftmost on ties), in O(n log n).
    const merged = bpeMerge(tokens, (a, b) => this.ids.get(this.pieces[a]! + this.pieces[b]!) ?? -1, this.inner.scores);
    // Words repeat; a long run of letters (a hostile prompt) is not worth keeping.
    if (this.cache.size < 200_000 && chunk.length <= 64) this.cache.set(chunk, merged);
    return merged;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const clean = text.includes("\0") ? text.slice(0, text.indexOf("\0")) : text;
    const out: number[] = [];
    if (opts.bos ?? true) out.push(this.bosId);
    if (clean.length > 0) for (const chunk of chunksOf(" " + clean)) for (const id of this.encodeChunk(chunk)) out.push(id);
    if (opts.eos ?? false) out.push(this.eosId);
    return out;
  }

  /** encode() with the event loop let run every `sliceMs` milliseconds (the same ids). */
  async encodeAsync(text: string, opts: { bos?: boolean; eos?: boolean } = {}, sliceMs = 4): Promise<number[]> {
    const clean = text.includes("\0") ? text.slice(0, text.indexOf("\0")) : text;
    const out: number[] = [];
    if (opts.bos ?? true) out.push(this.bosId);
    let deadline = performance.now() + sliceMs;
    if (clean.length > 0) {
      for (const chunk of chunksOf(" " + clean)) {
        if (performance.now() > deadline) {
          await yieldToLoop();
          deadline = performance.now() + sliceMs;
        }
        for (const id of this.encodeChunk(chunk)) out.push(id);
      }
    }
    if (opts.eos ?? false) out.push(this.eosId);
    return out;
  }

  /** Ids of `text` as it continues a prompt: no BOS and no dummy-prefix space (answers carry their own). */
  encodeContinuation(text: string): number[] {
    return chunksOf(text).flatMap((chunk) => this.encodeChunk(chunk));
  }

  decode(ids: number[], prev = -1): string {
    return this.inner.decode(ids, prev);
  }
}

/** Characters per token of `texts` (BOS excluded, the dummy-prefix space counted as a character). */
export function charsPerToken(tok: Tokenizer, texts: readonly string[]): number {
  let chars = 0;
  let tokens = 0;
  for (const t of texts) {
    chars += t.length;
    tokens += tok.encode(t, { bos: false }).length;
  }
  return chars / Math.max(1, tokens);
}

