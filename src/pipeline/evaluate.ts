/**
 * Evaluation of one model on the test side, with the collapse diagnostics beside every number
 * (tiny-scale-feasibility.md 6.1): known / unknown / overall accuracy with cluster-bootstrap
 * intervals (the ASQA ambiguous question is the cluster), the stage-1 classifier's AUROC against 0.5,
 * the share of the most common output, and the word-overlap reference on the same rows.
 */
import { bootstrapMetrics, calibrationReport, type CalibrationReport } from "../eval/bootstrap.ts";
import { auroc } from "../eval/calibration.ts";
import { harmonicMean, isRefusal, scoreRow, summarizeRows, type Accuracies, type MetricVariant } from "../eval/scoring.ts";
import { continuationLogprobs, DEFAULT_BATCH, generateBatch } from "../model/generate.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { LlamaModelData } from "../model/types.ts";
import { Rng } from "../util/rng.ts";
import { cognitionPrompt, qaPrompt, type PromptTexts } from "../model/prompt-format.ts";
import { COMPACT_PROMPTS } from "./compact.ts";
import type { TestItem } from "./datasets.ts";

export interface ItemOutput {
  id: string;
  group: string;
  known_answer: string;
  unknown_answer: string;
  /** P(Sufficient) on the cognition prompt, normalised over the two labels. */
  known_p_sufficient: number;
  unknown_p_sufficient: number;
  /** 1 − P(" Not Provided") on the QA prompt. */
  known_p_answer: number;
  unknown_p_answer: number;
}

export type Interval = [number, number];

export interface MetricWithCi {
  value: number;
  ci: Interval | null;
}

export interface CollapseDiagnostics {
  /** Share of the most common first word of the QA answers, over all known and unknown questions. */
  majority_output_share: number;
  majority_output: string;
  /** Share of all answers that are refusals (paper.md 3.1 keywords or empty). */
  refusal_share: number;
  /** Share of the most common stage-1 label (P(Sufficient) > 0.5 or not) over all test questions. */
  majority_label_share: number;
  majority_label: "Sufficient" | "Insufficient";
  /** AUROC of P(Sufficient) for known (1) vs unknown (0) questions, with its cluster-bootstrap interval. */
  auroc_p_sufficient: MetricWithCi;
  /** AUROC of 1 − P(Not Provided) on the QA prompt. */
  auroc_p_answer: MetricWithCi;
  /** Stage-1 classification accuracy (threshold 0.5); the majority baseline is 50%. */
  classification_acc: number;
  /** The output is (nearly) constant: one first word in >= 90% of the answers. */
  collapsed: boolean;
  /** Both AUROC intervals contain 0.5: no evidence that the model tells known from unknown. */
  no_discrimination: boolean;
}

export interface ArmEvaluation {
  n: number;
  metric: MetricVariant;
  known: MetricWithCi;
  unknown: MetricWithCi;
  overall: MetricWithCi;
  /** The same answers under the seed's lenient 2024-08 rule (word expansion), for comparison. */
  lenient: Accuracies;
  strict: Accuracies;
  diagnostics: CollapseDiagnostics;
  calibration: { p_sufficient: CalibrationReport; p_answer: CalibrationReport };
  items: ItemOutput[];
  seconds: number;
}

export interface EvaluateOptions {
  maxNewTokens: number;
  /** Templates and labels (a model's declared prompt format); default the compact prompts. */
  prompts?: PromptTexts;
  /** Strings that end an answer (EOS always does); default a line break. */
  stop?: string[];
  /** Bootstrap draws (default 1000) and seed. */
  draws?: number;
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

/** An answer's first word (letters and digits, lower case): "Insufficient..." and "insufficient" are one output. */
const firstWord = (s: string): string => s.toLowerCase().match(/[\p{L}\p{N}]+/u)?.[0] ?? "(empty)";

function majority<T>(values: readonly T[]): { value: T; share: number } {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: T = values[0]!;
  let n = 0;
  for (const [v, k] of counts) if (k > n) [best, n] = [v, k];
  return { value: best, share: values.length ? n / values.length : 0 };
}

/** Percentile interval of `stat` over cluster resamples of `items`. */
export function clusterBootstrap<T>(items: readonly T[], groupOf: (t: T) => string, stat: (sample: T[]) => number, draws = 1000, seed = 0, level = 0.95): Interval | null {
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const g = groupOf(it);
    const list = groups.get(g);
    if (list) list.push(it);
    else groups.set(g, [it]);
  }
  const lists = [...groups.values()];
  if (lists.length < 2) return null;
  const rng = new Rng(seed);
  const values: number[] = [];
  for (let b = 0; b < draws; b++) {
    const sample: T[] = [];
    for (let g = 0; g < lists.length; g++) sample.push(...lists[Math.floor(rng.next() * lists.length)]!);
    values.push(stat(sample));
  }
  values.sort((a, b) => a - b);
  const at = (q: number) => values[Math.min(values.length - 1, Math.max(0, Math.round(q * (values.length - 1))))]!;
  return [at((1 - level) / 2), at(1 - (1 - level) / 2)];
}

