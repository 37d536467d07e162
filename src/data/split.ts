import { Rng } from "../util/rng.ts";
import type { BenchmarkRow } from "./benchmark.ts";

/**
 * Train/test split by ASQA ambiguous question (`sample_id`). The seed trains stage 1 on the very
 * rows it evaluates on; here every row of one ambiguous question lands on the same side, so no
 * passage or sibling question of a test row is ever seen in training.
 *
 * Method: the distinct sample ids, sorted (so the input order does not matter), shuffled by a
 * seeded Rng; the first round(testFraction * n) ids are the test side. The assignment is a plain
 * map, so the same split can be applied to the paper and the corrected benchmark alike.
 */

export type SplitSide = "train" | "test";

export interface SplitOptions {
  seed?: number;
  /** Share of ambiguous questions held apart for evaluation (default 0.3). */
  testFraction?: number;
}

export const DEFAULT_SPLIT_SEED = 42;
export const DEFAULT_TEST_FRACTION = 0.3;

export function assignQuestions(sampleIds: Iterable<string>, options: SplitOptions = {}): Map<string, SplitSide> {
  const seed = options.seed ?? DEFAULT_SPLIT_SEED;
  const fraction = options.testFraction ?? DEFAULT_TEST_FRACTION;
  if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`testFraction must be in [0, 1], got ${fraction}`);
  const ids = [...new Set(sampleIds)].sort();
  new Rng(seed).shuffle(ids);
  const nTest = Math.round(fraction * ids.length);
  return new Map(ids.map((id, i) => [id, i < nTest ? "test" : "train"]));
}

export interface BenchmarkSplit {
  train: BenchmarkRow[];
  test: BenchmarkRow[];
  assignment: Map<string, SplitSide>;
}

/** Splits rows by question; ids missing from a given assignment go to train. */
export function splitBenchmark(rows: readonly BenchmarkRow[], options: SplitOptions & { assignment?: Map<string, SplitSide> } = {}): BenchmarkSplit {
  const assignment = options.assignment ?? assignQuestions(rows.map((r) => r.sample_id), options);
  const train: BenchmarkRow[] = [];
  const test: BenchmarkRow[] = [];
  for (const row of rows) (assignment.get(row.sample_id) === "test" ? test : train).push(row);
  return { train, test, assignment };
}
