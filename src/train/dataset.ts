import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { alpacaPrompt, encodeChatTurns, type ChatMessage, type ChatTemplateSpec } from "../model/chat-templates.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { InputError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";

/**
 * SFT data as LLaMA-Factory prepares it: Alpaca records found through dataset_info.json, the first
 * `max_samples`, prompt and response encoded by the chat template, the prompt masked out of the loss
 * (label -100), the response ending with EOS, and LLaMA-Factory's `infer_seqlen` truncation.
 */
export interface SftRow {
  instruction: string;
  input?: string;
  output: string;
  system?: string;
  /** Earlier [user, assistant] turns; their responses are trained on too, as in LLaMA-Factory. */
  history?: [string, string][];
}

export const IGNORE_INDEX = -100;

export interface SftExample {
  readonly inputIds: Int32Array;
  readonly labels: Int32Array;
  /** Index of the source row (after max_samples), for reports. */
  readonly row: number;
  /** Tokens the row had before truncation to cutoff_len (equal to inputIds.length when not cut). */
  readonly fullLength: number;
}

/** LLaMA-Factory's infer_seqlen: how many prompt and response tokens survive a cutoff. */
export function inferSeqlen(sourceLen: number, targetLen: number, cutoffLen: number): [number, number] {
  let maxTarget: number;
  if (targetLen * 2 < cutoffLen) maxTarget = cutoffLen;
  else if (sourceLen * 2 < cutoffLen) maxTarget = cutoffLen - sourceLen;
  else maxTarget = Math.floor(cutoffLen * (targetLen / (sourceLen + targetLen)));
  const newTarget = Math.min(maxTarget, targetLen);
  const newSource = Math.min(Math.max(cutoffLen - newTarget, 0), sourceLen);
  return [newSource, newTarget];
}

export function rowMessages(row: SftRow): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const [user, assistant] of row.history ?? []) messages.push({ role: "user", content: user }, { role: "assistant", content: assistant });
  messages.push({ role: "user", content: alpacaPrompt(row.instruction, row.input) }, { role: "assistant", content: row.output });
  return messages;
}

/** SupervisedDatasetProcessor._encode_data_example for one row (no packing, no mask_history). */
export function encodeSftRow(row: SftRow, index: number, template: ChatTemplateSpec, tokenizer: Tokenizer, cutoffLen: number): SftExample {
  const pairs = encodeChatTurns(template, tokenizer, rowMessages(row), row.system);
  const inputIds: number[] = [];
  const labels: number[] = [];
  let total = 0;
  let fullLength = 0;
  for (const [source, target] of pairs) {
    fullLength += source.length + target.length;
    if (total >= cutoffLen) continue;
    const [sourceLen, targetLen] = inferSeqlen(source.length, target.length, cutoffLen - total);
    inputIds.push(...source.slice(0, sourceLen), ...target.slice(0, targetLen));
    labels.push(...new Array<number>(sourceLen).fill(IGNORE_INDEX), ...target.slice(0, targetLen));
    total += sourceLen + targetLen;
  }
  return { inputIds: Int32Array.from(inputIds), labels: Int32Array.from(labels), row: index, fullLength };
}

export interface EncodedDataset {
  readonly examples: SftExample[];
  /** Rows cut to cutoff_len: LLaMA-Factory truncates them silently; we keep them and report them. */
  readonly truncated: { row: number; fullLength: number }[];
  /** Rows with no response token left (nothing to learn): kept out of training, reported. */
  readonly empty: number[];
}

export function encodeSftRows(rows: readonly SftRow[], template: ChatTemplateSpec, tokenizer: Tokenizer, cutoffLen: number): EncodedDataset {
  const examples: SftExample[] = [];
  const truncated: { row: number; fullLength: number }[] = [];
  const empty: number[] = [];
  rows.forEach((row, i) => {
    const example = encodeSftRow(row, i, template, tokenizer, cutoffLen);
    if (example.fullLength > example.inputIds.length) truncated.push({ row: i, fullLength: example.fullLength });
    if (!example.labels.some((l) => l !== IGNORE_INDEX)) empty.push(i);
    else examples.push(example);
  });
  return { examples, truncated, empty };
}