function pSufficient(model: LlamaModelData, tokenizer: Tokenizer, p: PromptTexts, question: string, context: string): number {
  const [s, i] = continuationLogprobs(model, tokenizer, cognitionPrompt(p, question, context), [p.labels.sufficient, p.labels.insufficient]);
  const d = i!.sum - s!.sum;
  return 1 / (1 + Math.exp(d));
}

function pAnswer(model: LlamaModelData, tokenizer: Tokenizer, p: PromptTexts, question: string, context: string): number {
  const [r] = continuationLogprobs(model, tokenizer, qaPrompt(p, question, context), [p.labels.refusal]);
  return 1 - Math.exp(r!.sum);
}

/** Answers every test item with the model (greedy, stops at a line break or the declared stop strings) and scores them. */
export async function evaluateArm(model: LlamaModelData, tokenizer: Tokenizer, test: readonly TestItem[], options: EvaluateOptions): Promise<ArmEvaluation> {
  const t0 = performance.now();
  const items: ItemOutput[] = [];
  const p = options.prompts ?? COMPACT_PROMPTS;
  // Answers are generated a block of rows at a time with continuous batching (generateBatch: each answer
  // token for token what generate() gives alone); the block keeps progress and Ctrl-C responsive.
  const block = 4 * DEFAULT_BATCH;
  let answers: string[] = [];
  for (const [k, t] of test.entries()) {
    if (k % block === 0) {
      const prompts = test.slice(k, k + block).flatMap((r) => [qaPrompt(p, r.knownQuestion, r.context), qaPrompt(p, r.unknownQuestion, r.context)]);
      answers = generateBatch(model, tokenizer, prompts, { maxNewTokens: options.maxNewTokens, stop: options.stop ?? ["\n"] }).map((r) => r.text);
    }
    items.push({
      id: t.id,
      group: t.group,
      known_answer: answers[2 * (k % block)]!,
      unknown_answer: answers[2 * (k % block) + 1]!,
      known_p_sufficient: pSufficient(model, tokenizer, p, t.knownQuestion, t.context),
      unknown_p_sufficient: pSufficient(model, tokenizer, p, t.unknownQuestion, t.context),
      known_p_answer: pAnswer(model, tokenizer, p, t.knownQuestion, t.context),
      unknown_p_answer: pAnswer(model, tokenizer, p, t.unknownQuestion, t.context),
    });
    options.onProgress?.(k + 1, test.length);
    // Lets a notebook's progress display and Ctrl-C through between rows.
    await new Promise((r) => setImmediate(r));
  }
  return { ...scoreOutputs(items, test, options), seconds: (performance.now() - t0) / 1000 };
}

