import { createReadStream, existsSync, readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { readFile, stat } from "node:fs/promises";
import { InputError } from "../util/errors.ts";

/**
 * Strict text input: every byte must be UTF-8 (TextDecoder with fatal: true), and every failure
 * is an InputError naming the file and, where there is one, the line.
 */

const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** Offset of the first byte that breaks UTF-8, or -1. Used only to point at the bad byte. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    if (i + need >= bytes.length) return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Decodes bytes as UTF-8 or throws an InputError naming the line and byte of the first bad byte. */
export function decodeUtf8(bytes: Uint8Array, file: string, line?: number): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const before = bytes.subarray(0, Math.max(0, at));
    let lineNo = line;
    let column = at;
    if (lineNo === undefined) {
      lineNo = 1;
      let lastNl = -1;
      for (let i = 0; i < before.length; i++) if (before[i] === 0x0a) [lineNo, lastNl] = [lineNo + 1, i];
      column = at - lastNl - 1;
    }
    const hex = at >= 0 ? bytes[at]!.toString(16).padStart(2, "0") : "??";
    throw new InputError(file, lineNo, undefined, `not valid UTF-8 (byte 0x${hex} at byte ${column + 1} of the line)`);
  }
}

/** Reads a whole (small) file as strict UTF-8; an empty or blank file is an error. */
export async function readTextStrict(file: string): Promise<string> {
  const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(file, undefined, undefined, error.code === "ENOENT" ? "no such file" : error.message);
  });
  const text = decodeUtf8(bytes, file);
  if (text.trim() === "") throw new InputError(file, undefined, undefined, "file is empty");
  return text;
}

/** Reads a whole file as strict UTF-8, gunzipped first when its name ends in .gz (the shipped bAbI and SQuAD files). */
export function readTextMaybeGzipSync(file: string): string {
  if (!existsSync(file)) throw new InputError(file, undefined, undefined, "no such file");
  let bytes: Uint8Array = readFileSync(file);
  if (file.endsWith(".gz")) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new InputError(file, undefined, undefined, `not a gzip file (${(error as Error).message})`);
    }
  }
  return decodeUtf8(bytes, file);
}

/** Byte chunks of a file, streamed (bounded memory). */
export async function* fileChunks(file: string, chunkSize = 1 << 20): AsyncGenerator<Uint8Array> {
  const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(file, undefined, undefined, error.code === "ENOENT" ? "no such file" : error.message);
  });
  if (info.size === 0) throw new InputError(file, undefined, undefined, "file is empty");
  for await (const chunk of createReadStream(file, { highWaterMark: chunkSize })) yield chunk as Buffer;
}

/**
 * Splits a byte stream into lines (LF, with an optional CR stripped) and decodes each strictly,
 * so a bad byte is reported with its line number. Blank lines are yielded too; callers skip them.
 */
export async function* streamLines(chunks: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<{ text: string; line: number }> {
  let pending: Uint8Array[] = [];
  let line = 0;
  const emit = (parts: Uint8Array[]): { text: string; line: number } => {
    line++;
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    return { text: decodeUtf8(bytes, file, line), line };
  };
  for await (const chunk of chunks) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      pending.push(chunk.subarray(start, nl));
      yield emit(pending);
      pending = [];
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) yield emit(pending);
}

/** A short quote of a bad value for error messages. */
export const describeValue = (value: unknown): string => {
  if (value === undefined) return "missing";
  const text = JSON.stringify(value) ?? String(value);
  return `${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value} ${text.length > 60 ? text.slice(0, 57) + "..." : text}`;
};

/** JSON Lines with a per-line validator; blank lines skipped; errors name the line. */
export function parseJsonlRows<T>(text: string, file: string, validate: (raw: unknown, file: string, line: number) => T): T[] {
  const out: T[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (error) {
      throw new InputError(file, i + 1, undefined, `not valid JSON (truncated?): ${(error as Error).message}`);
    }
    out.push(validate(raw, file, i + 1));
  }
  if (out.length === 0) throw new InputError(file, undefined, undefined, "file is empty");
  return out;
}
