/**
 * The main job's training and test sets in compact form: the rows that `buildAllDatasets` wrote
 * (stage 1 from the benchmark's train side, the QA ablation and stage 2 from HotpotQA, the test side
 * for evaluation), re-prompted with compact.ts and cropped to fit the model.
 */
import { readFileSync } from "node:fs";
import { hotpotContext, readHotpotAll, type HotpotSample } from "../data/hotpot.ts";
import { DEFAULT_HOTPOT_FILES } from "../data/build-all.ts";
import { readBenchmark, type EvalBenchmarkRow } from "../eval/io.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { SftExample } from "../train/dataset.ts";
import { InputError } from "../util/errors.ts";
import { checkingTarget, cognitionPrompt, promptSensitivePrompt, qaPrompt, type PromptTexts } from "../model/prompt-format.ts";
import { cropAroundAnswers } from "../data/synthetic.ts";
import { COMPACT_PROMPTS, encodeExample, fitContext, wordOverlap, type FitResult } from "./compact.ts";

export type TrainSetName = "stage1" | "qa" | "stage2";

export interface CompactSet {
  name: TrainSetName;
  examples: SftExample[];
  /** The text of the first few rows, for display. */
  preview: { prompt: string; target: string }[];
  /** Rows whose passage had to be cropped, and the share of passage characters kept overall. */
  cropped: number;
  keptShare: number;
}

/** One test row ready for evaluation: the same cropped passage serves all four prompts. */
export interface TestItem {
  id: string;
  group: string;
  context: string;
  knownQuestion: string;
  unknownQuestion: string;
  gold: string[];
  /** The word-overlap reference scores (no model). */
  overlapKnown: number;
  overlapUnknown: number;
}

export interface PipelineData {
  sets: Record<TrainSetName, CompactSet>;
  test: TestItem[];
  testCropped: number;
  testKeptShare: number;
}

export interface PipelineDataOptions {
  tokenizer: Tokenizer;
  maxLen: number;
  /** Tokens left for generation on test prompts. */
  maxNewTokens: number;
  /** Templates and labels: the model's declared prompt format, default the compact prompts. */
  prompts?: PromptTexts;
  /** Crop every passage to about this many characters around its answer first (a declared format's context_chars). */
  contextChars?: number;
  /** Paths written by buildAllDatasets. */
  paths: Record<string, string>;
  hotpotFiles?: string[];
  /**
   * The QA samples of the QA ablation and stage 2 (their rows' source_id), as JSON Lines in HotpotQA's
   * layout: a bAbI or SQuAD train side (sources.ts). Default: the HotpotQA files.
   */
  samplesFile?: string;
  /** "paper" (literal filter) or "corrected" benchmark for stage 1 and the test side. */
  benchmark: "paper" | "corrected";
  /** At most this many rows per training set and test rows (first rows, as max_samples does). */
  trainRows?: number;
  testRows?: number;
}

function readJsonlRecords(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l, i) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch (error) {
        throw new InputError(path, `line ${i + 1}`, undefined, `not JSON: ${(error as Error).message}`);
      }
    });
}

