/** Scoring whole files: benchmark + predictions, or the authors' result records, under one metric. */
import { readAuthorsRecords } from "./authors.ts";
import { checkBenchmarkRow, idKey, joinPredictions, readBenchmark, readPredictions, type EvalBenchmarkRow, type EvalPrediction } from "./io.ts";
import { roundPy } from "./python.ts";
import { DEFAULT_METRIC, scoreRow, summarizeRows, type Accuracies, type MetricVariant, type RowScore } from "./scoring.ts";

export interface ScoreReport extends Accuracies {
  metric: MetricVariant;
  /** Benchmark ids without a prediction, and predictions for ids not in the benchmark (only with `partial`). */
  missing: (string | number)[];
  extra: (string | number)[];
  rows: RowScore[];
}

export interface ScoreOptions {
  metric?: MetricVariant;
  /** Score only the rows that have predictions instead of failing on the others. */
  partial?: boolean;
  files?: { benchmark: string; predictions: string };
}

export function scorePredictions(benchmark: readonly EvalBenchmarkRow[], predictions: readonly EvalPrediction[], options: ScoreOptions = {}): ScoreReport {
  const metric = options.metric ?? DEFAULT_METRIC;
  const files = options.files ?? { benchmark: "benchmark", predictions: "predictions" };
  const { pairs, missing, extra } = joinPredictions(benchmark, predictions, files, options.partial);
  const rows = pairs.map(({ row, prediction }) => scoreRow(idKey(row.id), row.pos_answer, prediction.pos_prediction, prediction.neg_prediction, metric));
  return { ...summarizeRows(rows), metric, missing, extra, rows };
}

export function scoreFiles(benchmarkPath: string, predictionsPath: string, options: Omit<ScoreOptions, "files"> = {}): ScoreReport {
  return scorePredictions(readBenchmark(benchmarkPath), readPredictions(predictionsPath), { ...options, files: { benchmark: benchmarkPath, predictions: predictionsPath } });
}

/** The summary line of `ktu eval score`: percentages rounded as the seed prints them (.2f). */
export function scoreSummary(report: ScoreReport): Record<string, unknown> {
  return {
    n: report.n,
    known_acc: roundPy(report.known_acc),
    unknown_acc: roundPy(report.unknown_acc),
    overall: roundPy(report.overall),
    metric: report.metric,
    known_correct: report.known_correct,
    known_wrong: report.known_wrong,
    known_refused: report.known_refused,
    unknown_correct: report.unknown_correct,
    ...(report.missing.length || report.extra.length ? { missing: report.missing.length, extra: report.extra.length, partial: true } : {}),
  };
}

export interface RescoreReport {
  model: string;
  ours: ScoreReport;
  /** Accuracies from the verdicts stored in their file (rows with a True/False cell). */
  theirs: { n: number; known_acc: number | null; unknown_acc: number | null };
  /** Ids where our verdict under this metric differs from theirs. */
  disagreements: { id: string; field: "known_correct" | "unknown_correct"; ours: boolean; theirs: boolean }[];
}

/** Rescores an authors' result-records file and compares with the verdicts stored in it. */
export function rescoreAuthorsRecords(path: string, metric: MetricVariant = DEFAULT_METRIC): RescoreReport {
  const records = readAuthorsRecords(path, (value, line, seen) => checkBenchmarkRow(path, value, line, seen));
  const ours = scorePredictions(records.rows, records.predictions, { metric, files: { benchmark: path, predictions: path } });
  const disagreements: RescoreReport["disagreements"] = [];
  let knownN = 0;
  let knownK = 0;
  let unknownN = 0;
  let unknownK = 0;
  for (const row of ours.rows) {
    const stored = records.stored.get(row.id);
    for (const field of ["known_correct", "unknown_correct"] as const) {
      const theirs = stored?.[field];
      if (theirs === null || theirs === undefined) continue;
      if (field === "known_correct") {
        knownN++;
        knownK += theirs ? 1 : 0;
      } else {
        unknownN++;
        unknownK += theirs ? 1 : 0;
      }
      if (theirs !== row[field]) disagreements.push({ id: row.id, field, ours: row[field], theirs });
    }
  }
  return {
    model: records.model,
    ours,
    theirs: { n: Math.max(knownN, unknownN), known_acc: knownN ? (100 * knownK) / knownN : null, unknown_acc: unknownN ? (100 * unknownK) / unknownN : null },
    disagreements,
  };
}
