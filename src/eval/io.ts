/**
 * Reading benchmarks and predictions with errors that name the file, the id and the field.
 * A benchmark is our benchmark.jsonl (`ktu data benchmark`: pos_answer is a list) or the authors'
 * layout exported from their xlsx (pos_answer is the Python repr of a list): see authors.ts.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { InputError } from "../util/errors.ts";
import { readAuthorsTable } from "./authors.ts";
import { parsePythonList } from "./python.ts";

export interface EvalBenchmarkRow {
  /** As written in the file (a number in ours, a string in the authors' export). */
  id: string | number;
  context: string;
  pos_query: string;
  /** The gold answers: a list, or the authors' stored Python list repr (kept verbatim for the seed's parse). */
  pos_answer: string[] | string;
  neg_query: string;
  [extra: string]: unknown;
}

export interface EvalPrediction {
  id: string | number;
  pos_prediction: string;
  neg_prediction: string;
  [extra: string]: unknown;
}

export const idKey = (id: unknown): string => String(id);

/** Parses a JSONL file into objects; a bad line is reported with its number. */
export function readJsonl(path: string): { line: number; value: Record<string, unknown> }[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(path, undefined, undefined, `cannot read: ${(error as Error).message}`);
  }
  const out: { line: number; value: Record<string, unknown> }[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      throw new InputError(path, i + 1, undefined, `not valid JSON (${(error as Error).message})`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InputError(path, i + 1, undefined, "expected a JSON object");
    out.push({ line: i + 1, value: value as Record<string, unknown> });
  });
  return out;
}

const where = (id: unknown, line: number): string => (id === undefined ? `line ${line}` : `id ${JSON.stringify(id)} (line ${line})`);

function requireText(file: string, value: Record<string, unknown>, line: number, field: string, allowEmpty = false): string {
  const v = value[field];
  if (typeof v !== "string") throw new InputError(file, where(value.id, line), field, v === undefined ? "missing" : `expected a string, got ${JSON.stringify(v)}`);
  if (!allowEmpty && v.trim() === "") throw new InputError(file, where(value.id, line), field, "empty");
  return v;
}

function checkId(file: string, value: Record<string, unknown>, line: number, seen: Map<string, number>): string | number {
  const id = value.id;
  if (typeof id !== "string" && typeof id !== "number") throw new InputError(file, where(undefined, line), "id", id === undefined ? "missing" : `expected a string or number, got ${JSON.stringify(id)}`);
  const key = idKey(id);
  const first = seen.get(key);
  if (first !== undefined) throw new InputError(file, where(id, line), "id", `duplicate id (first at line ${first})`);
  seen.set(key, line);
  return id;
}

/** Validates one benchmark record; `line` is its line (JSONL) or row (CSV) number. */
export function checkBenchmarkRow(file: string, value: Record<string, unknown>, line: number, seen: Map<string, number>): EvalBenchmarkRow {
  const id = checkId(file, value, line, seen);
  // Scoring needs only ids and answers; an empty passage or question is the data's business.
  const context = requireText(file, value, line, "context", true);
  const posQuery = requireText(file, value, line, "pos_query", true);
  const negQuery = requireText(file, value, line, "neg_query", true);
  const answers = value.pos_answer;
  let list: string[];
  if (typeof answers === "string") {
    try {
      list = parsePythonList(answers);
    } catch (error) {
      throw new InputError(file, where(id, line), "pos_answer", (error as Error).message);
    }
  } else if (Array.isArray(answers) && answers.every((a) => typeof a === "string")) list = answers as string[];
  else throw new InputError(file, where(id, line), "pos_answer", answers === undefined ? "missing" : "expected a list of strings or its Python repr");
  if (list.length === 0 || list.every((a) => a.trim() === "")) throw new InputError(file, where(id, line), "pos_answer", "no answers");
  return { ...value, id, context, pos_query: posQuery, pos_answer: answers as string[] | string, neg_query: negQuery };
}

/** Reads a benchmark: JSONL (ours), or the authors' layout as .csv / .json (see authors.ts). */
export function readBenchmark(path: string): EvalBenchmarkRow[] {
  const ext = extname(path).toLowerCase();
  const records = ext === ".csv" || ext === ".json" ? readAuthorsTable(path) : readJsonl(path);
  const seen = new Map<string, number>();
  const rows = records.map(({ line, value }) => checkBenchmarkRow(path, value, line, seen));
  if (rows.length === 0) throw new InputError(path, undefined, undefined, "no benchmark rows");
  return rows;
}

/** Reads predictions `{"id", "pos_prediction", "neg_prediction"}`, one JSON object per line. */
export function readPredictions(path: string): EvalPrediction[] {
  const seen = new Map<string, number>();
  return readJsonl(path).map(({ line, value }) => {
    const id = checkId(path, value, line, seen);
    return {
      ...value,
      id,
      pos_prediction: requireText(path, value, line, "pos_prediction", true),
      neg_prediction: requireText(path, value, line, "neg_prediction", true),
    };
  });
}

/**
 * Pairs every benchmark row with its prediction. A benchmark id without a prediction, or a
 * prediction whose id is not in the benchmark, is an error naming the id, unless `partial` (then
 * both lists are returned and only the pairs are scored).
 */
export function joinPredictions(
  benchmark: readonly EvalBenchmarkRow[],
  predictions: readonly EvalPrediction[],
  files: { benchmark: string; predictions: string },
  partial = false,
): { pairs: { row: EvalBenchmarkRow; prediction: EvalPrediction }[]; missing: (string | number)[]; extra: (string | number)[] } {
  const byId = new Map(predictions.map((p) => [idKey(p.id), p]));
  const known = new Set(benchmark.map((r) => idKey(r.id)));
  const extra = predictions.filter((p) => !known.has(idKey(p.id)));
  if (extra.length > 0 && !partial) {
    throw new InputError(files.predictions, `id ${JSON.stringify(extra[0]!.id)}`, "id", `not in the benchmark ${files.benchmark} (${extra.length} such; use --partial to ignore them)`);
  }
  const pairs: { row: EvalBenchmarkRow; prediction: EvalPrediction }[] = [];
  const missing: (string | number)[] = [];
  for (const row of benchmark) {
    const prediction = byId.get(idKey(row.id));
    if (prediction) pairs.push({ row, prediction });
    else missing.push(row.id);
  }
  if (missing.length > 0 && !partial) {
    const shown = missing.slice(0, 5).map((id) => JSON.stringify(id)).join(", ");
    throw new InputError(files.predictions, `id ${JSON.stringify(missing[0])}`, "pos_prediction", `no prediction for ${missing.length} benchmark id(s): ${shown}${missing.length > 5 ? ", ..." : ""} (use --partial to score only the predicted rows)`);
  }
  return { pairs, missing, extra: extra.map((p) => p.id) };
}
