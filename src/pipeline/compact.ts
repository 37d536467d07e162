/**
 * Compact prompts for models whose context cannot hold the paper's templates (stories260K: 512
 * positions, and TASK_COGNITION alone is 635 tokens under tok512; tiny-scale-feasibility.md 2).
 * Each keeps the paper's task name and answer words and drops the long instructions; the passage is
 * cropped to a window around the gold answer so that prompt + answer fit `maxLen` tokens. Every
 * change against paper.md is listed in notebooks/README.md ("Compact prompts").
 */
import { checkingTarget, cognitionPrompt, promptSensitivePrompt, qaPrompt, type PromptTexts } from "../model/prompt-format.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { IGNORE_INDEX, type SftExample } from "../train/dataset.ts";

/**
 * The compact templates and labels (the texts of a prompt format, src/model/prompt-format.ts): what the
 * pipeline uses for a model that declares no prompt.json, and what the reader declares in its own
 * (data/models/reader/prompt.json holds the same texts; a test checks it).
 */
export const COMPACT_PROMPTS: PromptTexts = {
  templates: {
    // Stage 1 (paper.md 1.2, TASK_COGNITION): the model appends Sufficient or Insufficient.
    cognition: "Cognition Assessment Task.\nQUERY: {question}\nCONTEXT: {context}\nANSWER:",
    // Evaluation and QA data (paper.md 1.3 TASK_QA, 3.1 task assignment): answer or "Not Provided".
    qa: "Trustworthy QA Task, else Not Provided.\nQUESTION: {question}\nCONTEXT: {context}\nANSWER:",
    // Stage 2 (paper.md 1.3 TASK_PROMPT): the causal instruction sits on the task line (one slot, not five).
    prompt_sensitive: "Trustworthy QA Task, else Not Provided. {instruction}\nQUESTION: {question}\nCONTEXT: {context}\nANSWER:",
    // Stage 2 target: the answer, then the CHECKING marks without repeating the sentences.
    checking_target: " {answer}\nCHECKING: task<{task}> instruction<{instruction}>",
  },
  labels: { sufficient: " Sufficient", insufficient: " Insufficient", refusal: " Not Provided" },
};

/** Stage 1 (paper.md 1.2, TASK_COGNITION): the model appends Sufficient or Insufficient. */
export const compactCognitionPrompt = (question: string, context: string): string => cognitionPrompt(COMPACT_PROMPTS, question, context);

/** Evaluation and QA data (paper.md 1.3 TASK_QA, 3.1 task assignment): answer or "Not Provided". */
export const compactQaPrompt = (question: string, context: string): string => qaPrompt(COMPACT_PROMPTS, question, context);

/** Stage 2 (paper.md 1.3 TASK_PROMPT): the causal instruction sits on the task line (one slot, not five). */
export const compactPromptSensitivePrompt = (question: string, context: string, instruction: string): string => promptSensitivePrompt(COMPACT_PROMPTS, question, context, instruction);

/** Stage 2 target: the answer, then the CHECKING marks without repeating the sentences. */
export const compactCheckingTarget = (answer: string, taskFulfilled: boolean, instructionFulfilled: boolean): string => checkingTarget(COMPACT_PROMPTS, answer, taskFulfilled, instructionFulfilled);

export const COMPACT_LABELS = COMPACT_PROMPTS.labels;

/** Where a passage's header line ends ("This is a passage about X:\n"); the header is never cropped. */
const headerEnd = (context: string): number => (context.startsWith("This is a passage about ") ? context.indexOf("\n") + 1 : 0);

/**
 * The passage cut to about `chars` characters around the first occurrence of `anchor` (case
 * insensitive; the start when absent), snapped to word boundaries, with "..." where text was cut.
 * The header line stays whole.
 */