/** The numbers of an evaluation from its answers (also used to re-score saved answers). */
export function scoreOutputs(items: readonly ItemOutput[], test: readonly TestItem[], options: { draws?: number; seed?: number } = {}): Omit<ArmEvaluation, "seconds"> {
  const draws = options.draws ?? 1000;
  const seed = options.seed ?? 0;
  const gold = new Map(test.map((t) => [t.id, t.gold]));
  const rows = (variant: MetricVariant, sample: readonly ItemOutput[]) => sample.map((o) => scoreRow(o.id, gold.get(o.id) ?? [], o.known_answer, o.unknown_answer, variant));
  const strict = summarizeRows(rows("strict", items));
  const lenient = summarizeRows(rows("2024-08", items));
  const ci = (f: (a: Accuracies) => number) => clusterBootstrap(items, (o) => o.group, (s) => f(summarizeRows(rows("strict", s))), draws, seed);

  const labels = items.flatMap(() => [1, 0]);
  const groups = items.flatMap((o) => [o.group, o.group]);
  const suff = items.flatMap((o) => [o.known_p_sufficient, o.unknown_p_sufficient]);
  const ans = items.flatMap((o) => [o.known_p_answer, o.unknown_p_answer]);
  const rocCi = (c: number[]): MetricWithCi => ({ value: auroc(labels, c).value ?? 0.5, ci: draws > 0 ? bootstrapMetrics(labels, c, { groups, draws, seed }).ci.auroc : null });
  const aS = rocCi(suff);
  const aA = rocCi(ans);
  const out = majority(items.flatMap((o) => [firstWord(o.known_answer), firstWord(o.unknown_answer)]));
  const refusals = items.flatMap((o) => [o.known_answer, o.unknown_answer]).filter((a) => isRefusal(a, "strict")).length;
  const lab = majority(suff.map((p): "Sufficient" | "Insufficient" => (p > 0.5 ? "Sufficient" : "Insufficient")));
  const classAcc = suff.filter((p, i) => (p > 0.5 ? 1 : 0) === labels[i]).length / Math.max(1, suff.length);
  const contains = (c: Interval | null, v: number) => c === null || (c[0] <= v && v <= c[1]);
  const calib = (c: number[], name: string) =>
    calibrationReport(labels, c, { groups, draws: Math.min(draws, 200), seed, provenance: { source: name, target: "answerability", convention: "positive-class", positive_class: "known question" } });
  return {
    n: items.length,
    metric: "strict",
    known: { value: strict.known_acc, ci: ci((a) => a.known_acc) },
    unknown: { value: strict.unknown_acc, ci: ci((a) => a.unknown_acc) },
    overall: { value: harmonicMean(strict.known_acc, strict.unknown_acc), ci: ci((a) => harmonicMean(a.known_acc, a.unknown_acc)) },
    strict,
    lenient,
    diagnostics: {
      majority_output_share: out.share,
      majority_output: out.value,
      refusal_share: items.length ? refusals / (2 * items.length) : 0,
      majority_label_share: lab.share,
      majority_label: lab.value,
      auroc_p_sufficient: aS,
      auroc_p_answer: aA,
      classification_acc: classAcc,
      collapsed: out.share >= 0.9,
      no_discrimination: contains(aS.ci, 0.5) && contains(aA.ci, 0.5),
    },
    calibration: { p_sufficient: calib(suff, "P(Sufficient), compact cognition prompt"), p_answer: calib(ans, "1 - P(Not Provided), compact QA prompt") },
    items: [...items],
  };
}

/** The word-overlap reference on the test items: AUROC of overlap for known vs unknown questions. */
export function overlapReference(test: readonly TestItem[], draws = 1000, seed = 0): MetricWithCi {
  const labels = test.flatMap(() => [1, 0]);
  const c = test.flatMap((t) => [t.overlapKnown, t.overlapUnknown]);
  const groups = test.flatMap((t) => [t.group, t.group]);
  return { value: auroc(labels, c).value ?? 0.5, ci: draws > 0 ? bootstrapMetrics(labels, c, { groups, draws, seed }).ci.auroc : null };
}

/** The first `n` words of a passage, after its "This is a passage about X:" header line: the non-reading answer. */
export function firstPassageWords(context: string, n = 5): string {
  const body = context.startsWith("This is a passage about ") ? context.slice(context.indexOf("\n") + 1) : context;
  return body.replace(/^\.\.\.\s*/, "").split(/\s+/).filter(Boolean).slice(0, n).join(" ");
}

export interface NonReadingBaseline {
  id: "first_words" | "overlap_first_words";
  label: string;
  known: MetricWithCi;
  unknown: MetricWithCi;
  overall: MetricWithCi;
  lenient: { known: number; unknown: number; overall: number };
}

/**
 * Scores without a model on the same test rows, for reading beside every arm's numbers: the first 5
 * passage words as the answer to every question (it never refuses), and the same answer unless the
 * question's content words are less than half in the passage, when it says "Not Provided" (a fixed
 * threshold, not tuned on the test rows). The word-overlap AUROC is `overlapReference`.
 */
export function nonReadingBaselines(test: readonly TestItem[], options: { draws?: number; seed?: number } = {}): NonReadingBaseline[] {
  const make = (id: NonReadingBaseline["id"], label: string, answer: (t: TestItem, overlap: number) => string): NonReadingBaseline => {
    const items: ItemOutput[] = test.map((t) => ({
      id: t.id,
      group: t.group,
      known_answer: answer(t, t.overlapKnown),
      unknown_answer: answer(t, t.overlapUnknown),
      known_p_sufficient: t.overlapKnown,
      unknown_p_sufficient: t.overlapUnknown,
      known_p_answer: t.overlapKnown,
      unknown_p_answer: t.overlapUnknown,
    }));
    const s = scoreOutputs(items, test, options);
    return { id, label, known: s.known, unknown: s.unknown, overall: s.overall, lenient: { known: s.lenient.known_acc, unknown: s.lenient.unknown_acc, overall: s.lenient.overall } };
  };
  return [
    make("first_words", "first 5 passage words (no model)", (t) => firstPassageWords(t.context)),
    make("overlap_first_words", "first 5 passage words, Not Provided when word overlap < 0.5 (no model)", (t, o) => (o < 0.5 ? "Not Provided" : firstPassageWords(t.context))),
  ];
}
