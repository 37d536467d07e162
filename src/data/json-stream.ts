import { InputError } from "../util/errors.ts";
import { decodeUtf8 } from "./text-input.ts";

/**
 * A streaming splitter for a top-level JSON array of objects (HotpotQA's original layout: the
 * 540 MB train file is one array on one line). It scans bytes, tracking only nesting depth and
 * whether it is inside a string (with backslash escapes), and yields the text of one record at a
 * time, so memory stays at one chunk plus one record whatever the file size. The caller
 * JSON.parses each record. UTF-8 needs no special care: every byte of a multi-byte character
 * is >= 0x80 and can never look like a quote, bracket or brace.
 */

export interface RecordText {
  text: string;
  /** 0-based position of the record in the array. */
  index: number;
  /** Byte offset of the record's first byte in the file. */
  offset: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Names a record for an error message: its 1-based number and byte offset. */
export const recordName = (index: number, offset: number): string => `${index + 1} (byte ${offset})`;

export async function* splitJsonArray(chunks: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<RecordText> {
  let depth = 0; // 0: before '[' (or after ']'), 1: between records, >= 2: inside a record
  let inString = false;
  let escape = false;
  let closed = false;
  let expectComma = false;
  let index = 0;
  let recordOffset = 0;
  let parts: Uint8Array[] = [];
  let base = 0; // file offset of the current chunk
  let sawAny = false;

  const fail = (problem: string, at: number): never => {
    throw new InputError(file, `at byte ${at}`, undefined, problem);
  };

  for await (const chunk of chunks) {
    const n = chunk.length;
    let recordStart = depth >= 2 ? 0 : -1;
    let i = 0;
    while (i < n) {
      if (inString) {
        // Fast path: jump to the next quote, then count the backslashes before it.
        if (escape) {
          escape = false;
          i++;
          continue;
        }
        const q = chunk.indexOf(QUOTE, i);
        if (q === -1) {
          // The chunk ends inside the string; an odd run of trailing backslashes escapes the next byte.
          let k = n - 1;
          while (k >= i && chunk[k] === BACKSLASH) k--;
          escape = (n - 1 - k) % 2 === 1;
          i = n;
          break;
        }
        let k = q - 1;
        while (k >= i && chunk[k] === BACKSLASH) k--;
        const run = q - 1 - k;
        // A run reaching back to i may continue an escape carried over from earlier bytes of this string.
        if (run % 2 === 0) inString = false;
        i = q + 1;
        continue;
      }
      const c = chunk[i]!;
      if (depth >= 2) {
        if (c === QUOTE) inString = true;
        else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
        else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
          depth--;
          if (depth === 1) {
            const tail = chunk.subarray(recordStart, i + 1);
            const bytes = parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
            parts = [];
            recordStart = -1;
            expectComma = true;
            const text = decodeUtf8(bytes, file, undefined);
            yield { text, index: index++, offset: recordOffset };
          }
        }
        i++;
        continue;
      }
      if (!isSpace(c)) {
        sawAny = true;
        if (closed) fail("unexpected data after the closing ']' of the array", base + i);
        if (depth === 0) {
          if (c !== OPEN_BRACKET) fail(`expected a JSON array ('['), found ${JSON.stringify(String.fromCharCode(c))}`, base + i);
          depth = 1;
        } else if (c === COMMA) {
          if (!expectComma) fail("unexpected ','", base + i);
          expectComma = false;
        } else if (c === CLOSE_BRACKET) {
          depth = 0;
          closed = true;
        } else if (c === OPEN_BRACE) {
          if (expectComma) fail(`missing ',' before record ${index + 1}`, base + i);
          depth = 2;
          recordStart = i;
          recordOffset = base + i;
        } else {
          fail(`record ${index + 1} is not a JSON object`, base + i);
        }
      }
      i++;
    }
    if (recordStart >= 0) parts.push(chunk.subarray(recordStart));
    base += n;
  }
  if (!sawAny) throw new InputError(file, undefined, undefined, "file is empty");
  if (depth >= 2) throw new InputError(file, recordName(index, recordOffset), undefined, "file ends inside this record (truncated?)");
  if (!closed) throw new InputError(file, `at byte ${base}`, undefined, "file ends before the closing ']' of the array (truncated?)");
}
