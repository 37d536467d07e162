/**
 * run.c's decode(prev, token) for any tokenizer: the bytes one token prints when it follows `prev`
 * (a leading space dropped after BOS, "<0xNN>" as its byte). A llama2.c tokenizer answers itself; a
 * tokenizer.json gets a piece table built from its vocabulary: SentencePiece-style ("▁" for space,
 * byte fallback) or byte-level BPE (GPT-2's byte-to-unicode map), else each token decoded alone.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HfTokenizer } from "./hf-tokenizer.ts";
import { Llama2cTokenizer } from "./llama2c-tokenizer.ts";
import type { Tokenizer } from "./tokenizer.ts";

export type PieceDecoder = (prev: number, token: number) => Uint8Array;

const utf8 = new TextEncoder();

/** GPT-2's bytes_to_unicode, inverted: the byte each byte-level character stands for. */
function byteLevelDecoder(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const chars = [...bytes];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + n++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCodePoint(chars[i]!), b]));
}

const mentions = (value: unknown, type: string): boolean => JSON.stringify(value ?? null).includes(`"type":"${type}"`);

/** The piece bytes of every id of a tokenizer.json. */
export function tokenizerJsonPieces(json: Record<string, unknown>, fallback?: (id: number) => string): Uint8Array[] {
  const model = (json.model ?? {}) as { vocab?: Record<string, number>; byte_fallback?: boolean };
  const added = (json.added_tokens ?? []) as { id: number; content: string }[];
  const pieces: Uint8Array[] = [];
  const byteLevel = mentions(json.decoder, "ByteLevel") || mentions(json.pre_tokenizer, "ByteLevel");
  const sentencePiece = !byteLevel && (model.byte_fallback === true || JSON.stringify(json.decoder ?? null).includes("\u2581") || mentions(json.pre_tokenizer, "Metaspace"));
  const table = byteLevel ? byteLevelDecoder() : undefined;
  for (const [token, id] of Object.entries(model.vocab ?? {})) {
    let bytes: Uint8Array;
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    if (sentencePiece && byte) bytes = Uint8Array.of(parseInt(byte[1]!, 16));
    else if (sentencePiece) bytes = utf8.encode(token.replaceAll("\u2581", " "));
    else if (table) bytes = Uint8Array.from([...token].map((c) => table.get(c) ?? 0x3f));
    else bytes = utf8.encode(fallback ? fallback(id) : token);
    pieces[id] = bytes;
  }
  for (const t of added) pieces[t.id] = utf8.encode(t.content);
  return pieces;
}

/** The piece decoder for an opened model's tokenizer (tokenizerPath: the tokenizer.json for an HF one). */
export function pieceDecoder(tokenizer: Tokenizer, tokenizerPath?: string): PieceDecoder {
  if (tokenizer instanceof Llama2cTokenizer) return (prev, token) => tokenizer.decodePiece(prev, token);
  let pieces: Uint8Array[] = [];
  if (tokenizer instanceof HfTokenizer) {
    const path = tokenizerPath && tokenizerPath.endsWith(".json") ? tokenizerPath : tokenizerPath ? join(tokenizerPath, "tokenizer.json") : undefined;
    const json = path ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>) : {};
    pieces = tokenizerJsonPieces(json, (id) => tokenizer.decode([id]));
  }
  const bos = tokenizer.bosId;
  return (prev, token) => {
    const piece = pieces[token] ?? utf8.encode(tokenizer.decode([token]));
    return prev === bos && piece[0] === 0x20 ? piece.subarray(1) : piece;
  };
}
