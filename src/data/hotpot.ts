import { InputError } from "../util/errors.ts";
import { recordName, splitJsonArray } from "./json-stream.ts";
import { describeValue, fileChunks, streamLines } from "./text-input.ts";

/**
 * HotpotQA reader, streamed, for both layouts:
 * - "original": hotpot_train_v1.1.json, one JSON array of `{_id, question, answer,
 *   supporting_facts: [[title, sent]], context: [[title, [sentences]]], type, level}`;
 * - "hf-jsonl": Hugging Face `hotpot_qa` rows, one per line, `{id, ..., supporting_facts:
 *   {title: [], sent_id: []}, context: {title: [], sentences: [[]]}}`.
 * Both are normalised to the original shape. The layout is told by the first non-blank byte.
 */

export interface HotpotSample {
  id: string;
  question: string;
  answer: string;
  context: [string, string[]][];
  supporting_facts: [string, number][];
  type?: string;
  level?: string;
}

export type HotpotLayout = "original" | "hf-jsonl";

export interface HotpotReadOptions {
  skipBad?: boolean;
  /** Stop after this many samples (the rest of the file is not read). */
  limit?: number;
  /** Called once per skipped record with --skip-bad. */
  onSkip?: (error: InputError) => void;
  chunkSize?: number;
}

/** The seed's context string: paragraphs joined by "\n", each paragraph's sentences joined with no separator. */
export const hotpotContext = (sample: Pick<HotpotSample, "context">): string => sample.context.map(([, sentences]) => sentences.join("")).join("\n");

/** Titles of the gold (supporting) paragraphs, in first-seen order. */
export const supportingTitles = (sample: Pick<HotpotSample, "supporting_facts">): string[] => [...new Set(sample.supporting_facts.map(([title]) => title))];

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");

export function normaliseHotpot(raw: unknown, file: string, record: string | number): HotpotSample {
  const fail = (field: string, problem: string): never => {
    throw new InputError(file, record, field, problem);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return fail("(record)", `expected an object, got ${describeValue(raw)}`);
  const r = raw as Record<string, unknown>;
  const id = r._id ?? r.id;
  if (typeof id !== "string") fail("_id", `expected a string, got ${describeValue(id)}`);
  if (typeof r.question !== "string") fail("question", `expected a string, got ${describeValue(r.question)}`);
  if (typeof r.answer !== "string") fail("answer", `expected a string, got ${describeValue(r.answer)}`);
  let context: [string, string[]][] = [];
  const c = r.context;
  if (Array.isArray(c)) {
    context = c.map((p, i) => {
      if (!Array.isArray(p) || typeof p[0] !== "string" || !isStringList(p[1])) fail(`context[${i}]`, `expected [title, [sentences]], got ${describeValue(p)}`);
      return [p[0], p[1]] as [string, string[]];
    });
  } else if (typeof c === "object" && c !== null) {
    const { title, sentences } = c as { title?: unknown; sentences?: unknown };
    if (!isStringList(title)) fail("context.title", `expected a list of strings, got ${describeValue(title)}`);
    if (!Array.isArray(sentences) || sentences.length !== (title as string[]).length) fail("context.sentences", `expected ${(title as string[]).length} lists, got ${describeValue(sentences)}`);
    context = (title as string[]).map((t, i) => {
      const s = (sentences as unknown[])[i];
      if (!isStringList(s)) fail(`context.sentences[${i}]`, `expected a list of strings, got ${describeValue(s)}`);
      return [t, s as string[]];
    });
  } else fail("context", `expected a list or an object, got ${describeValue(c)}`);
  let facts: [string, number][] = [];
  const f = r.supporting_facts;
  if (Array.isArray(f)) facts = f.filter((x): x is [string, number] => Array.isArray(x) && typeof x[0] === "string").map((x) => [x[0], Number(x[1])]);
  else if (typeof f === "object" && f !== null) {
    const { title, sent_id } = f as { title?: unknown; sent_id?: unknown };
    if (isStringList(title) && Array.isArray(sent_id)) facts = title.map((t, i) => [t, Number(sent_id[i])]);
  }
  return {
    id: id as string,
    question: r.question as string,
    answer: r.answer as string,
    context,
    supporting_facts: facts,
    ...(typeof r.type === "string" ? { type: r.type } : {}),
    ...(typeof r.level === "string" ? { level: r.level } : {}),
  };
}

/** Reads the first chunk to find the layout, then replays it in front of the rest. */
async function peekLayout(chunks: AsyncIterable<Uint8Array>, file: string): Promise<{ layout: HotpotLayout; chunks: AsyncIterable<Uint8Array> }> {
  const iterator = chunks[Symbol.asyncIterator]();
  const seen: Uint8Array[] = [];
  let layout: HotpotLayout | undefined;
  while (layout === undefined) {
    const next = await iterator.next();
    if (next.done) break;
    seen.push(next.value);
    for (const c of next.value) {
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      layout = c === 0x5b ? "original" : "hf-jsonl";
      break;
    }
  }
  if (layout === undefined) throw new InputError(file, undefined, undefined, "file is empty");
  async function* replay(): AsyncGenerator<Uint8Array> {
    for (const chunk of seen) yield chunk;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return { layout, chunks: replay() };
}

/** Streams HotpotQA samples from a file (or from given byte chunks, for tests). */
export async function* readHotpot(file: string, options: HotpotReadOptions = {}, source?: AsyncIterable<Uint8Array>): AsyncGenerator<HotpotSample> {
  const { layout, chunks } = await peekLayout(source ?? fileChunks(file, options.chunkSize), file);
  const limit = options.limit ?? Infinity;
  let count = 0;
  if (limit <= 0) return;
  const handle = (error: unknown): void => {
    if (!options.skipBad || !(error instanceof InputError)) throw error;
    options.onSkip?.(error);
  };
  if (layout === "original") {
    for await (const { text, index, offset } of splitJsonArray(chunks, file)) {
      const name = recordName(index, offset);
      try {
        let raw: unknown;
        try {
          raw = JSON.parse(text);
        } catch (error) {
          throw new InputError(file, name, undefined, `not valid JSON: ${(error as Error).message}`);
        }
        yield normaliseHotpot(raw, file, name);
        if (++count >= limit) return;
      } catch (error) {
        handle(error);
      }
    }
    return;
  }
  const lines = streamLines(chunks, file);
  while (true) {
    let next: IteratorResult<{ text: string; line: number }>;
    try {
      next = await lines.next();
    } catch (error) {
      // A bad byte: the line splitter has already moved past it, so skipping can go on.
      handle(error);
      continue;
    }
    if (next.done) return;
    const { text, line } = next.value;
    if (text.trim() === "") continue;
    try {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (error) {
        throw new InputError(file, line, undefined, `not valid JSON (truncated?): ${(error as Error).message}`);
      }
      yield normaliseHotpot(raw, file, line);
      if (++count >= limit) return;
    } catch (error) {
      handle(error);
    }
  }
}

/** Reads a whole HotpotQA file into memory (small files only: tests, the shipped data). */
export async function readHotpotAll(file: string, options: HotpotReadOptions = {}): Promise<HotpotSample[]> {
  const out: HotpotSample[] = [];
  for await (const sample of readHotpot(file, options)) out.push(sample);
  return out;
}