const str = (file: string, record: Record<string, unknown>, field: string, index: number): string => {
  const v = record[field];
  if (typeof v !== "string") throw new InputError(file, `line ${index + 1}`, field, `expected a string, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v;
};

const goldList = (row: EvalBenchmarkRow): string[] => (Array.isArray(row.pos_answer) ? row.pos_answer : [String(row.pos_answer)]);

/** The first gold answer that occurs in the passage: the crop window is centred on it. */
const anchorOf = (context: string, answers: readonly string[]): string => answers.find((a) => context.toLowerCase().includes(a.toLowerCase())) ?? answers[0] ?? "";

function labelTokens(tokenizer: Tokenizer, ...targets: string[]): number {
  return Math.max(...targets.map((t) => tokenizer.encode(`ANSWER:${t}`, { bos: false }).length - tokenizer.encode("ANSWER:", { bos: false }).length + 1));
}

const limit = <T>(rows: readonly T[], n?: number): T[] => (n === undefined ? [...rows] : rows.slice(0, n));

export async function buildPipelineData(options: PipelineDataOptions): Promise<PipelineData> {
  const { tokenizer, maxLen } = options;
  const p = options.prompts ?? COMPACT_PROMPTS;
  const labels = p.labels;
  // A passage cropped to the declared window first (as the model saw passages in training), then to fit maxLen.
  const fit = (full: string, anchor: string, build: readonly ((context: string) => string)[], answerTokens: number): FitResult => {
    const window = options.contextChars === undefined ? full : cropAroundAnswers(full, [anchor], options.contextChars);
    const f = fitContext(tokenizer, window, anchor, maxLen, build, answerTokens);
    // Counted against the whole passage: the window's cut is a cut too.
    return window === full ? f : { ...f, cut: true, totalChars: f.totalChars + Math.max(0, full.length - window.length) };
  };
  const trainKey = options.benchmark === "paper" ? "splitPaperTrain" : "splitCorrectedTrain";
  const testKey = options.benchmark === "paper" ? "splitPaperTest" : "splitCorrectedTest";
  const trainRows = limit(readBenchmark(options.paths[trainKey]!), options.trainRows === undefined ? undefined : Math.ceil(options.trainRows / 2));
  const testRows = limit(readBenchmark(options.paths[testKey]!), options.testRows);

  // Stage 1: each benchmark row gives its known question (Sufficient) and unknown one (Insufficient), as buildStage1 does.
  const s1Answer = labelTokens(tokenizer, labels.sufficient, labels.insufficient);
  const stage1: CompactSet = { name: "stage1", examples: [], preview: [], cropped: 0, keptShare: 0 };
  let kept = 0;
  let total = 0;
  for (const row of trainRows) {
    const f = fit(row.context, anchorOf(row.context, goldList(row)), [(c) => cognitionPrompt(p, row.pos_query, c), (c) => cognitionPrompt(p, row.neg_query, c)], s1Answer);
    kept += f.keptChars;
    total += f.totalChars;
    if (f.cut) stage1.cropped++;
    for (const [q, label] of [[row.pos_query, labels.sufficient], [row.neg_query, labels.insufficient]] as const) {
      const prompt = cognitionPrompt(p, q, f.context);
      stage1.examples.push(encodeExample(tokenizer, prompt, label, stage1.examples.length, maxLen));
      if (stage1.preview.length < 4) stage1.preview.push({ prompt, target: label });
    }
  }
  stage1.keptShare = total ? kept / total : 1;

  // HotpotQA samples by id, for the QA ablation and stage 2 (their rows carry source_id).
  const samples = new Map<string, HotpotSample>();
  if (options.samplesFile) for (const rec of readJsonlRecords(options.samplesFile)) samples.set(String(rec.id), rec as unknown as HotpotSample);
  else for (const file of options.hotpotFiles ?? DEFAULT_HOTPOT_FILES) for (const s of await readHotpotAll(file)) samples.set(s.id, s);
  const sampleOf = (file: string, rec: Record<string, unknown>, i: number): HotpotSample => {
    const id = str(file, rec, "source_id", i);
    const s = samples.get(id);
    if (!s) throw new InputError(file, `line ${i + 1}`, "source_id", `no sample ${id} in ${options.samplesFile ?? "the HotpotQA files"}`);
    return s;
  };

  const qa: CompactSet = { name: "qa", examples: [], preview: [], cropped: 0, keptShare: 0 };
  kept = total = 0;
  const qaFile = options.paths.qa!;
  limit(readJsonlRecords(qaFile), options.trainRows).forEach((rec, i) => {
    const s = sampleOf(qaFile, rec, i);
    const target = ` ${str(qaFile, rec, "output", i)}`;
    const f = fit(hotpotContext(s), s.answer, [(c) => qaPrompt(p, s.question, c)], labelTokens(tokenizer, target));
    kept += f.keptChars;
    total += f.totalChars;
    if (f.cut) qa.cropped++;
    const prompt = qaPrompt(p, s.question, f.context);
    qa.examples.push(encodeExample(tokenizer, prompt, target, i, maxLen));
    if (qa.preview.length < 4) qa.preview.push({ prompt, target });
  });
  qa.keptShare = total ? kept / total : 1;

  const stage2: CompactSet = { name: "stage2", examples: [], preview: [], cropped: 0, keptShare: 0 };
  kept = total = 0;
  const s2File = options.paths.stage2!;
  limit(readJsonlRecords(s2File), options.trainRows).forEach((rec, i) => {
    const s = sampleOf(s2File, rec, i);
    const checks = (rec.checks as { fulfilled: boolean }[] | undefined) ?? [];
    const target = checkingTarget(p, str(s2File, rec, "answer", i), checks[0]?.fulfilled ?? true, checks[1]?.fulfilled ?? true);
    const instruction = str(s2File, rec, "instruction_text", i);
    const f = fit(hotpotContext(s), s.answer, [(c) => promptSensitivePrompt(p, s.question, c, instruction)], labelTokens(tokenizer, target));
    kept += f.keptChars;
    total += f.totalChars;
    if (f.cut) stage2.cropped++;
    const prompt = promptSensitivePrompt(p, s.question, f.context, instruction);
    stage2.examples.push(encodeExample(tokenizer, prompt, target, i, maxLen));
    if (stage2.preview.length < 4) stage2.preview.push({ prompt, target });
  });
  stage2.keptShare = total ? kept / total : 1;

  // Test side: one crop per row, big enough to leave maxNewTokens for the answer on every prompt.
  kept = total = 0;
  let testCropped = 0;
  const test: TestItem[] = testRows.map((row) => {
    const builders = [
      (c: string) => qaPrompt(p, row.pos_query, c),
      (c: string) => qaPrompt(p, row.neg_query, c),
      (c: string) => cognitionPrompt(p, row.pos_query, c),
      (c: string) => cognitionPrompt(p, row.neg_query, c),
    ];
    const f = fit(row.context, anchorOf(row.context, goldList(row)), builders, Math.max(options.maxNewTokens, s1Answer));
    kept += f.keptChars;
    total += f.totalChars;
    if (f.cut) testCropped++;
    return {
      id: String(row.id),
      group: typeof row.sample_id === "string" ? row.sample_id : String(row.id),
      context: f.context,
      knownQuestion: row.pos_query,
      unknownQuestion: row.neg_query,
      gold: goldList(row),
      overlapKnown: wordOverlap(row.pos_query, f.context),
      overlapUnknown: wordOverlap(row.neg_query, f.context),
    };
  });
  return { sets: { stage1, qa, stage2 }, test, testCropped, testKeptShare: total ? kept / total : 1 };
}