export function cropAround(context: string, anchor: string, chars: number): string {
  const h = headerEnd(context);
  const header = context.slice(0, h);
  const body = context.slice(h);
  if (body.length <= chars) return context;
  const at = anchor ? body.toLowerCase().indexOf(anchor.toLowerCase()) : -1;
  const centre = at < 0 ? 0 : at + Math.floor(anchor.length / 2);
  let start = Math.max(0, Math.min(centre - Math.floor(chars / 2), body.length - chars));
  let end = Math.min(body.length, start + chars);
  // Snap inwards to spaces, but never cut into the anchor itself.
  if (start > 0) {
    const space = body.indexOf(" ", start);
    if (space >= 0 && space < (at >= 0 ? at : end)) start = space + 1;
  }
  if (end < body.length) {
    const space = body.lastIndexOf(" ", end);
    if (space > (at >= 0 ? at + anchor.length : start)) end = space;
  }
  return `${header}${start > 0 ? "... " : ""}${body.slice(start, end)}${end < body.length ? " ..." : ""}`;
}

export interface FitResult {
  context: string;
  /** Characters of the passage body kept, out of all. */
  keptChars: number;
  totalChars: number;
  cut: boolean;
}

/**
 * Crops `context` so that every prompt built by `build` from it, plus `answerTokens`, fits `maxLen`
 * tokens (BOS and EOS included). The window size starts from the passage's own characters per token
 * and shrinks by 15% until it fits, so the tokenizer runs a few times per row, not a search.
 */
export function fitContext(tokenizer: Tokenizer, full: string, anchor: string, maxLen: number, build: readonly ((context: string) => string)[], answerTokens: number): FitResult {
  const body = full.length - headerEnd(full);
  // run.c's encoder is quadratic in the text length: a window of 4 characters per position (more than
  // a prompt can hold under tok512's 1.6) is cut first, so long HotpotQA contexts are never tokenised whole.
  const context = body > maxLen * 4 ? cropAround(full, anchor, maxLen * 4) : full;
  const fits = (c: string): boolean => build.every((b) => tokenizer.encode(b(c), { bos: true }).length + answerTokens + 1 <= maxLen);
  if (fits(context)) return { context, keptChars: body, totalChars: body, cut: false };
  const over = Math.max(...build.map((b) => tokenizer.encode(b(context), { bos: true }).length)) + answerTokens + 1 - maxLen;
  const bodyTokens = Math.max(1, tokenizer.encode(context.slice(headerEnd(context)), { bos: false }).length);
  const bodyChars = context.length - headerEnd(context);
  let chars = Math.floor(((bodyTokens - over) * bodyChars) / bodyTokens);
  for (let tries = 0; tries < 40 && chars > 0; tries++) {
    const cropped = cropAround(context, anchor, chars);
    if (fits(cropped)) return { context: cropped, keptChars: Math.min(chars, body), totalChars: body, cut: true };
    chars = Math.floor(chars * 0.85);
  }
  const bare = context.slice(0, headerEnd(context));
  return { context: bare, keptChars: 0, totalChars: body, cut: true };
}

/**
 * One training example: prompt and target tokenised together (as continuationLogprobs scores them),
 * the prompt part masked out of the loss, EOS appended and trained on.
 */
export function encodeExample(tokenizer: Tokenizer, prompt: string, target: string, row: number, maxLen: number): SftExample {
  const ctx = tokenizer.encode(prompt, { bos: true });
  const whole = [...tokenizer.encode(prompt + target, { bos: true }), tokenizer.eosId];
  let k = 0;
  while (k < ctx.length && k < whole.length - 2 && whole[k] === ctx[k]) k++;
  const ids = whole.slice(0, maxLen);
  const labels = ids.map((id, i) => (i < k ? IGNORE_INDEX : id));
  return { inputIds: Int32Array.from(ids), labels: Int32Array.from(labels), row, fullLength: whole.length };
}

/** Fraction of the question's content words (3+ letters) found in the passage: the no-training reference. */
export function wordOverlap(question: string, context: string): number {
  const words = (s: string) => s.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) ?? [];
  const stop = new Set(["the", "and", "who", "what", "when", "where", "which", "how", "was", "were", "did", "does", "for", "from", "with", "that", "this", "are", "has", "have", "its", "his", "her", "their", "first", "last"]);
  const q = [...new Set(words(question).filter((w) => !stop.has(w)))];
  if (q.length === 0) return 0;
  const c = new Set(words(context));
  return q.filter((w) => c.has(w)).length / q.length;
}
