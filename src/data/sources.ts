import { babiContext, babiTrainFile, readBabiSplit, type BabiQuestion } from "./babi.ts";
import { babiBenchmarkWithCounts, type BabiBenchmarkCounts } from "./babi-benchmark.ts";
import type { BenchmarkRow } from "./benchmark.ts";
import { readSquadSplit, SQUAD_FILE } from "./squad.ts";
import { squadBenchmarkWithCounts, type SquadBenchmarkCounts } from "./squad-benchmark.ts";

/**
 * The bAbI and SQuAD benchmarks on both sides of their validation splits (by story, by article).
 * The validation side leaves out every row whose (context, known question) or (context, unknown
 * question) is also a (context, question) of the train side: its questions, and its rows' unknown
 * questions (what stage 1 trains "Insufficient" on). bAbI's vocabulary is tiny, so such repeats occur
 * by chance (task 1: 11 of 1000 validation questions).
 */

export type BenchmarkSide = "train" | "validation" | "all";
export const BENCHMARK_SIDES: readonly BenchmarkSide[] = ["train", "validation", "all"];

export interface SidedBenchmark<C> {
  train: { rows: BenchmarkRow[]; counts: C };
  validation: { rows: BenchmarkRow[]; counts: C };
}

/** Every (context, question) a benchmark side trains on: known and unknown questions. */
export function benchmarkPairs(rows: readonly BenchmarkRow[]): { context: string; question: string }[] {
  return rows.flatMap((r) => [
    { context: r.context, question: r.pos_query },
    { context: r.context, question: r.neg_query },
  ]);
}

export function babiBenchmarkSides(opts: { task?: number; file?: string; seed?: number } = {}): SidedBenchmark<BabiBenchmarkCounts> {
  const task = opts.task ?? 1;
  const file = opts.file ?? babiTrainFile(task);
  const split = readBabiSplit(task, file);
  // The substitutes' pool: the entities asked about on both sides (names and objects, not questions).
  const pool = [...split.train, ...split.validation];
  const build = (qs: BabiQuestion[], exclude?: { context: string; question: string }[]) =>
    babiBenchmarkWithCounts(qs, { pool, ...(opts.task !== undefined ? { task: opts.task } : {}), ...(opts.seed !== undefined ? { seed: opts.seed } : {}), ...(exclude ? { exclude } : {}) });
  const train = build(split.train);
  const exclude = [...split.train.map((q) => ({ context: babiContext(q), question: q.question })), ...benchmarkPairs(train.rows)];
  return { train, validation: build(split.validation, exclude) };
}

export function squadBenchmarkSides(opts: { file?: string; seed?: number } = {}): SidedBenchmark<SquadBenchmarkCounts & { droppedExcluded: number }> {
  const split = readSquadSplit(opts.file ?? SQUAD_FILE);
  const seed = opts.seed !== undefined ? { seed: opts.seed } : {};
  const train = squadBenchmarkWithCounts(split.train, seed);
  const validation = squadBenchmarkWithCounts(split.validation, seed);
  const seen = new Set(benchmarkPairs(train.rows).map((x) => `${x.context}\u0000${x.question}`));
  const kept = validation.rows.filter((r) => !seen.has(`${r.context}\u0000${r.pos_query}`) && !seen.has(`${r.context}\u0000${r.neg_query}`));
  return {
    train: { rows: train.rows, counts: { ...train.counts, droppedExcluded: 0 } },
    validation: { rows: kept, counts: { ...validation.counts, rows: kept.length, droppedExcluded: validation.rows.length - kept.length } },
  };
}

/** The rows of one side ("all" = train then validation, ids renumbered). */
export function pickSide<C>(sided: SidedBenchmark<C>, side: BenchmarkSide): BenchmarkRow[] {
  if (side !== "all") return sided[side].rows;
  return [...sided.train.rows, ...sided.validation.rows].map((r, i) => ({ ...r, id: i }));
}
