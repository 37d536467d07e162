/**
 * Confidences from the model itself (calibration.md section 1) over benchmark rows, each item
 * carrying its label, its group (the ASQA ambiguous question when the row has one, so that the
 * bootstrap resamples whole clusters) and its question kind:
 * (a) P(Sufficient) after the TASK_COGNITION prompt, against answerability;
 * (b) 1 − P(refuse) = 1 − P("Not Provided") after the evaluation prompt, against answerability;
 * (c) exp(mean token log-prob) of the greedy answer, against correctness, on answered items.
 */
import { taskCognitionPrompt, type EvalPromptVersion } from "../data/prompts.ts";
import { cognitionPrompt, type PromptFormat } from "../model/prompt-format.ts";
import { cached, type AnswerCache } from "./cache.ts";
import { answerConfidence, labelProbability, refusalProbability } from "./confidence.ts";
import { mapLimit, SEED_DECODE, type AnswerSource, type DecodeOptions } from "./generator.ts";
import type { EvalBenchmarkRow } from "./io.ts";
import { goldAnswers, isKnownCorrect, isRefusal, type MetricVariant } from "./scoring.ts";
import { declaredContext, questionPrompt, type RunError } from "./runner.ts";

export interface ConfidenceItem {
  id: string | number;
  question: "known" | "unknown";
  label: 0 | 1;
  confidence: number;
  group: string;
  /** Source (a): log of the two labels' total mass; low means the model wanted to say something else. */
  log_label_mass?: number;
  text?: string;
}

export interface ConfidenceRun {
  source: "p_sufficient" | "p_answer" | "answer_logprob";
  target: "answerability" | "correctness";
  scoring_rule?: MetricVariant;
  items: ConfidenceItem[];
  /** Source (c): items not scored because the model refused or answered nothing. */
  refused?: { n: number; known: number };
  errors: RunError[];
}

export interface CalibrateOptions {
  limit?: number;
  cache?: AnswerCache;
  concurrency?: number;
  /** Puts a prompt into the chat template the model was trained with (identity by default). */
  wrap?: (prompt: string) => string;
  prompt?: EvalPromptVersion;
  /** A model's own prompt format (prompt.json): its cognition and QA templates and labels replace the paper's prompts and `wrap`. */
  format?: PromptFormat;
  taskAssignment?: string;
  decode?: DecodeOptions;
  /** Scoring rule for source (c)'s correctness labels; strict by default (calibration.md 1.1). */
  metric?: MetricVariant;
  onProgress?: (done: number, total: number) => void;
}

/** The cluster key: the ASQA sample when the row names one, else the row itself. */
export const rowGroup = (row: EvalBenchmarkRow): string =>
  typeof row.sample_id === "string" && row.sample_id !== "" ? `sample:${row.sample_id}` : `row:${String(row.id)}`;

type Question = { row: EvalBenchmarkRow; question: "known" | "unknown"; text: string };
const questionsOf = (rows: readonly EvalBenchmarkRow[], limit?: number): Question[] =>
  (limit === undefined ? rows : rows.slice(0, limit)).flatMap((row) => [
    { row, question: "known" as const, text: row.pos_query },
    { row, question: "unknown" as const, text: row.neg_query },
  ]);

async function over<T>(questions: Question[], options: CalibrateOptions, task: (q: Question) => Promise<T>): Promise<{ results: (T | undefined)[]; errors: RunError[] }> {
  const errors: RunError[] = [];
  let done = 0;
  const results = await mapLimit(questions, options.concurrency ?? 4, async (q) => {
    try {
      return await task(q);
    } catch (error) {
      errors.push({ id: q.row.id, field: q.question === "known" ? "pos_query" : "neg_query", message: (error as Error).message });
      return undefined;
    } finally {
      options.onProgress?.(++done, questions.length);
    }
  });
  return { results, errors };
}

function needs<K extends keyof AnswerSource>(source: AnswerSource, method: K): NonNullable<AnswerSource[K]> {
  const fn = source[method];
  if (typeof fn !== "function") throw new Error(`the answer source ${source.id} cannot give ${String(method)} (needed for this confidence source)`);
  return (fn as (...args: unknown[]) => unknown).bind(source) as NonNullable<AnswerSource[K]>;
}

