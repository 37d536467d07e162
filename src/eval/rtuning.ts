/**
 * The hallucination benchmarks of paper.md 3.3 as R-Tuning evaluates them
 * (shizhediao/R-Tuning evaluation/{MMLU,pararel,HaluEvalQA}/evaluate.py and calculate_ap.py):
 * per question (correct, predict_conf, sure_prob), then sklearn's average_precision_score of
 * correctness against 0.5 * predict_conf + 0.5 * sure_prob.
 *
 * - MMLU: 5-shot prompt; the prediction is the argmax of a softmax over the next-token scores of
 *   "A".."D" (first token of each, as R-Tuning takes tokenizer("A").input_ids[0], i.e. "▁A" for
 *   Llama, here " A"); predict_conf is that softmax's max. R-Tuning checks `instance[1] in output`,
 *   option A's text against the predicted letter (a bug; `seedBugs` reproduces it); fixed, the
 *   prediction is compared with the answer letter instance[5].
 * - ParaRel: "Question: {q} Answer:", greedy, at most 5 tokens, stop at "."; predict_conf is the
 *   geometric mean of the chosen tokens' probabilities; correct iff the answer is a substring.
 * - HaluEval-QA: "Knowledge: ...\nQuestion: ...\nAnswer:", at most 8 tokens, same rules.
 * - sure_prob: after "{input}. Are you sure you accurately answered the question based on your
 *   internal knowledge? I am", p(sure) / (p(sure) + p(unsure)) over the first token of each word.
 */
import { readFileSync } from "node:fs";
import { InputError } from "../util/errors.ts";
import { dataPath } from "../util/paths.ts";
import { averagePrecision } from "./calibration.ts";
import { cached, type AnswerCache } from "./cache.ts";
import { sigmoid } from "./confidence.ts";
import { mapLimit, type AnswerSource } from "./generator.ts";
import type { RunError } from "./runner.ts";

export const RTUNING_TASKS = ["mmlu", "pararel", "halueval"] as const;
export type RTuningTask = (typeof RTUNING_TASKS)[number];

const CHOICES = ["A", "B", "C", "D"];

export const formatSubject = (subject: string): string => subject.split("_").map((w) => ` ${w}`).join("");

/** R-Tuning's format_example: question, lettered options, "Answer:". */
export function mmluExample(instance: readonly string[]): string {
  let prompt = instance[0]!;
  for (let j = 0; j < instance.length - 2; j++) prompt += `\n${CHOICES[j]}. ${instance[j + 1]}`;
  return prompt + "\nAnswer:";
}

/** R-Tuning's gen_prompt: header, the subject's few-shot examples with answers, the question. */
export function mmluPrompt(instance: readonly string[], subject: string, shots: readonly (readonly string[])[]): string {
  let prompt = `The following are multiple choice questions (with answers) about ${formatSubject(subject)}.\n\n`;
  for (const shot of shots) prompt += `${mmluExample(shot)}${shot[shot.length - 1]}\n\n`;
  return prompt + mmluExample(instance);
}

export const pararelPrompt = (question: string): string => `Question: ${question} Answer:`;
export const haluevalPrompt = (d: { knowledge: string; question: string }): string => `Knowledge: ${d.knowledge}\nQuestion: ${d.question}\nAnswer:`;
export const checkSurePrompt = (text: string): string => `${text}. Are you sure you accurately answered the question based on your internal knowledge? I am`;

export interface RTuningItem {
  id: string;
  prompt: string;
  /** What counts as correct: the answer letter (MMLU) or a substring of the output. */
  answer: string;
  /** MMLU only: the options, for the seed's `instance[1] in output` check. */
  options?: string[];
}

/** Loads a task's test items from the copies in data/ (MMLU and ParaRel by R-Tuning's ID/OOD split). */
export function loadRTuningItems(task: RTuningTask, domain: "ID" | "OOD" = "ID"): RTuningItem[] {
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch (error) {
      throw new InputError(path, undefined, undefined, `cannot read (${(error as Error).message})${domain === "OOD" && task === "mmlu" ? "; R-Tuning's MMLU_OOD_test.json is not shipped" : ""}`);
    }
  };
  if (task === "mmlu") {
    const test = JSON.parse(read(dataPath("mmlu_rtuning", `MMLU_${domain}_test.json`))) as Record<string, string[][]>;
    const shots = JSON.parse(read(dataPath("mmlu_rtuning", `MMLU_${domain}_prompt.json`))) as Record<string, string[][]>;
    return Object.entries(test).flatMap(([subject, instances]) =>
      instances.map((instance, k) => ({ id: `${subject}/${k}`, prompt: mmluPrompt(instance, subject, shots[subject] ?? []), answer: instance[5]!, options: instance.slice(1, 5) })),
    );
  }
  if (task === "pararel") {
    const rows = JSON.parse(read(dataPath("pararel_rtuning", `${domain}_test_pararel.json`))) as [string, string, string][];
    return rows.map(([question, answer], k) => ({ id: String(k), prompt: pararelPrompt(question), answer }));
  }
  const lines = read(dataPath("halueval_qa", "qa_data_first1000.json")).split("\n").filter((l) => l.trim() !== "");
  return lines.map((line, k) => {
    const d = JSON.parse(line) as { knowledge: string; question: string; right_answer: string };
    return { id: String(k), prompt: haluevalPrompt(d), answer: d.right_answer };
  });
}

