/**
 * The main job's benchmarks besides ASQA: bAbI (one task, default 1) and SQuAD v1.1. Each gives
 * benchmark rows in ASQA's shape (context, known question with its answers, an unknown sibling
 * question the context cannot answer, sample_id for the cluster bootstrap) from its validation side
 * (the test rows) and from its train side (stage 1), and train-side question-answer samples for the
 * QA ablation and stage 2 (built with the same builders as ASQA's HotpotQA sets: buildQaAblation,
 * buildStage2). ASQA's own sets come from buildAllDatasets as before.
 *
 * Each benchmark's files go to OUT/data/<source>/ with the same keys as buildAllDatasets's paths
 * (splitPaperTrain / splitPaperTest / qa / stage2, and the corrected ones pointing at the same files:
 * the ASQA filter means nothing here), plus `samples` (the QA samples in HotpotQA's layout).
 */
import { join } from "node:path";
import { babiContext, readBabiSplit, type BabiQuestion } from "../data/babi.ts";
import type { BenchmarkRow } from "../data/benchmark.ts";
import type { HotpotSample } from "../data/hotpot.ts";
import { readSquadSplit, type SquadArticle } from "../data/squad.ts";
import { buildQaAblation, buildStage2, DEFAULT_STAGE2_LIMIT } from "../data/stage2.ts";
import { writeJsonAtomic, writeJsonlAtomic } from "../util/fs.ts";
import { Rng } from "../util/rng.ts";
// Until the data branch (h-data) lands its builders in src/data, interim ones of the same names and shapes.
import { babiBenchmark, squadBenchmark } from "./interim-builders.ts";

export const PIPELINE_SOURCES = ["asqa", "babi", "squad"] as const;
export type PipelineSource = (typeof PIPELINE_SOURCES)[number];

/** How a benchmark is named in the report. */
export function sourceTitle(source: PipelineSource, babiTask = 1): string {
  if (source === "asqa") return "ASQA";
  if (source === "babi") return `bAbI task ${babiTask}`;
  return "SQuAD v1.1";
}

export interface SourceDataCounts {
  /** Validation-side benchmark rows before the cap, and those kept as test rows. */
  testRowsAll: number;
  test: number;
  testClusters: number;
  /** Train-side benchmark rows (stage 1 takes the first ones), QA samples (QA ablation and stage 2). */
  trainRows: number;
  qaSamples: number;
  stage2: number;
  stage2Skipped: number;
  /** Questions of the validation side that no sibling could be found for. */
  validationQuestions: number;
}

export interface SourceDataResult {
  source: PipelineSource;
  outDir: string;
  paths: Record<string, string>;
  counts: SourceDataCounts;
}

/** Rows in a seeded order, so that a cap keeps rows spread over stories or articles, not the first ones. */
export function shuffled<T>(rows: readonly T[], seed: number): T[] {
  return new Rng(seed).shuffle([...rows]);
}

/** A bAbI question as a HotpotQA-layout sample (one passage: the story so far). */
export const babiSample = (q: BabiQuestion): HotpotSample => ({
  id: `babi-${q.task}-${q.story}-${q.line}`,
  question: q.question,
  answer: q.answer.replace(/,/g, " and "),
  context: [["story", [babiContext(q)]]],
  supporting_facts: [["story", 0]],
});

/** SQuAD questions as HotpotQA-layout samples (one passage: the paragraph; the first answer is the gold one). */
export const squadSamples = (articles: readonly SquadArticle[]): HotpotSample[] =>
  articles.flatMap((a) => a.paragraphs.flatMap((p) => p.qas.map((q) => ({ id: q.id, question: q.question, answer: q.answers[0]!.text, context: [[a.title, [p.context]]] as [string, string[]][], supporting_facts: [[a.title, 0]] as [string, number][] }))));

export interface SourceDataOptions {
  outDir: string;
  /** Seed of the row order (the cap takes the first rows) and of stage 2's instructions. */
  seed: number;
  babiTask?: number;
  /** At most this many test rows (default all). */
  testRows?: number;
  /** At most this many QA samples written (stage 2 and the QA ablation take the first ones). */
  qaSamples?: number;
}

/** Writes a benchmark's test rows, train-side rows, QA samples, stage-2 and QA sets. */
export async function buildSourceData(source: Exclude<PipelineSource, "asqa">, options: SourceDataOptions): Promise<SourceDataResult> {
  const outDir = options.outDir;
  let test: BenchmarkRow[];
  let train: BenchmarkRow[];
  let samples: HotpotSample[];
  let validationQuestions: number;
  if (source === "babi") {
    const task = options.babiTask ?? 1;
    const split = readBabiSplit(task);
    test = babiBenchmark(split.validation, { task, seed: options.seed });
    train = babiBenchmark(split.train, { task, seed: options.seed });
    samples = split.train.map(babiSample);
    validationQuestions = split.validation.length;
  } else {
    const split = readSquadSplit();
    test = squadBenchmark(split.validation, { seed: options.seed });
    train = squadBenchmark(split.train, { seed: options.seed });
    samples = squadSamples(split.train);
    validationQuestions = split.validation.reduce((n, a) => n + a.paragraphs.reduce((k, p) => k + p.qas.length, 0), 0);
  }
  const testAll = test.length;
  test = shuffled(test, options.seed).slice(0, options.testRows ?? test.length);
  train = shuffled(train, options.seed + 1);
  samples = shuffled(samples, options.seed + 2).slice(0, options.qaSamples ?? samples.length);
  const stage2 = buildStage2(samples, { seed: options.seed, limit: options.qaSamples ?? DEFAULT_STAGE2_LIMIT });
  const qa = buildQaAblation(samples);
  const paths: Record<string, string> = {};
  const write = async (key: string, file: string, rows: readonly unknown[]): Promise<void> => {
    paths[key] = join(outDir, file);
    await writeJsonlAtomic(paths[key], rows);
  };
  await write("splitPaperTest", "test.jsonl", test);
  await write("splitPaperTrain", "train.jsonl", train);
  await write("samples", "samples.jsonl", samples);
  await write("stage2", "stage2.jsonl", stage2.rows);
  await write("qa", "qa.jsonl", qa);
  paths.splitCorrectedTest = paths.splitPaperTest!;
  paths.splitCorrectedTrain = paths.splitPaperTrain!;
  const counts: SourceDataCounts = {
    testRowsAll: testAll,
    test: test.length,
    testClusters: new Set(test.map((r) => r.sample_id)).size,
    trainRows: train.length,
    qaSamples: samples.length,
    stage2: stage2.rows.length,
    stage2Skipped: stage2.skipped,
    validationQuestions,
  };
  paths.summary = join(outDir, "summary.json");
  await writeJsonAtomic(paths.summary, { source, counts, paths });
  return { source, outDir, paths, counts };
}
