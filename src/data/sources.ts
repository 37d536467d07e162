import { Rng } from "../util/rng.ts";
import type { AlpacaRow } from "./alpaca.ts";
import { hotpotContext, type HotpotSample } from "./hotpot.ts";
import { buildStage1, type Stage1Row } from "./stage1.ts";
import { buildCognitionPsqa, buildQaAblation, buildStage2, DEFAULT_STAGE2_LIMIT, DEFAULT_STAGE2_SEED, type Stage2Result } from "./stage2.ts";
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
  const read = readBabiSplit(task, file);
  // A file whose name does not say its task (task 0) takes --task's.
  const withTask = (qs: BabiQuestion[]): BabiQuestion[] => (opts.task === undefined ? qs : qs.map((q) => (q.task === 0 ? { ...q, task } : q)));
  const split = { train: withTask(read.train), validation: withTask(read.validation) };
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

export type StageSource = "babi" | "squad";
export const STAGE_SOURCES: readonly StageSource[] = ["babi", "squad"];

export interface StageSetsOptions {
  /** bAbI task (default 1). */
  task?: number;
  /** The bAbI train file or the SQuAD file (default: the shipped one). */
  file?: string;
  /** Seed of the unknown-question draws and of the stage-2 draws (default 42). */
  seed?: number;
  /** Stage-2 samples (default DEFAULT_STAGE2_LIMIT, 300, as the seed). */
  stage2Limit?: number;
}

export interface StageSets {
  source: StageSource;
  benchmark: SidedBenchmark<unknown>;
  /** The train side's known questions in HotpotSample shape, the input of the stage-2 and QA builders. */
  samples: HotpotSample[];
  stage1: Stage1Row[];
  stage1WithQa: Stage1Row[];
  stage2: Stage2Result;
  qa: Stage1Row[];
  cognitionPsqa: AlpacaRow[];
}

/**
 * A benchmark row's known question as a one-paragraph HotpotQA sample (the shape stage 2 and the QA
 * ablation read): the paragraph's title is the wikipage (SQuAD) or "bAbI task N", the answer the
 * first accepted form (the released answer).
 */
export function rowAsSample(row: BenchmarkRow): HotpotSample {
  const title = row.pos_wikipage ?? (/^babi-qa(\d+)-/.exec(row.sample_id) ? `bAbI task ${/^babi-qa(\d+)-/.exec(row.sample_id)![1]}` : row.sample_id);
  return { id: row.pos_id ?? `${row.sample_id}#${row.id}`, question: row.pos_query, answer: row.pos_answer[0] ?? "", context: [[title, [row.context]]], supporting_facts: [[title, 0]] };
}

/**
 * Stage-1 and stage-2 sets from the TRAIN side of the bAbI or SQuAD benchmark, with ASQA's builders:
 * stage 1 = a Sufficient and an Insufficient sample per train row (buildStage1), Cognition_QA with
 * the train side's own questions as the QA samples, stage 2 = buildStage2 on the train side's known
 * questions (seeded order, `stage2Limit` of them), the QA ablation on the same questions, and
 * Cognition_PSQA. Nothing of the validation side goes in.
 */
export function buildStageSets(source: StageSource, opts: StageSetsOptions = {}): StageSets {
  const seed = opts.seed ?? DEFAULT_STAGE2_SEED;
  const benchmark: SidedBenchmark<unknown> =
    source === "babi"
      ? babiBenchmarkSides({ ...(opts.task !== undefined ? { task: opts.task } : {}), ...(opts.file !== undefined ? { file: opts.file } : {}), seed })
      : squadBenchmarkSides({ ...(opts.file !== undefined ? { file: opts.file } : {}), seed });
  const train = benchmark.train.rows;
  // One sample per distinct (context, question): bAbI repeats questions within a story.
  const seen = new Set<string>();
  const samples = train.map(rowAsSample).filter((s) => {
    const key = `${hotpotContext(s)}\u0000${s.question}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
  const ordered = new Rng(seed).shuffle([...samples]);
  const stage2 = buildStage2(ordered, { seed, limit: opts.stage2Limit ?? DEFAULT_STAGE2_LIMIT });
  const used = new Set(stage2.rows.map((r) => r.source_id));
  return {
    source,
    benchmark,
    samples,
    stage1: buildStage1(train),
    stage1WithQa: buildStage1(train, { withQa: ordered }),
    stage2,
    qa: buildQaAblation(ordered.filter((s) => used.has(s.id))),
    cognitionPsqa: buildCognitionPsqa(train, stage2.rows),
  };
}
