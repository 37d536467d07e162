import { join, resolve } from "node:path";
import { writeJsonAtomic, writeJsonlAtomic } from "../util/fs.ts";
import { dataPath } from "../util/paths.ts";
import { readAsqa } from "./asqa.ts";
import { buildBenchmark, type BenchmarkCounts } from "./benchmark.ts";
import { exportLlamaFactory, type ExportOptions, type ExportResult } from "./export.ts";
import { readHotpotAll, type HotpotSample } from "./hotpot.ts";
import { DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, splitBenchmark } from "./split.ts";
import { buildStageSets, type StageSetsOptions, type StageSource } from "./sources.ts";
import { buildStage1 } from "./stage1.ts";
import { buildCognitionPsqa, buildQaAblation, buildStage2, DEFAULT_STAGE2_LIMIT } from "./stage2.ts";

/**
 * Every dataset of the paper from the shipped real files, in one call (the data part of
 * `ktu start`): the benchmark under both filters, the split by ambiguous question, stage 1 on the
 * train side, stage 2 and the ablations from HotpotQA, and the LLaMA-Factory folder.
 */

export interface BuildAllOptions {
  outDir?: string;
  asqaFile?: string;
  hotpotFiles?: string[];
  seed?: number;
  testFraction?: number;
  stage2Limit?: number;
  export?: ExportOptions;
}

export interface BuildAllResult {
  outDir: string;
  counts: {
    asqaItems: number;
    benchmark: { paper: BenchmarkCounts; corrected: BenchmarkCounts };
    split: { paper: { train: number; test: number; trainQuestions: number; testQuestions: number }; corrected: { train: number; test: number } };
    hotpotSamples: number;
    stage1: number;
    stage1WithQa: number;
    stage2: number;
    stage2Redraws: number;
    stage2Skipped: number;
    qa: number;
    cognitionPsqa: number;
  };
  paths: Record<string, string>;
  llamafactory: ExportResult;
}

export const DEFAULT_ASQA_FILE = dataPath("asqa", "asqa_dev_first400.jsonl");
/** HotpotQA train (original layout) first, then RPT's HF-layout "train" (a re-split of HotpotQA dev). */
export const DEFAULT_HOTPOT_FILES = [dataPath("hotpotqa", "hipporag_hotpot_train_100.json"), dataPath("hotpotqa", "rpt_hf_distractor_validation_train.jsonl")];

