/**
 * A model's own prompt format, declared in a file next to its weights (`prompt.json` in the folder of a
 * llama2.c .bin, or inside a Hugging Face folder), so that every command and notebook talks to the
 * model the way it was trained: `ktu eval run` and `ktu eval calibrate` (unless --prompt names another),
 * `ktu start` and the notebooks. One reader, `readPromptFormat`, for all of them.
 *
 * prompt.json (every field required unless marked optional):
 *   format           name recorded with every result, e.g. "ktu-compact-v1"
 *   templates.qa                 "{question}", "{context}": the evaluation / QA prompt
 *   templates.cognition          "{question}", "{context}": the stage-1 Sufficient / Insufficient prompt
 *   templates.prompt_sensitive   "{question}", "{context}", "{instruction}": the stage-2 prompt
 *   templates.checking_target    "{answer}", "{task}", "{instruction}" (each "fulfilled" or "not
 *                                fulfilled"): the stage-2 target
 *   labels           { sufficient, insufficient, refusal }: the exact continuations (leading space included)
 *   context_chars    passages are cropped to about this many characters around the known answer
 *   max_len          prompt + answer tokens (at most the model's context)
 *   max_new_tokens   answer length
 *   stop             strings that end an answer (EOS always does)
 *   model            optional { name, origin, card }: what the model is, for the lines that name it
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { InputError } from "../util/errors.ts";

export const PROMPT_FORMAT_FILE = "prompt.json";

export interface PromptTemplates {
  qa: string;
  cognition: string;
  prompt_sensitive: string;
  checking_target: string;
}

export interface PromptFormat {
  format: string;
  templates: PromptTemplates;
  labels: { sufficient: string; insufficient: string; refusal: string };
  context_chars: number;
  max_len: number;
  max_new_tokens: number;
  stop: string[];
  model?: { name: string; origin: string; card?: string };
}

/** The texts of a format, all that building a prompt or a target needs. */
export type PromptTexts = Pick<PromptFormat, "templates" | "labels">;

/** Placeholders each template must hold. */
const PLACEHOLDERS: Record<keyof PromptTemplates, string[]> = {
  qa: ["question", "context"],
  cognition: ["question", "context"],
  prompt_sensitive: ["question", "context", "instruction"],
  checking_target: ["answer", "task", "instruction"],
};

/** Fills `{name}` slots in one pass (a question holding "{context}" stays as written). */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole);
}

/** The prompt builders of a format. */
export const qaPrompt = (f: PromptTexts, question: string, context: string): string => renderTemplate(f.templates.qa, { question, context });
export const cognitionPrompt = (f: PromptTexts, question: string, context: string): string => renderTemplate(f.templates.cognition, { question, context });
export const promptSensitivePrompt = (f: PromptTexts, question: string, context: string, instruction: string): string => renderTemplate(f.templates.prompt_sensitive, { question, context, instruction });
export const checkingTarget = (f: PromptTexts, answer: string, taskFulfilled: boolean, instructionFulfilled: boolean): string =>
  renderTemplate(f.templates.checking_target, { answer, task: taskFulfilled ? "fulfilled" : "not fulfilled", instruction: instructionFulfilled ? "fulfilled" : "not fulfilled" });

/** Checks a parsed prompt.json; every problem names the file and the field. */
export function checkPromptFormat(value: unknown, file: string): PromptFormat {
  const bad = (field: string, problem: string): never => {
    throw new InputError(file, undefined, field, problem);
  };
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObj(value)) bad("(top level)", "expected a JSON object");
  const o = value as Record<string, unknown>;
  const str = (v: unknown, field: string): string => (typeof v === "string" && v !== "" ? v : bad(field, `expected a non-empty string, got ${JSON.stringify(v)}`));
  const count = (v: unknown, field: string): number => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : bad(field, `expected a whole number > 0, got ${JSON.stringify(v)}`));
  str(o.format, "format");
  if (!isObj(o.templates)) bad("templates", "expected an object with qa, cognition, prompt_sensitive, checking_target");
  const t = o.templates as Record<string, unknown>;
  for (const [name, slots] of Object.entries(PLACEHOLDERS)) {
    const text = str(t[name], `templates.${name}`);
    for (const slot of slots) if (!text.includes(`{${slot}}`)) bad(`templates.${name}`, `has no {${slot}} placeholder`);
  }
  if (!isObj(o.labels)) bad("labels", "expected an object with sufficient, insufficient, refusal");
  for (const name of ["sufficient", "insufficient", "refusal"]) str((o.labels as Record<string, unknown>)[name], `labels.${name}`);
  count(o.context_chars, "context_chars");
  count(o.max_len, "max_len");
  count(o.max_new_tokens, "max_new_tokens");
  if (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== "string" || s === "")) bad("stop", `expected a list of non-empty strings, got ${JSON.stringify(o.stop)}`);
  if (o.model !== undefined) {
    if (!isObj(o.model)) bad("model", "expected an object { name, origin, card }");
    const m = o.model as Record<string, unknown>;
    str(m.name, "model.name");
    str(m.origin, "model.origin");
    if (m.card !== undefined) str(m.card, "model.card");
  }
  return value as PromptFormat;
}

/** Where a model's prompt.json would be: inside a model folder, else beside the weights file. */
export const promptFormatPath = (modelPath: string): string => fileBesideModel(modelPath, PROMPT_FORMAT_FILE);

/** `name` beside a model's weights: inside a model folder, or in the folder of a single-file model. */
export function fileBesideModel(modelPath: string, name: string): string {
  return existsSync(modelPath) && statSync(modelPath).isDirectory() ? join(modelPath, name) : join(dirname(modelPath), name);
}

/**
 * The parsed JSON file `name` beside a model's weights, or undefined when there is none (or the model is
 * a hub name, whose files are not looked at). A file that is not JSON is an error naming it.
 */
export function readJsonBesideModel(modelPath: string, name: string): { file: string; parsed: unknown } | undefined {
  if (modelPath.startsWith("hf:")) return undefined;
  const file = fileBesideModel(modelPath, name);
  if (!existsSync(file)) return undefined;
  try {
    return { file, parsed: JSON.parse(readFileSync(file, "utf8")) };
  } catch (error) {
    throw new InputError(file, undefined, undefined, `not JSON: ${(error as Error).message}`);
  }
}

/**
 * The prompt format a model declares, or undefined when it declares none (no prompt.json beside it,
 * or a hub name, whose files are not looked at). A prompt.json that is not valid is an error naming
 * the file and field, never silently ignored.
 */
export function readPromptFormat(modelPath: string): PromptFormat | undefined {
  const found = readJsonBesideModel(modelPath, PROMPT_FORMAT_FILE);
  return found && checkPromptFormat(found.parsed, found.file);
}