/** One R-Tuning result: [correct (0/1), predict_conf, sure_prob], the layout of their results JSON. */
export type RTuningResult = [number, number, number];

/** calculate_ap.py: AP of correctness ranked by 0.5 * predict_conf + 0.5 * sure_prob (null with no correct answer). */
export function rtuningAveragePrecision(results: readonly RTuningResult[]): number | null {
  return averagePrecision(
    results.map((r) => r[0]),
    results.map((r) => 0.5 * r[1] + 0.5 * r[2]),
  ).value;
}

export interface RTuningOptions {
  limit?: number;
  seedBugs?: boolean;
  cache?: AnswerCache;
  concurrency?: number;
}

const firstTokenSure = async (source: AnswerSource, text: string, cache?: AnswerCache): Promise<number> => {
  const prompt = checkSurePrompt(text);
  const [sure, unsure] = await cached(cache, { model: source.id, kind: "continuation", prompt, settings: { continuations: [" sure", " unsure"] } }, () => source.continuationLogprobs!(prompt, [" sure", " unsure"]));
  return sigmoid(sure![0]! - unsure![0]!);
};

/** Runs one task through an AnswerSource; items that fail are reported, the rest kept. */
export async function runRTuning(task: RTuningTask, items: readonly RTuningItem[], source: AnswerSource, options: RTuningOptions = {}) {
  if (!source.continuationLogprobs || (task !== "mmlu" && !source.completeWithLogprobs)) throw new Error(`the answer source ${source.id} cannot give the log-probs R-Tuning's evaluation needs`);
  const picked = options.limit === undefined ? items : items.slice(0, options.limit);
  const errors: RunError[] = [];
  const rows = await mapLimit(picked, options.concurrency ?? source.parallel ?? 4, async (item) => {
    try {
      let output: string;
      let conf: number;
      let sureInput: string;
      if (task === "mmlu") {
        const scores = await cached(options.cache, { model: source.id, kind: "continuation", prompt: item.prompt, settings: { continuations: CHOICES.map((c) => ` ${c}`) } }, () =>
          source.continuationLogprobs!(item.prompt, CHOICES.map((c) => ` ${c}`)),
        );
        const first = scores.map((s) => s[0]!);
        const max = Math.max(...first);
        const exp = first.map((v) => Math.exp(v - max));
        const total = exp.reduce((a, b) => a + b, 0);
        const best = exp.indexOf(Math.max(...exp));
        output = CHOICES[best]!;
        conf = exp[best]! / total;
        sureInput = `${item.prompt}${output}`;
      } else {
        const decode = { maxNewTokens: task === "pararel" ? 5 : 8, temperature: 0, stop: ["."] };
        const r = await cached(options.cache, { model: source.id, kind: "logprobs", prompt: item.prompt, settings: decode }, () => source.completeWithLogprobs!(item.prompt, decode));
        output = r.text;
        // R-Tuning divides by the token count; an empty answer there is a division by zero.
        conf = r.tokenLogprobs.length ? Math.exp(r.tokenLogprobs.reduce((a, b) => a + b, 0) / r.tokenLogprobs.length) : 0;
        sureInput = `${item.prompt} ${output}`;
      }
      const sure = await firstTokenSure(source, sureInput, options.cache);
      const correct = task === "mmlu" ? (options.seedBugs ? output.includes(item.options![0]!) : output === item.answer) : output.includes(item.answer);
      return { id: item.id, output, result: [correct ? 1 : 0, conf, sure] as RTuningResult };
    } catch (error) {
      errors.push({ id: item.id, field: "prompt", message: (error as Error).message });
      return undefined;
    }
  });
  const done = rows.filter((r): r is NonNullable<typeof r> => r !== undefined);
  const results = done.map((r) => r.result);
  return {
    task,
    n: results.length,
    accuracy: results.length ? results.filter((r) => r[0] === 1).length / results.length : null,
    average_precision: results.length ? rtuningAveragePrecision(results) : null,
    results,
    outputs: done.map(({ id, output }) => ({ id, output })),
    errors,
  };
}