export async function buildAllDatasets(options: BuildAllOptions = {}): Promise<BuildAllResult> {
  const outDir = resolve(options.outDir ?? "out/data");
  const seed = options.seed ?? DEFAULT_SPLIT_SEED;
  const paths: Record<string, string> = {};
  const asqa = await readAsqa(options.asqaFile ?? DEFAULT_ASQA_FILE);

  const paper = buildBenchmark(asqa.items, { filter: "paper" });
  const corrected = buildBenchmark(asqa.items, { filter: "corrected" });
  // The paper benchmark's questions are drawn (as `ktu data split` does), and the same assignment
  // serves the corrected benchmark, whose questions are a subset: a question sits on one side in both.
  const paperSplit = splitBenchmark(paper.rows, { seed, testFraction: options.testFraction ?? DEFAULT_TEST_FRACTION });
  const correctedSplit = splitBenchmark(corrected.rows, { assignment: paperSplit.assignment });

  const write = async (key: string, file: string, rows: readonly unknown[]): Promise<void> => {
    paths[key] = join(outDir, file);
    await writeJsonlAtomic(paths[key], rows);
  };
  await write("benchmarkPaper", "benchmark-paper/benchmark.jsonl", paper.rows);
  await write("benchmarkUncleaned", "benchmark-paper/benchmark_uncleaned.jsonl", paper.uncleaned);
  await write("benchmarkCorrected", "benchmark-corrected/benchmark.jsonl", corrected.rows);
  await write("splitPaperTrain", "split-paper/train.jsonl", paperSplit.train);
  await write("splitPaperTest", "split-paper/test.jsonl", paperSplit.test);
  await write("splitCorrectedTrain", "split-corrected/train.jsonl", correctedSplit.train);
  await write("splitCorrectedTest", "split-corrected/test.jsonl", correctedSplit.test);

  const hotpot: HotpotSample[] = [];
  for (const file of options.hotpotFiles ?? DEFAULT_HOTPOT_FILES) hotpot.push(...(await readHotpotAll(file)));
  const stage1 = buildStage1(paperSplit.train);
  const stage1WithQa = buildStage1(paperSplit.train, { withQa: hotpot });
  const stage2 = buildStage2(hotpot, { seed, limit: options.stage2Limit ?? DEFAULT_STAGE2_LIMIT });
  const used = new Set(stage2.rows.map((r) => r.source_id));
  const qa = buildQaAblation(hotpot.filter((s) => used.has(s.id)));
  const psqa = buildCognitionPsqa(paperSplit.train, stage2.rows);
  await write("stage1", "stage1/stage1.jsonl", stage1);
  await write("stage1WithQa", "stage1/stage1_with_qa.jsonl", stage1WithQa);
  await write("stage2", "stage2/stage2.jsonl", stage2.rows);
  await write("qa", "ablations/qa.jsonl", qa);
  await write("cognitionPsqa", "ablations/cognition_psqa.jsonl", psqa);

  const llamafactory = await exportLlamaFactory(
    join(outDir, "llamafactory"),
    { cognition: stage1, promptSensitive: stage2.rows, qa, cognitionPsqa: psqa, cognitionQa: stage1WithQa },
    options.export,
  );
  const counts: BuildAllResult["counts"] = {
    asqaItems: asqa.items.length,
    benchmark: { paper: paper.counts, corrected: corrected.counts },
    split: {
      paper: {
        train: paperSplit.train.length,
        test: paperSplit.test.length,
        trainQuestions: new Set(paperSplit.train.map((r) => r.sample_id)).size,
        testQuestions: new Set(paperSplit.test.map((r) => r.sample_id)).size,
      },
      corrected: { train: correctedSplit.train.length, test: correctedSplit.test.length },
    },
    hotpotSamples: hotpot.length,
    stage1: stage1.length,
    stage1WithQa: stage1WithQa.length,
    stage2: stage2.rows.length,
    stage2Redraws: stage2.redraws,
    stage2Skipped: stage2.skipped,
    qa: qa.length,
    cognitionPsqa: psqa.length,
  };
  paths.summary = join(outDir, "summary.json");
  await writeJsonAtomic(paths.summary, { counts, paths, llamafactory, seed });
  return { outDir, counts, paths, llamafactory };
}

