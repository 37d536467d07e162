/**
 * The main job's benchmarks besides ASQA: bAbI (one task, default 1) and SQuAD v1.1. Each gives
 * benchmark rows in ASQA's shape (context, known question with its answers, an unknown sibling
 * question the context cannot answer, sample_id for the cluster bootstrap) from its validation side
 * (the test rows) and from its train side (stage 1), and train-side question-answer samples for the
 * QA ablation and stage 2, all from the data branch's buildStageSets (src/data/sources.ts: ASQA's
 * builders on the train side; the validation side without any (context, question) of the train side).
 * ASQA's own sets come from buildAllDatasets as before.
 *
 * Each benchmark's files go to OUT/data/<source>/ with the same keys as buildAllDatasets's paths
 * (splitPaperTrain / splitPaperTest / qa / stage2, and the corrected ones pointing at the same files:
 * the ASQA filter means nothing here), plus `samples` (the QA samples in HotpotQA's layout).
 */
import { join } from "node:path";
import type { BenchmarkRow } from "../data/benchmark.ts";
import { buildStageSets } from "../data/sources.ts";
import { writeJsonAtomic, writeJsonlAtomic } from "../util/fs.ts";
import { Rng } from "../util/rng.ts";
import { DEFAULT_STAGE2_LIMIT } from "../data/stage2.ts";

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
  /** Distinct (passage, known question) pairs among the validation side's rows. */
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
  // The data branch's builders (src/data/sources.ts): both sides of the benchmark (the validation side
  // without any (context, question) of the train side), and the stage sets from the train side only.
  const sets = buildStageSets(source, { ...(source === "babi" ? { task: options.babiTask ?? 1 } : {}), seed: options.seed, stage2Limit: options.qaSamples ?? DEFAULT_STAGE2_LIMIT });
  const testAll = sets.benchmark.validation.rows.length;
  const test: BenchmarkRow[] = shuffled(sets.benchmark.validation.rows, options.seed).slice(0, options.testRows ?? testAll);
  const train: BenchmarkRow[] = shuffled(sets.benchmark.train.rows, options.seed + 1);
  const stage2 = sets.stage2;
  const qa = sets.qa;
  // Only the samples the QA ablation and stage 2 use (datasets.ts looks their passages up by id).
  const used = new Set([...stage2.rows.map((r) => r.source_id), ...qa.map((r) => r.source_id)]);
  const samples = sets.samples.filter((x) => used.has(x.id));
  const validationQuestions = new Set(sets.benchmark.validation.rows.map((r) => `${r.context}\u0000${r.pos_query}`)).size;
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
