/**
 * A training run's JSONL logs (log.jsonl, eval.jsonl) on resume. A run killed mid-write leaves a torn
 * last line: it is dropped with a warning. A bad line anywhere else is an InputError naming the file
 * and line, as is a row without a numeric step.
 */
import { readFileSync } from "node:fs";
import { InputError } from "../util/errors.ts";
import { writeFileAtomicSync } from "../util/fs.ts";

export interface LogRow {
  step: number;
  [key: string]: unknown;
}

/** The rows of a JSONL log; a torn last line (no newline after it, not JSON) is dropped and reported through `warn`. */
export function readLogRows(path: string, warn: (message: string) => void = (m) => console.warn(m)): LogRow[] {
  return readLines(path, warn).map((r) => r.row);
}

function readLines(path: string, warn: (message: string) => void): { row: LogRow; line: string }[] {
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  const rows: { row: LogRow; line: string }[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (error) {
      if (i === lines.length - 1) {
        warn(`${path}: line ${i + 1} is cut short (${line.length} characters, no newline; a run killed while writing it): dropped`);
        return;
      }
      throw new InputError(path, i + 1, undefined, `not JSON: ${(error as Error).message}`);
    }
    if (row === null || typeof row !== "object" || Array.isArray(row) || typeof (row as { step?: unknown }).step !== "number") {
      throw new InputError(path, i + 1, "step", `expected a JSON object with a numeric step, got ${line.slice(0, 80)}`);
    }
    rows.push({ row: row as LogRow, line });
  });
  return rows;
}

/** Keeps the rows up to `step` (those a killed run wrote after its checkpoint go), rewriting the file atomically; returns them. */
export function keepLogRowsUpTo(path: string, step: number, warn: (message: string) => void = (m) => console.warn(m)): LogRow[] {
  const kept = readLines(path, warn).filter((r) => r.row.step <= step);
  writeFileAtomicSync(path, kept.map((r) => r.line + "\n").join(""));
  return kept.map((r) => r.row);
}
