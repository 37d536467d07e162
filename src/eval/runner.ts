/**
 * Runners: the prompts of paper.md 3.1-3.2 through any AnswerSource, each answer looked up in or
 * added to the answer cache, failures collected per (id, field) so that the finished rows are
 * kept and a rerun asks only for what is missing.
 */
import { evalPrompt, llama2ValidationPrompt, taskCognitionPrompt, type EvalPromptVersion } from "../data/prompts.ts";
import { cropAroundAnswers } from "../data/synthetic.ts";
import { qaPrompt, type PromptFormat } from "../model/prompt-format.ts";
import { goldAnswers } from "./scoring.ts";
import { cognitionCheckIndices, SAMPLING_K, SAMPLING_TEMPERATURE, validationQuestion } from "./baselines.ts";
import { cached, type AnswerCache } from "./cache.ts";
import { mapLimit, SEED_DECODE, type AnswerSource, type DecodeOptions } from "./generator.ts";
import type { EvalBenchmarkRow, EvalPrediction } from "./io.ts";

export interface RunError {
  id: string | number;
  field: string;
  message: string;
}

export interface RunOptions {
  /** Evaluation prompt version (data/prompts.ts); default llama2_chat. */
  prompt?: EvalPromptVersion;
  /**
   * A model's own prompt format (its prompt.json, src/model/prompt-format.ts): when set, questions are
   * asked with its QA template on the passage cropped to its context_chars, instead of `prompt`.
   */
  format?: PromptFormat;
  /** "" for base models, TASK_ASSIGNMENT for the US-Tuning models. */
  taskAssignment?: string;
  decode?: DecodeOptions;
  limit?: number;
  /** Requests in flight; the endpoint client has its own limit too. Default: the source's `parallel`, else 4. */
  concurrency?: number;
  cache?: AnswerCache;
  onProgress?: (done: number, total: number) => void;
}

interface Job {
  row: EvalBenchmarkRow;
  field: string;
  prompt: string;
  decode: DecodeOptions;
  sample?: number;
}

/** Answers every job (cache first), collecting failures instead of stopping at the first. */
async function answerJobs(source: AnswerSource, jobs: readonly Job[], options: RunOptions): Promise<{ answers: (string | undefined)[]; errors: RunError[] }> {
  const errors: RunError[] = [];
  let done = 0;
  const answers = await mapLimit(jobs, options.concurrency ?? source.parallel ?? 4, async (job) => {
    try {
      return await cached(options.cache, { model: source.id, kind: "answer", prompt: job.prompt, settings: job.decode, sample: job.sample }, async () => {
        const [text] = await source.complete([job.prompt], job.decode);
        if (typeof text !== "string") throw new Error("the source returned no text");
        return text;
      });
    } catch (error) {
      errors.push({ id: job.row.id, field: job.field, message: (error as Error).message });
      return undefined;
    } finally {
      options.onProgress?.(++done, jobs.length);
    }
  });
  return { answers, errors };
}

/**
 * A row's passage as a declared format shows it: the window of context_chars around the row's known
 * answer (src/data/synthetic.ts cropAroundAnswers, the reader's training crop), one window for both questions.
 */
export const declaredContext = (format: PromptFormat, row: EvalBenchmarkRow): string => cropAroundAnswers(row.context, goldAnswers(row.pos_answer, "strict"), format.context_chars);

/** The question as the run asks it: the declared format's QA prompt, else the evaluation prompt version. */
export function questionPrompt(row: EvalBenchmarkRow, question: string, options: Pick<RunOptions, "prompt" | "format" | "taskAssignment">): string {
  if (options.format) return qaPrompt(options.format, question, declaredContext(options.format, row));
  return evalPrompt(options.prompt ?? "llama2_chat", question, row.context, options.taskAssignment ?? "");
}

const rowsOf = (rows: readonly EvalBenchmarkRow[], limit?: number) => (limit === undefined ? rows : rows.slice(0, limit));

/** The main benchmark: each row's known and unknown question, same context, same prompt version. */
export async function runBenchmark(rows: readonly EvalBenchmarkRow[], source: AnswerSource, options: RunOptions = {}): Promise<{ predictions: EvalPrediction[]; errors: RunError[] }> {
  const decode = options.decode ?? SEED_DECODE;
  const picked = rowsOf(rows, options.limit);
  const jobs: Job[] = picked.flatMap((row) => [
    { row, field: "pos_prediction", prompt: questionPrompt(row, row.pos_query, options), decode },
    { row, field: "neg_prediction", prompt: questionPrompt(row, row.neg_query, options), decode },
  ]);
  const { answers, errors } = await answerJobs(source, jobs, options);
  const predictions: EvalPrediction[] = [];
  picked.forEach((row, k) => {
    const pos = answers[2 * k];
    const neg = answers[2 * k + 1];
    if (pos !== undefined && neg !== undefined) predictions.push({ id: row.id, pos_prediction: pos, neg_prediction: neg });
  });
  return { predictions, errors };
}

