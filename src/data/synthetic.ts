/**
 * Passage windows for the reader's training and evaluation (recipes/reader): a long passage is cut to
 * a window that still holds its answer. The reader's tasks themselves are in recipes/reader/tasks.ts.
 */
import type { Rng } from "../util/rng.ts";

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
