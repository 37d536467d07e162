/**
 * Results as arquero tables: one row per (model, setting), each row naming where its numbers come
 * from, and a side-by-side view with one row per model and one column group per setting, ready
 * for the paper-table notebooks.
 */
import * as aq from "arquero";
import { roundPy } from "./python.ts";
import { harmonicMean, type Accuracies } from "./scoring.ts";
import type { ScoreReport } from "./score.ts";
import type { CalibrationReport } from "./bootstrap.ts";

export type ResultsTable = ReturnType<typeof aq.from>;

export interface ResultRow {
  model: string;
  /** e.g. "llama2_chat", "llama2_chat + task assignment", "sampling k=3". */
  setting: string;
  /** The scoring rule: 2024-08, 2024-04, strict, or "as published". */
  metric: string;
  /** "ours" or where the number was copied from, e.g. "authors (temp.py)". */
  source: string;
  n: number | null;
  known_acc: number;
  unknown_acc: number;
  overall: number;
  known_correct?: number | null;
  known_wrong?: number | null;
  known_refused?: number | null;
  [extra: string]: unknown;
}

export const AUTHORS_TEMP_PY = "authors (temp.py)";

/**
 * The seven (model, F1, known, unknown) rows of the authors' temp.py, verbatim (paper.md 4.2);
 * labels as its x ticks. The mapping to training setups is inferred, not stated.
 */
export const TEMP_PY_NUMBERS: readonly { label: string; setting: string; overall: number; known: number; unknown: number }[] = Object.freeze([
  { label: "GPT-4", setting: "GPT-4 (normal prompt)", overall: 81.6, known: 79.6, unknown: 83.6 },
  { label: "LLaMA2", setting: "Llama-2-7b-chat", overall: 67.2, known: 79.3, unknown: 58.3 },
  { label: "Cognition", setting: "stage 1 only", overall: 64.6, known: 52.4, unknown: 84.4 },
  { label: "HotpotQA", setting: "QA-only ablation", overall: 66.5, known: 77.5, unknown: 58.3 },
  { label: "PSQA", setting: "stage 2 only", overall: 69.6, known: 84.8, unknown: 59.0 },
  { label: "Cognition \n& QA", setting: "stage 1 + QA data", overall: 32.8, known: 77.0, unknown: 20.9 },
  { label: "Cognition \n& PSQA", setting: "US-Tuning (stage 1 + stage 2)", overall: 85.8, known: 79.7, unknown: 93.0 },
]);

/** The authors' numbers as result rows (n unknown; their metric version is not stated). */
export const authorsResultRows = (): ResultRow[] =>
  TEMP_PY_NUMBERS.map((r) => ({
    model: r.label.replace(/\s*\n\s*/g, " "),
    setting: r.setting,
    metric: "as published",
    source: AUTHORS_TEMP_PY,
    n: null,
    known_acc: r.known,
    unknown_acc: r.unknown,
    overall: r.overall,
    known_correct: null,
    known_wrong: null,
    known_refused: null,
  }));

/** A result row of ours from a score report; percentages rounded as the seed prints them. */
export function resultRow(model: string, setting: string, scores: Accuracies & { metric?: string }, extra: Record<string, unknown> = {}): ResultRow {
  return {
    model,
    setting,
    metric: scores.metric ?? "2024-08",
    source: "ours",
    n: scores.n,
    known_acc: roundPy(scores.known_acc),
    unknown_acc: roundPy(scores.unknown_acc),
    overall: roundPy(harmonicMean(scores.known_acc, scores.unknown_acc)),
    known_correct: scores.known_correct,
    known_wrong: scores.known_wrong,
    known_refused: scores.known_refused,
    ...extra,
  };
}

const COLUMNS = ["model", "setting", "metric", "source", "n", "known_acc", "unknown_acc", "overall", "known_correct", "known_wrong", "known_refused"];

/** One row per (model, setting); extra fields become extra columns after the standard ones. */
export function resultsTable(rows: readonly ResultRow[]): ResultsTable {
  const extras = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !COLUMNS.includes(k));
  const columns = [...COLUMNS, ...extras];
  return aq.table(Object.fromEntries(columns.map((c) => [c, rows.map((r) => r[c] ?? null)])));
}

/**
 * Side by side: one row per model, one column per (setting, value), e.g.
 * `known_acc | llama2_chat`, so settings compare across a line. Values are taken as they are.
 */
export function sideBySide(rows: readonly ResultRow[], values: readonly string[] = ["known_acc", "unknown_acc", "overall"]): ResultsTable {
  const models = [...new Set(rows.map((r) => r.model))];
  const settings = [...new Set(rows.map((r) => r.setting))];
  const data: Record<string, unknown[]> = { model: models };
  for (const setting of settings) {
    for (const value of values) {
      data[`${value} | ${setting}`] = models.map((m) => rows.find((r) => r.model === m && r.setting === setting)?.[value] ?? null);
    }
  }
  return aq.table(data);
}

/** Convenience: ScoreReport -> ResultRow. */
export const resultRowFromReport = (model: string, setting: string, report: ScoreReport, extra: Record<string, unknown> = {}): ResultRow =>
  resultRow(model, setting, report, extra);

/**
 * Calibration results side by side: one row per (model, confidence source) with the metrics of
 * calibration.md 3.7 and their 95% bootstrap intervals as `_lo` / `_hi` columns.
 */
export function calibrationTable(rows: readonly { model: string; source: string; report: CalibrationReport }[]): ResultsTable {
  const keys = ["ece_equal_width_15", "ece_equal_mass_15", "mce_15", "brier", "nll", "auroc", "average_precision", "aurc", "eaurc"] as const;
  const data: Record<string, unknown[]> = { model: [], source: [], target: [], n: [], base_rate: [] };
  for (const k of keys) {
    data[k] = [];
    data[`${k}_lo`] = [];
    data[`${k}_hi`] = [];
  }
  for (const { model, source, report } of rows) {
    data.model!.push(model);
    data.source!.push(source);
    data.target!.push(report.provenance?.target ?? null);
    data.n!.push(report.n);
    data.base_rate!.push(report.base_rate);
    for (const k of keys) {
      data[k]!.push(report[k]);
      const ci = report.bootstrap?.ci[k] ?? null;
      data[`${k}_lo`]!.push(ci ? ci[0] : null);
      data[`${k}_hi`]!.push(ci ? ci[1] : null);
    }
  }
  return aq.table(data);
}
