/**
 * The authors' files: `TrustworthyLLM Benchmark.xlsx` (columns id, context, pos_query, pos_answer,
 * neg_query; every cell written as str(...), so pos_answer is a Python list repr) and their result
 * records `TrustworthyLLM Benchmark - {model}.xlsx`, which add `{model}_pos_answer`,
 * `{model}_pos_answer_correctness`, `{model}_neg_answer`, `{model}_neg_answer_correctness`
 * (the correctness cells hold the strings "True"/"False"). Read here as exported to CSV (RFC 4180,
 * as Excel or pandas write it) or JSON (pandas records or columns orientation, or JSONL).
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { InputError } from "../util/errors.ts";
import type { EvalBenchmarkRow, EvalPrediction } from "./io.ts";

/** RFC 4180 CSV: quoted fields with "" escapes and embedded newlines; CRLF or LF. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += ch;
  }
  if (quoted) throw new Error("unterminated quoted field at end of file");
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}

type Rec = { line: number; value: Record<string, unknown> };

/** Reads an authors' table as records; `line` is the 1-based data row (header excluded) or JSONL line. */
export function readAuthorsTable(path: string): Rec[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(path, undefined, undefined, `cannot read: ${(error as Error).message}`);
  }
  const ext = extname(path).toLowerCase();
  if (ext === ".csv") {
    let table: string[][];
    try {
      table = parseCsv(text);
    } catch (error) {
      throw new InputError(path, undefined, undefined, (error as Error).message);
    }
    const [header, ...body] = table;
    if (!header) throw new InputError(path, undefined, undefined, "empty CSV");
    return body.map((cells, k) => {
      if (cells.length > header.length) throw new InputError(path, k + 2, undefined, `${cells.length} cells but the header has ${header.length}`);
      return { line: k + 2, value: Object.fromEntries(header.map((h, j) => [h.trim(), cells[j] ?? ""])) };
    });
  }
  const trimmed = text.trim();
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      parsed = undefined; // maybe JSONL
    }
    if (Array.isArray(parsed)) return parsed.map((value, k) => ({ line: k + 1, value: value as Record<string, unknown> }));
    if (parsed && typeof parsed === "object") {
      // pandas orient="columns": {column: {row: value}}
      const columns = Object.entries(parsed as Record<string, Record<string, unknown>>);
      const keys = Object.keys(columns[0]?.[1] ?? {});
      return keys.map((key, k) => ({ line: k + 1, value: Object.fromEntries(columns.map(([name, col]) => [name, col?.[key]])) }));
    }
  }
  return trimmed.split("\n").map((raw, k) => {
    try {
      return { line: k + 1, value: JSON.parse(raw) as Record<string, unknown> };
    } catch (error) {
      throw new InputError(path, k + 1, undefined, `not valid JSON (${(error as Error).message})`);
    }
  });
}

/** The model name of a result-records file, from its `{model}_pos_answer` column. */
export function recordsModel(columns: readonly string[]): string | null {
  const col = columns.find((c) => c.endsWith("_pos_answer") && columns.includes(c.replace(/_pos_answer$/, "_neg_answer")));
  return col ? col.slice(0, -"_pos_answer".length) : null;
}

const readBool = (v: unknown): boolean | null => (v === true || v === "True" || v === "true" ? true : v === false || v === "False" || v === "false" ? false : null);

export interface AuthorsRecords {
  model: string;
  rows: EvalBenchmarkRow[];
  predictions: EvalPrediction[];
  /** Their stored verdicts, by id (null where the cell was missing or not True/False). */
  stored: Map<string, { known_correct: boolean | null; unknown_correct: boolean | null }>;
}

/** Splits an authors' result-records table into benchmark rows, predictions and stored verdicts. */
export function readAuthorsRecords(path: string, checkRow: (value: Record<string, unknown>, line: number, seen: Map<string, number>) => EvalBenchmarkRow): AuthorsRecords {
  const records = readAuthorsTable(path);
  const model = recordsModel(Object.keys(records[0]?.value ?? {}));
  if (!model) throw new InputError(path, undefined, "{model}_pos_answer", "not a result-records file: no {model}_pos_answer / {model}_neg_answer columns");
  const seen = new Map<string, number>();
  const out: AuthorsRecords = { model, rows: [], predictions: [], stored: new Map() };
  for (const { line, value } of records) {
    const row = checkRow(value, line, seen);
    const pos = value[`${model}_pos_answer`];
    const neg = value[`${model}_neg_answer`];
    // An empty prediction was written as str('') = "" (or dropped by their loader); both mean "".
    out.rows.push(row);
    out.predictions.push({ id: row.id, pos_prediction: pos == null ? "" : String(pos), neg_prediction: neg == null ? "" : String(neg) });
    out.stored.set(String(row.id), {
      known_correct: readBool(value[`${model}_pos_answer_correctness`]),
      unknown_correct: readBool(value[`${model}_neg_answer_correctness`]),
    });
  }
  return out;
}