/**
 * The stage-1 classifier check: the TASK_COGNITION prompt on every 10th row. `wrap` puts the
 * prompt into the chat template the model was trained with (identity by default, as the seed).
 */
export async function runCognitionCheck(
  rows: readonly EvalBenchmarkRow[],
  source: AnswerSource,
  options: RunOptions & { wrap?: (prompt: string) => string; step?: number } = {},
): Promise<{ replies: { id: string | number; pos_reply: string; neg_reply: string }[]; errors: RunError[] }> {
  const wrap = options.wrap ?? ((p: string) => p);
  const decode = options.decode ?? SEED_DECODE;
  const picked = cognitionCheckIndices(rows.length, options.step).map((i) => rows[i]!);
  const limited = rowsOf(picked, options.limit);
  const jobs: Job[] = limited.flatMap((row) => [
    { row, field: "pos_reply", prompt: wrap(taskCognitionPrompt(row.context, row.pos_query)), decode },
    { row, field: "neg_reply", prompt: wrap(taskCognitionPrompt(row.context, row.neg_query)), decode },
  ]);
  const { answers, errors } = await answerJobs(source, jobs, options);
  const replies = limited.flatMap((row, k) => {
    const pos = answers[2 * k];
    const neg = answers[2 * k + 1];
    return pos !== undefined && neg !== undefined ? [{ id: row.id, pos_reply: pos, neg_reply: neg }] : [];
  });
  return { replies, errors };
}

/** The sampling baseline: k samples per question at temperature 0.6 (seed: k = 3, LLAMA2_CHAT). */
export async function runSamplingBaseline(
  rows: readonly EvalBenchmarkRow[],
  source: AnswerSource,
  options: RunOptions & { k?: number; temperature?: number; seed?: number } = {},
): Promise<{ samples: { id: string | number; pos_samples: string[]; neg_samples: string[] }[]; errors: RunError[] }> {
  const k = options.k ?? SAMPLING_K;
  const version = options.prompt ?? "llama2_chat";
  const ta = options.taskAssignment ?? "";
  const base = { ...SEED_DECODE, ...options.decode, temperature: options.temperature ?? SAMPLING_TEMPERATURE };
  const picked = rowsOf(rows, options.limit);
  const jobs: Job[] = picked.flatMap((row) =>
    (["pos", "neg"] as const).flatMap((which) =>
      Array.from({ length: k }, (_, s) => ({
        row,
        field: `${which}_samples[${s}]`,
        prompt: evalPrompt(version, which === "pos" ? row.pos_query : row.neg_query, row.context, ta),
        // Seeds from 1: run.c's xorshift generator never leaves state 0.
        decode: { ...base, seed: (options.seed ?? 1) + s },
        sample: s,
      })),
    ),
  );
  const { answers, errors } = await answerJobs(source, jobs, options);
  const samples = picked.flatMap((row, r) => {
    const slice = answers.slice(2 * k * r, 2 * k * (r + 1));
    if (slice.some((a) => a === undefined)) return [];
    return [{ id: row.id, pos_samples: slice.slice(0, k) as string[], neg_samples: slice.slice(k) as string[] }];
  });
  return { samples, errors };
}

/**
 * The self-validation baseline: a greedy LLAMA2_CHAT draft, then LLAMA2_VALIDATION with the
 * draft; the second answer is scored. `seedBugs` asks the unknown row's validation with pos_query.
 */
export async function runValidationBaseline(
  rows: readonly EvalBenchmarkRow[],
  source: AnswerSource,
  options: RunOptions & { seedBugs?: boolean } = {},
): Promise<{ predictions: (EvalPrediction & { pos_draft: string; neg_draft: string })[]; errors: RunError[] }> {
  const drafts = await runBenchmark(rows, source, { ...options, prompt: "llama2_chat" });
  const decode = options.decode ?? SEED_DECODE;
  const ta = options.taskAssignment ?? "";
  const byId = new Map(rows.map((r) => [String(r.id), r]));
  const jobs: Job[] = drafts.predictions.flatMap((d) => {
    const row = byId.get(String(d.id))!;
    return [
      { row, field: "pos_prediction", prompt: llama2ValidationPrompt(validationQuestion(row, "pos"), row.context, d.pos_prediction, ta), decode },
      { row, field: "neg_prediction", prompt: llama2ValidationPrompt(validationQuestion(row, "neg", options.seedBugs), row.context, d.neg_prediction, ta), decode },
    ];
  });
  const { answers, errors } = await answerJobs(source, jobs, options);
  const predictions = drafts.predictions.flatMap((d, k) => {
    const pos = answers[2 * k];
    const neg = answers[2 * k + 1];
    return pos !== undefined && neg !== undefined ? [{ id: d.id, pos_prediction: pos, neg_prediction: neg, pos_draft: d.pos_prediction, neg_draft: d.neg_prediction }] : [];
  });
  return { predictions, errors: [...drafts.errors, ...errors] };
}
