/**
 * The llama2.c tokenizer (.bin: int32 max_token_length, then per id float32 score, int32 len, len
 * bytes), with encode and decode ported from run.c line for line so that ids and printed bytes match
 * run.c exactly (dummy-prefix space, byte fallback at id byte+3, merges by best score, leftmost first).
 */
import { readFileSync } from "node:fs";
import { InputError } from "../util/errors.ts";
import { BpeMerge, yieldToLoop } from "./bpe-merge.ts";
import type { Tokenizer } from "./tokenizer.ts";

const BYTE_PIECE = /^<0x\s*([0-9A-Fa-f]{1,2})/;
const utf8 = new TextEncoder();
/** Byte strings as latin1 JS strings: one char per byte, so map keys compare like strcmp. */
const latin1 = new TextDecoder("latin1");
const toKey = (bytes: Uint8Array): string => {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
};

export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  private readonly ids = new Map<string, number>();
  /** Pieces truncated at the first NUL, as run.c's C strings are. */
  private readonly pieces: Uint8Array[];
  private readonly keys: string[];
  private readonly decoded: Uint8Array[][];

  constructor(
    pieces: Uint8Array[],
    readonly scores: Float32Array,
    readonly maxTokenLength: number,
    readonly file = "<memory>",
  ) {
    this.pieces = pieces.map((p) => {
      const nul = p.indexOf(0);
      return nul < 0 ? p : p.subarray(0, nul);
    });
    this.keys = this.pieces.map(toKey);
    // bsearch over duplicates may return any; the first id is as good and deterministic.
    this.keys.forEach((k, i) => {
      if (!this.ids.has(k)) this.ids.set(k, i);
    });
    this.decoded = [this.pieces.map((p) => decodePieceOf(p, false)), this.pieces.map((p) => decodePieceOf(p, true))];
  }

  /**
   * Reads a tokenizer .bin. The file does not store its size, so `vocabSize` (from the model) says
   * how many entries to read, as run.c does; without it every entry up to the end is read. A file
   * with fewer or more entries than the model's vocabulary is rejected: the ids would not line up.
   */
  static load(path: string, vocabSize?: number): Llama2cTokenizer {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      throw new InputError(path, undefined, undefined, `cannot read llama2.c tokenizer: ${(error as Error).message}`, { cause: error });
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < 4) throw new InputError(path, undefined, "max_token_length", "file too short for a llama2.c tokenizer");
    const maxTokenLength = view.getInt32(0, true);
    if (!(maxTokenLength > 0 && maxTokenLength < 1 << 16)) {
      throw new InputError(path, undefined, "max_token_length", `got ${maxTokenLength}; not a llama2.c tokenizer file?`);
    }
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let offset = 4;
    while (offset < bytes.length && (vocabSize === undefined || pieces.length < vocabSize)) {
      const id = pieces.length;
      if (offset + 8 > bytes.length) throw new InputError(path, `token ${id}`, "len", `truncated at byte ${offset}`);
      scores.push(view.getFloat32(offset, true));
      const len = view.getInt32(offset + 4, true);
      offset += 8;
      if (len < 0 || offset + len > bytes.length) throw new InputError(path, `token ${id}`, "len", `length ${len} runs past the end of the file (${bytes.length} bytes)`);
      pieces.push(new Uint8Array(bytes.subarray(offset, offset + len)));
      offset += len;
    }
    if (vocabSize !== undefined && (pieces.length < vocabSize || offset < bytes.length)) {
      const more = offset < bytes.length ? `more than ${vocabSize}` : `${pieces.length}`;
      throw new InputError(path, undefined, "vocab_size", `the tokenizer has ${more} tokens but the model's vocab_size is ${vocabSize}; they do not belong together`);
    }
    if (pieces.length < 3) throw new InputError(path, undefined, "vocab_size", `only ${pieces.length} tokens; need at least <unk>, <s>, </s>`);
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength, path);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** The raw vocabulary entry of `id` as bytes (e.g. " the", "<0x0A>"). */
  pieceBytes(id: number): Uint8Array {
    return this.pieces[id] ?? new Uint8Array(0);
  }

  /** The raw vocabulary entry of `id` as text (byte tokens stay "<0xNN>"). */
  piece(id: number): string {
    return new TextDecoder().decode(this.pieceBytes(id));
  }

  /** run.c's str_lookup. */
  lookup(bytes: Uint8Array | string): number {
    return this.ids.get(typeof bytes === "string" ? bytes : toKey(bytes)) ?? -1;
  }

  /** run.c's encode(t, text, bos, eos): the same ids for every input, including its quirks. */
  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const steps = this.startEncode(text, opts);
    let step = steps.next();
    while (!step.done) step = steps.next();
    const merge = step.value;
    merge.run();
    return this.finishEncode(merge, opts);
  }

  /**
   * encode() in slices of about `sliceMs` milliseconds with the event loop let run between them, so
   * that one long prompt does not stall a server's other requests. The same ids as encode().
   */
  async encodeAsync(text: string, opts: { bos?: boolean; eos?: boolean } = {}, sliceMs = 4): Promise<number[]> {
    let deadline = performance.now() + sliceMs;
    const steps = this.startEncode(text, opts);
    let step = steps.next();
    while (!step.done) {
      if (performance.now() > deadline) {
        await yieldToLoop();
        deadline = performance.now() + sliceMs;
      }
      step = steps.next();
    }
    const merge = step.value;
    while (!merge.run(deadline)) {
      await yieldToLoop();
      deadline = performance.now() + sliceMs;
    }
    return this.finishEncode(merge, opts);
  }

  /** run.c's first pass (BOS, the dummy-prefix space, one token per UTF-8 character or its bytes), pausing every 4096 bytes. */
  private *startEncode(text: string, opts: { bos?: boolean }): Generator<void, BpeMerge> {
    const all = utf8.encode(text);
    // A C string ends at its first NUL.
    const nul = all.indexOf(0);
    const bytes = nul < 0 ? all : all.subarray(0, nul);
    const tokens: number[] = [];
    if (opts.bos ?? true) tokens.push(1);
    if (bytes.length > 0) tokens.push(this.lookup(" "));
    let buf = "";
    for (let c = 0; c < bytes.length; c++) {
      if ((c & 4095) === 4095) yield;
      const byte = bytes[c]!;
      if ((byte & 0xc0) !== 0x80) buf = "";
      buf += String.fromCharCode(byte);
      const next = c + 1 < bytes.length ? bytes[c + 1]! : 0;
      if ((next & 0xc0) === 0x80 && buf.length < 4) continue;
      const id = this.lookup(buf);
      if (id !== -1) tokens.push(id);
      else for (let i = 0; i < buf.length; i++) tokens.push(buf.charCodeAt(i) + 3);
      buf = "";
    }
    // run.c's merge loop (best score wins, leftmost on ties, float32 comparison against -1e10), in O(n log n).
    return new BpeMerge(tokens, this.pairOf, this.scores);
  }

  /** The id of piece a + piece b (or -1), remembered by number: long prompts repeat the same pairs. */
  private readonly pairs = new Map<number, number>();
  private readonly pairOf = (a: number, b: number): number => {
    const key = a * this.pieces.length + b;
    let id = this.pairs.get(key);
    if (id === undefined) {
      if (this.pairs.size >= 1 << 20) this.pairs.clear();
      id = this.lookup(this.keys[a]! + this.keys[b]!);
      this.pairs.set(key, id);
    }
    return id;
  };

  private finishEncode(merge: BpeMerge, opts: { eos?: boolean }): number[] {
    const tokens = merge.result();
    if (opts.eos ?? false) tokens.push(2);
    return tokens;
  }

  /** run.c's decode(prev, token): the piece's bytes, leading space dropped after BOS, "<0xNN>" as the byte. */
  decodePiece(prev: number, token: number): Uint8Array {
    const set = this.decoded[prev === 1 ? 1 : 0]!;
    return set[token] ?? new Uint8Array(0);
  }

  /** The bytes of `ids` as run.c would emit them (BOS and EOS left out), starting after `prev`. */
  decodeBytes(ids: number[], prev = -1): Uint8Array {
    const parts: Uint8Array[] = [];
    let length = 0;
    for (const id of ids) {
      if (id !== this.bosId && id !== this.eosId) {
        const piece = this.decodePiece(prev, id);
        parts.push(piece);
        length += piece.length;
      }
      prev = id;
    }
    const out = new Uint8Array(length);
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  }

  decode(ids: number[], prev = -1): string {
    return new TextDecoder().decode(this.decodeBytes(ids, prev));
  }
}

function decodePieceOf(piece: Uint8Array, afterBos: boolean): Uint8Array {
  let p = piece;
  if (afterBos && p[0] === 0x20) p = p.subarray(1);
  const m = BYTE_PIECE.exec(latin1.decode(p));
  if (m) return Uint8Array.of(parseInt(m[1]!, 16));
  return p;
}

/** run.c's safe_printf: a single-byte piece prints only if it is printable ASCII or whitespace. */
export function printablePiece(piece: Uint8Array): Uint8Array {
  if (piece.length === 1) {
    const b = piece[0]!;
    const isprint = b >= 0x20 && b <= 0x7e;
    const isspace = b === 0x20 || (b >= 0x09 && b <= 0x0d);
    if (!isprint && !isspace) return new Uint8Array(0);
  }
  return piece;
}
