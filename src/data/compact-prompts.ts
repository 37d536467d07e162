/**
 * One-line task prompts for tiny models, beside the paper's byte-exact templates (prompts.ts). The
 * paper's TASK_COGNITION alone is 635 tokens under tok512 and ~540 under our BPE 4096, more than a
 * reader base's whole context (docs/tiny-scale-feasibility.md §2), so these keep only the task name,
 * the decisive instruction and the field labels. Changes against paper.md, each on purpose:
 * - TASK_COGNITION (§1.2): the instructions and the Jay Chou example are dropped; the task name
 *   "Cognition Assessment Task" and the labels QUERY / CONTEXT / ANSWER stay, each field on one line
 *   ("QUERY: q" instead of "QUERY:\n q"). The answer is " Sufficient" or " Insufficient" (the paper's
 *   training labels are the bare words too).
 * - TASK_QA (§1.3): the first sentence is cut to the task name; the refusal sentence is kept verbatim
 *   ("If the context is not sufficient to answer the question, please answer it with 'Not Provided'");
 *   the other three sentences and the five empty instruction slots are dropped; "QUESTION:\n{q}\n\n" and
 *   "CONTEXTS:\n{c}\n\n" become one line each; "ANSWER: \n" becomes "ANSWER:" so the answer is the
 *   continuation " {answer}".
 * - TASK_PROMPT (§1.3): the compact form is the compact TASK_QA with the causal instruction as one
 *   extra line after the task line; the CHECKING demonstration (811 tokens alone) is dropped.
 */

export const COMPACT_REFUSAL_SENTENCE = "If the context is not sufficient to answer the question, please answer it with 'Not Provided'";
export const COMPACT_SUFFICIENT = " Sufficient";
export const COMPACT_INSUFFICIENT = " Insufficient";
export const COMPACT_NOT_PROVIDED = " Not Provided";

export function compactCognitionPrompt(context: string, query: string): string {
  return `Cognition Assessment Task.\nQUERY: ${query}\nCONTEXT: ${context}\nANSWER:`;
}

export function compactQaPrompt(context: string, query: string): string {
  return `Question Answering Task. ${COMPACT_REFUSAL_SENTENCE}.\nQUESTION: ${query}\nCONTEXTS: ${context}\nANSWER:`;
}

export function compactTaskPrompt(context: string, query: string, instruction: string): string {
  return `Question Answering Task. ${COMPACT_REFUSAL_SENTENCE}.\n${instruction}\nQUESTION: ${query}\nCONTEXTS: ${context}\nANSWER:`;
}