/** Source (a): P(Sufficient) from the summed token log-probs of the bare labels. */
export async function sufficiencyConfidences(rows: readonly EvalBenchmarkRow[], source: AnswerSource, options: CalibrateOptions = {}): Promise<ConfidenceRun> {
  const score = needs(source, "continuationLogprobs");
  const wrap = options.wrap ?? ((p: string) => p);
  const f = options.format;
  const labels = f ? [f.labels.sufficient, f.labels.insufficient] : ["Sufficient", "Insufficient"];
  const { results, errors } = await over(questionsOf(rows, options.limit), options, async (q) => {
    const prompt = f ? cognitionPrompt(f, q.text, declaredContext(f, q.row)) : wrap(taskCognitionPrompt(q.row.context, q.text));
    const [suf, insuf] = await cached(options.cache, { model: source.id, kind: "continuation", prompt, settings: { continuations: labels } }, () => score(prompt, labels));
    const p = labelProbability(suf!, insuf!);
    return { id: q.row.id, question: q.question, label: q.question === "known" ? 1 : 0, confidence: p.probability, group: rowGroup(q.row), log_label_mass: p.logLabelMass } as ConfidenceItem;
  });
  return { source: "p_sufficient", target: "answerability", items: results.filter((r): r is ConfidenceItem => r !== undefined), errors };
}

/** Source (b): 1 − P("Not Provided") at the first response position of the evaluation prompt. */
export async function answerProbabilityConfidences(rows: readonly EvalBenchmarkRow[], source: AnswerSource, options: CalibrateOptions = {}): Promise<ConfidenceRun> {
  const score = needs(source, "continuationLogprobs");
  const refusal = options.format?.labels.refusal ?? "Not Provided";
  const { results, errors } = await over(questionsOf(rows, options.limit), options, async (q) => {
    const prompt = questionPrompt(q.row, q.text, options);
    const [ref] = await cached(options.cache, { model: source.id, kind: "continuation", prompt, settings: { continuations: [refusal] } }, () => score(prompt, [refusal]));
    return { id: q.row.id, question: q.question, label: q.question === "known" ? 1 : 0, confidence: 1 - refusalProbability(ref!), group: rowGroup(q.row) } as ConfidenceItem;
  });
  return { source: "p_answer", target: "answerability", items: results.filter((r): r is ConfidenceItem => r !== undefined), errors };
}

/** Source (c): the geometric-mean token probability of the greedy answer, against its correctness. */
export async function answerLogprobConfidences(rows: readonly EvalBenchmarkRow[], source: AnswerSource, options: CalibrateOptions = {}): Promise<ConfidenceRun> {
  const gen = needs(source, "completeWithLogprobs");
  const decode = options.decode ?? SEED_DECODE;
  const metric = options.metric ?? "strict";
  let refused = 0;
  let refusedKnown = 0;
  const { results, errors } = await over(questionsOf(rows, options.limit), { ...options, concurrency: options.concurrency ?? source.parallel }, async (q) => {
    const prompt = questionPrompt(q.row, q.text, options);
    const answer = await cached(options.cache, { model: source.id, kind: "logprobs", prompt, settings: decode }, () => gen(prompt, decode));
    const conf = answerConfidence(answer.tokenLogprobs);
    if (conf === null || isRefusal(answer.text, metric)) {
      refused++;
      if (q.question === "known") refusedKnown++;
      return undefined;
    }
    // An answer to an unknown question is never correct: it is a hallucination.
    const correct = q.question === "known" && isKnownCorrect(answer.text, goldAnswers(q.row.pos_answer, metric), metric);
    return { id: q.row.id, question: q.question, label: correct ? 1 : 0, confidence: conf.geometricMean, group: rowGroup(q.row), text: answer.text } as ConfidenceItem;
  });
  return {
    source: "answer_logprob",
    target: "correctness",
    scoring_rule: metric,
    items: results.filter((r): r is ConfidenceItem => r !== undefined),
    refused: { n: refused, known: refusedKnown },
    errors,
  };
}