/** Checks and normalises raw records (file and record named on error). */
export function parseSftRows(raw: unknown, file: string, columns: Record<string, string> = {}): SftRow[] {
  if (!Array.isArray(raw)) throw new InputError(file, undefined, undefined, "expected a JSON array of Alpaca records");
  const col = (name: string): string => columns[name === "instruction" ? "prompt" : name === "input" ? "query" : name === "output" ? "response" : name] ?? name;
  return raw.map((record: unknown, i) => {
    if (typeof record !== "object" || record === null) throw new InputError(file, i, undefined, "not an object");
    const r = record as Record<string, unknown>;
    const text = (field: string, required: boolean): string | undefined => {
      const value = r[col(field)];
      if (value === undefined || value === null) {
        if (required) throw new InputError(file, `#${i}`, col(field), "missing");
        return undefined;
      }
      if (typeof value !== "string") throw new InputError(file, `#${i}`, col(field), `expected a string, got ${typeof value}`);
      return value;
    };
    const history = r[col("history")];
    if (history !== undefined && history !== null && !(Array.isArray(history) && history.every((h) => Array.isArray(h) && h.length === 2 && h.every((s) => typeof s === "string")))) {
      throw new InputError(file, `#${i}`, col("history"), "expected a list of [user, assistant] string pairs");
    }
    return {
      instruction: text("instruction", true)!,
      input: text("input", false),
      output: text("output", true)!,
      system: text("system", false),
      history: (history ?? undefined) as [string, string][] | undefined,
    };
  });
}

function readRecords(path: string): unknown {
  const text = readFileSync(path, "utf8");
  if (path.endsWith(".jsonl")) {
    return text.split("\n").flatMap((line, i) => {
      if (!line.trim()) return [];
      try {
        return [JSON.parse(line)];
      } catch (error) {
        throw new InputError(path, i + 1, undefined, `not JSON: ${(error as Error).message}`);
      }
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(path, undefined, undefined, `not JSON: ${(error as Error).message}`);
  }
}

/**
 * Loads the datasets named in `dataset` (comma-separated) through dataset_dir/dataset_info.json, as
 * LLaMA-Factory does; a name with no entry there is tried as a file path. `max_samples` keeps the
 * first N of each dataset.
 */
export function loadSftDatasets(dataset: string, datasetDir: string, maxSamples?: number): SftRow[] {
  const infoPath = join(datasetDir, "dataset_info.json");
  const info = existsSync(infoPath) ? (JSON.parse(readFileSync(infoPath, "utf8")) as Record<string, Record<string, unknown>>) : {};
  const rows: SftRow[] = [];
  for (const name of dataset.split(",").map((s) => s.trim()).filter(Boolean)) {
    const entry = info[name];
    let file: string;
    let columns: Record<string, string> = {};
    if (entry) {
      if (entry.formatting !== undefined && entry.formatting !== "alpaca") throw new InputError(infoPath, name, "formatting", `only alpaca is supported here, got ${JSON.stringify(entry.formatting)}`);
      if (typeof entry.file_name !== "string") throw new InputError(infoPath, name, "file_name", "missing (hub datasets need LLaMA-Factory)");
      file = resolve(datasetDir, entry.file_name);
      columns = (entry.columns ?? {}) as Record<string, string>;
    } else if (existsSync(resolve(datasetDir, name))) file = resolve(datasetDir, name);
    else if (existsSync(name)) file = resolve(name);
    else throw new InputError(infoPath, name, "dataset", `no entry named ${JSON.stringify(name)} in dataset_info.json and no such file`);
    let parsed = parseSftRows(readRecords(file), file, columns);
    if (maxSamples !== undefined) parsed = parsed.slice(0, maxSamples);
    rows.push(...parsed);
  }
  return rows;
}

/**
 * A seeded train/validation split. LLaMA-Factory uses datasets' train_test_split (numpy permutation),
 * which we do not reproduce bit for bit; the share and the seeding are the same. `valSize` < 1 is a
 * fraction, >= 1 a count.
 */
export function splitTrainVal<T>(items: readonly T[], valSize: number, seed: number): { train: T[]; val: T[] } {
  if (!(valSize > 0)) return { train: [...items], val: [] };
  const count = valSize < 1 ? Math.ceil(items.length * valSize) : Math.floor(valSize);
  if (count >= items.length) throw new Error(`val_size ${valSize} leaves no training rows out of ${items.length}`);
  const order = new Rng(seed ^ 0x5eed).shuffle(items.map((_, i) => i));
  const valSet = new Set(order.slice(0, count));
  return { train: items.filter((_, i) => !valSet.has(i)), val: items.filter((_, i) => valSet.has(i)) };
}