/** The summary table `ktu start` prints. */
export function formatBuildSummary(result: BuildAllResult): string {
  const c = result.counts;
  const b = c.benchmark;
  const rows: [string, string, string][] = [
    ["ASQA items", String(c.asqaItems), "items with >1 distinct context: " + b.paper.itemsUsed],
    ["benchmark (paper filter)", String(b.paper.pairsAfter), `of ${b.paper.pairsBefore} ordered pairs`],
    ["benchmark (corrected filter)", String(b.corrected.pairsAfter), `of ${b.corrected.pairsBefore} ordered pairs`],
    ["split train / test (paper)", `${c.split.paper.train} / ${c.split.paper.test}`, `${c.split.paper.trainQuestions} / ${c.split.paper.testQuestions} questions`],
    ["split train / test (corrected)", `${c.split.corrected.train} / ${c.split.corrected.test}`, "same question assignment"],
    ["stage 1 (Cognition)", String(c.stage1), "2 per train-side row"],
    ["stage 1 with QA (Cognition_QA)", String(c.stage1WithQa), "3 per train-side row"],
    ["HotpotQA samples read", String(c.hotpotSamples), ""],
    ["stage 2 (PromptSensitive)", String(c.stage2), `${c.stage2Redraws} instruction redraws, ${c.stage2Skipped} skipped`],
    ["ablation QA", String(c.qa), "TASK_QA -> gold answer"],
    ["ablation Cognition_PSQA", String(c.cognitionPsqa), "3 per train-side row"],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const lines = rows.map(([a, b2, n]) => `${a.padEnd(w0)}  ${b2.padStart(w1)}  ${n}`.trimEnd());
  return `${lines.join("\n")}\n\nwritten to ${result.outDir} (LLaMA-Factory folder: ${result.llamafactory.dir})\n`;
}

export interface SourceBuildResult {
  outDir: string;
  source: StageSource;
  counts: { benchmarkTrain: number; benchmarkValidation: number; stage1: number; stage1WithQa: number; stage2: number; stage2Redraws: number; stage2Skipped: number; qa: number; cognitionPsqa: number };
  paths: Record<string, string>;
  llamafactory: ExportResult;
}

/**
 * The bAbI or SQuAD counterpart of `buildAllDatasets` (`ktu data build --source babi|squad`): both
 * benchmark sides, and stage 1, stage 2 and the ablations from the train side (`buildStageSets`),
 * with the same file layout and the LLaMA-Factory folder.
 */
export async function buildSourceDatasets(source: StageSource, options: StageSetsOptions & { outDir?: string; export?: ExportOptions } = {}): Promise<SourceBuildResult> {
  const outDir = resolve(options.outDir ?? join("out/data", source));
  const { outDir: _o, export: exportOptions, ...stageOptions } = options;
  const sets = buildStageSets(source, stageOptions);
  const paths: Record<string, string> = {};
  const write = async (key: string, file: string, rows: readonly unknown[]): Promise<void> => {
    paths[key] = join(outDir, file);
    await writeJsonlAtomic(paths[key], rows);
  };
  await write("benchmarkTrain", "benchmark/train.jsonl", sets.benchmark.train.rows);
  await write("benchmarkValidation", "benchmark/validation.jsonl", sets.benchmark.validation.rows);
  await write("stage1", "stage1/stage1.jsonl", sets.stage1);
  await write("stage1WithQa", "stage1/stage1_with_qa.jsonl", sets.stage1WithQa);
  await write("stage2", "stage2/stage2.jsonl", sets.stage2.rows);
  await write("qa", "ablations/qa.jsonl", sets.qa);
  await write("cognitionPsqa", "ablations/cognition_psqa.jsonl", sets.cognitionPsqa);
  const llamafactory = await exportLlamaFactory(
    join(outDir, "llamafactory"),
    { cognition: sets.stage1, promptSensitive: sets.stage2.rows, qa: sets.qa, cognitionPsqa: sets.cognitionPsqa, cognitionQa: sets.stage1WithQa },
    exportOptions,
  );
  const counts: SourceBuildResult["counts"] = {
    benchmarkTrain: sets.benchmark.train.rows.length,
    benchmarkValidation: sets.benchmark.validation.rows.length,
    stage1: sets.stage1.length,
    stage1WithQa: sets.stage1WithQa.length,
    stage2: sets.stage2.rows.length,
    stage2Redraws: sets.stage2.redraws,
    stage2Skipped: sets.stage2.skipped,
    qa: sets.qa.length,
    cognitionPsqa: sets.cognitionPsqa.length,
  };
  paths.summary = join(outDir, "summary.json");
  await writeJsonAtomic(paths.summary, { source, counts, benchmarkCounts: { train: sets.benchmark.train.counts, validation: sets.benchmark.validation.counts }, paths, llamafactory, options: stageOptions });
  return { outDir, source, counts, paths, llamafactory };
}

export function formatSourceBuildSummary(r: SourceBuildResult): string {
  const c = r.counts;
  const rows: [string, string, string][] = [
    [`${r.source} benchmark train / validation`, `${c.benchmarkTrain} / ${c.benchmarkValidation}`, "validation rows seen on the train side dropped"],
    ["stage 1 (Cognition)", String(c.stage1), "2 per train-side row"],
    ["stage 1 with QA (Cognition_QA)", String(c.stage1WithQa), "3 per train-side row"],
    ["stage 2 (PromptSensitive)", String(c.stage2), `${c.stage2Redraws} instruction redraws, ${c.stage2Skipped} skipped`],
    ["ablation QA", String(c.qa), "TASK_QA -> gold answer"],
    ["ablation Cognition_PSQA", String(c.cognitionPsqa), "3 per train-side row"],
  ];
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  return `${rows.map(([a, b, n]) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${n}`.trimEnd()).join("\n")}\n\nwritten to ${r.outDir} (LLaMA-Factory folder: ${r.llamafactory.dir})\n`;
}
