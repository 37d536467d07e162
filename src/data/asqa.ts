import { InputError } from "../util/errors.ts";
import { decodeUtf8, describeValue, readTextStrict } from "./text-input.ts";
import { readFile } from "node:fs/promises";

/**
 * ASQA reader for both published layouts:
 * - "original": ASQA.json, `{"train": {sample_id: item}, "dev": {...}}`, `wikipages` as a
 *   `{"0": {title, url}}` dict, the sample id only as the key;
 * - "hf-jsonl": Hugging Face `din0s/asqa` rows, one per line, `sample_id` inside the row and
 *   `wikipages` as a list. A JSON Lines file holds one split, so `split` does not select there.
 * Items are normalised to one shape; only the fields the builders need are validated.
 */

export interface AsqaQaPair {
  context: string;
  question: string;
  short_answers: string[];
  wikipage: string | null;
}

export interface AsqaItem {
  sample_id: string;
  ambiguous_question: string;
  qa_pairs: AsqaQaPair[];
  wikipages: { title: string; url: string }[];
}

export type AsqaLayout = "original" | "hf-jsonl";
export type AsqaSplit = "train" | "dev";

export interface AsqaReadOptions {
  /** Which split of an original ASQA.json (default "train", as the paper). */
  split?: AsqaSplit;
  /** Skip and count bad records instead of failing on the first one. */
  skipBad?: boolean;
}

export interface AsqaReadResult {
  file: string;
  layout: AsqaLayout;
  split: string;
  items: AsqaItem[];
  skipped: { record: string; reason: string }[];
}

/** Original layout starts with a split key; a JSON Lines row starts with a record field. */
export function detectAsqaLayout(text: string): AsqaLayout {
  return /^\s*\{\s*"(train|dev|test)"\s*:/.test(text.slice(0, 4096)) ? "original" : "hf-jsonl";
}

/** Validates one raw record and returns it normalised, or throws an InputError naming the field. */
export function normaliseAsqaItem(raw: unknown, file: string, record: string | number, sampleId?: string): AsqaItem {
  const fail = (field: string, problem: string): never => {
    throw new InputError(file, record, field, problem);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("(record)", `expected an object, got ${describeValue(raw)}`);
  const r = raw as Record<string, unknown>;
  const id = sampleId ?? r.sample_id;
  if (typeof id !== "string" && typeof id !== "number") fail("sample_id", `expected a string, got ${describeValue(id)}`);
  if (!("qa_pairs" in r)) fail("qa_pairs", "missing");
  if (!Array.isArray(r.qa_pairs)) fail("qa_pairs", `expected a list, got ${describeValue(r.qa_pairs)}`);
  const pairs = (r.qa_pairs as unknown[]).map((p, i): AsqaQaPair => {
    const at = `qa_pairs[${i}]`;
    if (typeof p !== "object" || p === null) fail(at, `expected an object, got ${describeValue(p)}`);
    const q = p as Record<string, unknown>;
    if (typeof q.context !== "string") fail(`${at}.context`, `expected a string, got ${describeValue(q.context)}`);
    if (typeof q.question !== "string") fail(`${at}.question`, `expected a string, got ${describeValue(q.question)}`);
    if (!Array.isArray(q.short_answers)) fail(`${at}.short_answers`, `expected a list, got ${describeValue(q.short_answers)}`);
    (q.short_answers as unknown[]).forEach((a, k) => {
      if (typeof a !== "string") fail(`${at}.short_answers[${k}]`, `expected a string, got ${describeValue(a)}`);
    });
    if (q.wikipage !== null && q.wikipage !== undefined && typeof q.wikipage !== "string") {
      fail(`${at}.wikipage`, `expected a string or null, got ${describeValue(q.wikipage)}`);
    }
    return {
      context: q.context as string,
      question: q.question as string,
      short_answers: q.short_answers as string[],
      wikipage: (q.wikipage as string | null | undefined) ?? null,
    };
  });
  const wiki = r.wikipages;
  const wikiList = Array.isArray(wiki) ? wiki : typeof wiki === "object" && wiki !== null ? Object.values(wiki) : [];
  return {
    sample_id: String(id),
    ambiguous_question: typeof r.ambiguous_question === "string" ? r.ambiguous_question : "",
    qa_pairs: pairs,
    wikipages: wikiList.filter((w): w is { title: string; url: string } => typeof w === "object" && w !== null),
  };
}

/** Reads an ASQA file in either layout. */
export async function readAsqa(file: string, options: AsqaReadOptions = {}): Promise<AsqaReadResult> {
  const skipped: AsqaReadResult["skipped"] = [];
  const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(file, undefined, undefined, error.code === "ENOENT" ? "no such file" : error.message);
  });
  if (bytes.length === 0) throw new InputError(file, undefined, undefined, "file is empty");
  // Detect on the first bytes only, so a bad byte later on a JSON Lines file is reported per line.
  const head = new TextDecoder("utf-8").decode(bytes.subarray(0, 4096));
  const layout = detectAsqaLayout(head);
  if (layout === "original") {
    const split = options.split ?? "train";
    const text = await readTextStrict(file);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (error) {
      throw new InputError(file, lineOfJsonError(text, error), undefined, `not valid JSON (truncated?): ${(error as Error).message}`);
    }
    const splits = doc as Record<string, unknown>;
    const table = splits[split];
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new InputError(file, undefined, split, `no split ${JSON.stringify(split)}; the file has ${Object.keys(splits).join(", ")}`);
    }
    const items: AsqaItem[] = [];
    for (const [id, raw] of Object.entries(table)) {
      try {
        items.push(normaliseAsqaItem(raw, file, id, id));
      } catch (error) {
        if (!options.skipBad || !(error instanceof InputError)) throw error;
        skipped.push({ record: id, reason: error.message });
      }
    }
    return { file, layout, split, items, skipped };
  }
  const items: AsqaItem[] = [];
  let start = 0;
  let line = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    line++;
    const lineBytes = bytes.subarray(start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end);
    start = end + 1;
    try {
      const text = decodeUtf8(lineBytes, file, line);
      if (text.trim() === "") continue;
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (error) {
        throw new InputError(file, line, undefined, `not valid JSON (truncated?): ${(error as Error).message}`);
      }
      items.push(normaliseAsqaItem(raw, file, line));
    } catch (error) {
      if (!options.skipBad || !(error instanceof InputError)) throw error;
      skipped.push({ record: `line ${line}`, reason: error.message });
    }
  }
  if (items.length === 0 && skipped.length === 0) throw new InputError(file, undefined, undefined, "file is empty");
  return { file, layout, split: options.split ?? "unspecified", items, skipped };
}

/** The 1-based line of a JSON.parse error position, so a truncated file points at its end. */
function lineOfJsonError(text: string, error: unknown): number {
  const match = /position (\d+)/.exec((error as Error).message);
  const position = match ? Number(match[1]) : text.length;
  let line = 1;
  for (let i = 0; i < position && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}
