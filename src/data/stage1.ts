import type { AlpacaRow } from "./alpaca.ts";
import type { BenchmarkRow } from "./benchmark.ts";
import { hotpotContext, type HotpotSample } from "./hotpot.ts";
import { taskCognitionPrompt, taskQaPrompt } from "./prompts.ts";

/**
 * Stage 1, uncertainty recognition (paper.md §1.2): per benchmark row a Sufficient sample (the
 * known question) then an Insufficient sample (the unknown question), both on the shown context.
 * The labels are the bare words even though the prompt asks for '<Sufficient>' tags, as in the seed.
 */

export type Stage1Kind = "sufficient" | "insufficient" | "qa";

export interface Stage1Row extends AlpacaRow {
  kind: Stage1Kind;
  /** Benchmark row id, or the HotpotQA id for the with_qa rows. */
  source_id: string;
}

export function cognitionRows(row: BenchmarkRow): [Stage1Row, Stage1Row] {
  return [
    { instruction: taskCognitionPrompt(row.context, row.pos_query), input: "", output: "Sufficient", kind: "sufficient", source_id: String(row.id) },
    { instruction: taskCognitionPrompt(row.context, row.neg_query), input: "", output: "Insufficient", kind: "insufficient", source_id: String(row.id) },
  ];
}

/** The plain QA ablation row: TASK_QA prompt -> gold answer. */
export function qaRow(sample: HotpotSample): Stage1Row {
  return { instruction: taskQaPrompt(hotpotContext(sample), sample.question), input: "", output: sample.answer, kind: "qa", source_id: sample.id };
}

/**
 * With `withQa`, each pair is followed by the next HotpotQA sample (the Cognition_QA variant). The
 * seed indexes its 90k-record train file and never runs out; a short list here wraps around.
 */
export function buildStage1(benchmark: readonly BenchmarkRow[], options: { withQa?: readonly HotpotSample[] } = {}): Stage1Row[] {
  const qa = options.withQa;
  if (qa !== undefined && qa.length === 0 && benchmark.length > 0) throw new RangeError("buildStage1: withQa needs at least one HotpotQA sample");
  const out: Stage1Row[] = [];
  benchmark.forEach((row, i) => {
    out.push(...cognitionRows(row));
    if (qa) out.push(qaRow(qa[i % qa.length]!));
  });
  return out;
}
