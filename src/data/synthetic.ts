/**
 * Curriculum tasks for a reader base: skills a tiny model must have before US-Tuning can mean anything
 * (docs/tiny-scale-feasibility.md: it has to match a question against its passage). Each generator is a
 * pure function of its Rng, so a batch is a function of (seed, step) and training resumes exactly.
 * Every example is a prompt and an answer; the loss is taken on the answer (and EOS) only.
 * - copy: repeat a list of words (induction: find the earlier copy, emit what followed it);
 * - recall: "key: value" lines, then one key; answer its value (associative recall);
 * - member: a list of names, then "Is NAME listed?"; Yes or No (the sufficiency skill in miniature);
 * - span: extractive QA on real passages (HotpotQA supporting facts, ASQA short answers).
 */
import type { Rng } from "../util/rng.ts";
import type { SpanQa } from "./reader-data.ts";

export interface TaskExample {
  task: string;
  prompt: string;
  /** The target continuation, with its leading space. */
  answer: string;
}

export interface WordPools {
  /** Capitalised words (names, places) from the corpus. */
  names: string[];
  /** Lower-case words from the corpus. */
  words: string[];
}

/** The most frequent capitalised and lower-case words of the corpus (ties by text, so deterministic). */
export function wordPools(corpus: readonly string[], size = 2000): WordPools {
  const counts = new Map<string, number>();
  for (const doc of corpus) for (const w of doc.match(/\b[A-Za-z]{3,12}\b/g) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([w]) => w);
  const names = ranked.filter((w) => /^[A-Z][a-z]+$/.test(w) && !counts.has(w.toLowerCase())).slice(0, size);
  const words = ranked.filter((w) => /^[a-z]+$/.test(w)).slice(0, size);
  return { names, words };
}

/** `n` distinct items from `pool`. */
function distinct(rng: Rng, pool: readonly string[], n: number): string[] {
  const picked = new Set<string>();
  while (picked.size < n) picked.add(rng.pick(pool));
  return [...picked];
}

export function copyTask(rng: Rng, pools: WordPools, maxWords = 12): TaskExample {
  const words = Array.from({ length: rng.int(3, maxWords) }, () => rng.pick(rng.next() < 0.3 ? pools.names : pools.words));
  return { task: "copy", prompt: `Copy: ${words.join(" ")}\nAgain:`, answer: ` ${words.join(" ")}` };
}

export function recallTask(rng: Rng, pools: WordPools, maxPairs = 8): TaskExample {
  const n = rng.int(2, maxPairs);
  const keys = distinct(rng, pools.names, n);
  const values = keys.map(() => rng.pick(pools.words));
  const q = rng.int(0, n - 1);
  const lines = keys.map((k, i) => `${k}: ${values[i]}`).join("\n");
  return { task: "recall", prompt: `${lines}\nQUERY: ${keys[q]}\nANSWER:`, answer: ` ${values[q]}` };
}

export function memberTask(rng: Rng, pools: WordPools, maxNames = 6): TaskExample {
  const n = rng.int(2, maxNames);
  const names = distinct(rng, pools.names, n + 1);
  const listed = names.slice(0, n);
  const inList = rng.next() < 0.5;
  const asked = inList ? rng.pick(listed) : names[n]!;
  const facts = listed.map((name) => `${name} lives in ${rng.pick(pools.words)}.`).join(" ");
  return { task: "member", prompt: `FACTS: ${facts}\nQUERY: Is ${asked} listed?\nANSWER:`, answer: inList ? " Yes" : " No" };
}

/**
 * Crops `context` to at most `maxChars` characters around the first occurrence of `answer`, snapped to
 * word boundaries, so that long passages still hold their answer.
 */
export function cropWindow(context: string, answer: string, maxChars: number, rng?: Rng): string {
  if (context.length <= maxChars) return context;
  const at = Math.max(0, context.indexOf(answer));
  const slack = Math.max(0, maxChars - answer.length);
  const before = rng ? rng.int(0, slack) : Math.floor(slack / 2);
  let start = Math.max(0, Math.min(at - before, context.length - maxChars));
  let end = start + maxChars;
  // Snap both ends to word boundaries, never into the answer.
  const wordStart = context.indexOf(" ", start) + 1;
  if (start > 0 && wordStart > 0 && wordStart <= at) start = wordStart;
  const wordEnd = context.lastIndexOf(" ", end);
  if (end < context.length && wordEnd >= at + answer.length) end = wordEnd;
  return context.slice(start, end);
}

/**
 * The window of `maxChars` around the first of `answers` found in the passage (its start when none is):
 * how a model with a declared prompt format (context_chars) sees a benchmark passage, both questions
 * of a row the same window.
 */
export function cropAroundAnswers(context: string, answers: readonly string[], maxChars: number): string {
  return cropWindow(context, answers.find((a) => a !== "" && context.includes(a)) ?? "", maxChars);
}

/** Builds the QA prompt from (question, context); the recipe passes the pipeline's compact TASK_QA. */
export type QaPromptBuilder = (question: string, context: string) => string;

export function spanTask(rng: Rng, qa: readonly SpanQa[], maxContextChars: number, prompt: QaPromptBuilder): TaskExample {
  const item = rng.pick(qa);
  const context = cropWindow(item.context, item.answer, maxContextChars, rng);
  return { task: `span-${item.source}`, prompt: prompt(item.question, context), answer: ` ${item.answer}` };
}

export type TaskName = "copy" | "recall" | "member" | "span";

export interface MixtureSource {
  pools: WordPools;
  qa: readonly SpanQa[];
  maxContextChars: number;
  qaPrompt: QaPromptBuilder;
}

/** One example of a task drawn by weight from `mixture`. */
export function drawTask(rng: Rng, mixture: Readonly<Partial<Record<TaskName, number>>>, source: MixtureSource): TaskExample {
  const entries = Object.entries(mixture).filter(([, w]) => (w ?? 0) > 0) as [TaskName, number][];
  const total = entries.reduce((n, [, w]) => n + w, 0);
  let r = rng.next() * total;
  let task = entries[entries.length - 1]![0];
  for (const [name, w] of entries) {
    if ((r -= w) < 0) {
      task = name;
      break;
    }
  }
  switch (task) {
    case "copy": return copyTask(rng, source.pools);
    case "recall": return recallTask(rng, source.pools);
    case "member": return memberTask(rng, source.pools);
    case "span": return spanTask(rng, source.qa, source.maxContextChars, source.qaPrompt);
  }
}
