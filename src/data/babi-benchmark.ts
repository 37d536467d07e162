import { Rng } from "../util/rng.ts";
import { babiContext, type BabiQuestion } from "./babi.ts";
import type { BenchmarkRow } from "./benchmark.ts";

/**
 * The contextual-QA benchmark made from bAbI (src/data/README.md, "bAbI benchmark"): per question a
 * row whose known question is the bAbI question on the statements before it, and whose unknown
 * question is THE SAME question about a person or object that no statement of the shown context
 * mentions ("Where is Mary?" -> "Where is Bill?"). The substitute is drawn, seeded, from the
 * entities the same task's questions ask about, and it is checked against every statement of the
 * context (word boundary, case-insensitive; for "the X" objects the words after "the").
 *
 * Which word of a question is the entity is fixed per question pattern (`BABI_QUESTION_PATTERNS`):
 * the FIRST person or "the X" object of the question, the one the answer is about. Every one of
 * the 20 tasks has its patterns; a question that matches none has no replaceable entity and is
 * skipped (counted).
 */

export type BabiEntityKind = "person" | "object";

export interface BabiQuestionPattern {
  /** The question with the entity as the named group `e`. */
  re: RegExp;
  kind: BabiEntityKind;
}

const NAME = "(?<e>[A-Za-z]+)";
const THE = "(?<e>the [a-z]+)";
/** Task 18's objects are one word, or "the box of chocolates". */
const BOX = "(?<e>the box of chocolates|the [a-z]+)";
const p = (re: string, kind: BabiEntityKind): BabiQuestionPattern => ({ re: new RegExp(`^${re}\\?$`, "d"), kind });

/**
 * The question patterns of each task. A person is one word (capitalised, or lower-case in tasks 15
 * and 20 as released); an object is "the" and one word, in task 17 "the" with an optional colour
 * and a shape, in task 18 also "the box of chocolates". The entity is the first one in the question.
 */
export const BABI_QUESTION_PATTERNS: Readonly<Record<number, readonly BabiQuestionPattern[]>> = {
  1: [p(`Where is ${NAME}`, "person")],
  2: [p(`Where is ${THE}`, "object")],
  3: [p(`Where was ${THE} before the [a-z]+`, "object")],
  4: [p(`What is (?:north|south|east|west) of ${THE}`, "object"), p(`What is ${THE} (?:north|south|east|west) of`, "object")],
  5: [
    p(`Who gave ${THE}(?: to [A-Z][a-z]+)?`, "object"),
    p(`Who received ${THE}`, "object"),
    p(`What did ${NAME} give to [A-Z][a-z]+`, "person"),
    p(`Who did ${NAME} give ${"the [a-z]+"} to`, "person"),
  ],
  6: [p(`Is ${NAME} in the [a-z]+`, "person")],
  7: [p(`How many objects is ${NAME} carrying`, "person")],
  8: [p(`What is ${NAME} carrying`, "person")],
  9: [p(`Is ${NAME} in the [a-z]+`, "person")],
  10: [p(`Is ${NAME} in the [a-z]+`, "person")],
  11: [p(`Where is ${NAME}`, "person")],
  12: [p(`Where is ${NAME}`, "person")],
  13: [p(`Where is ${NAME}`, "person")],
  14: [p(`Where was ${NAME} before the [a-z]+`, "person")],
  15: [p(`What is ${NAME} afraid of`, "person")],
  16: [p(`What color is ${NAME}`, "person")],
  17: [p(`Is (?<e>the (?:[a-z]+ )?(?:square|rectangle|triangle|sphere)) (?:to the (?:left|right) of|above|below) the (?:[a-z]+ )?[a-z]+`, "object")],
  18: [p(`Is ${BOX} (?:bigger|smaller) than the [a-z]+(?: of chocolates)?`, "object"), p(`Does ${BOX} fit in the [a-z]+(?: of chocolates)?`, "object")],
  19: [p(`How do you go from ${THE} to the [a-z]+`, "object")],
  20: [p(`Where will ${NAME} go`, "person"), p(`Why did ${NAME} go to the [a-z]+`, "person"), p(`Why did ${NAME} get the [a-z]+`, "person")],
};

/** The tasks `babiBenchmark` has patterns for (all 20; the README table has each task's yield). */
export const BABI_BENCHMARK_TASKS: readonly number[] = Object.keys(BABI_QUESTION_PATTERNS).map(Number);

export interface BabiEntity {
  /** As written in the question: "Mary", "yann", "the milk", "the red square". */
  text: string;
  kind: BabiEntityKind;
  /** Where it starts in the question. */
  index: number;
  /** The question's pattern, with the entity as "{X}": the row's `ambiguous_question`. */
  pattern: string;
}

/** The replaceable entity of a question, or undefined when none of its task's patterns matches. */
export function babiQuestionEntity(question: string, task: number): BabiEntity | undefined {
  for (const pattern of BABI_QUESTION_PATTERNS[task] ?? []) {
    const m = pattern.re.exec(question);
    const span = m?.indices?.groups?.e;
    if (!m || !span) continue;
    const [at, end] = span;
    return { text: question.slice(at, end), kind: pattern.kind, index: at, pattern: question.slice(0, at) + "{X}" + question.slice(end) };
  }
  return undefined;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The words that must not occur in the context for an entity to be unknown: the name, or the object without "the". */
export const babiEntityWords = (entity: string): string => entity.replace(/^the /i, "");

/** Whether a text mentions an entity: its words as whole words, case-insensitive. */
export function babiMentions(text: string, entity: string): boolean {
  return new RegExp(`\\b${escapeRe(babiEntityWords(entity))}\\b`, "i").test(text);
}

/**
 * The answers a row accepts for a bAbI answer: the released string, and for list answers ("a,b":
 * tasks 8 and 19) also "a, b" and "a and b"; task 19's compass letters also spelled out ("n,e" ->
 * "north, east", "north and east"). Single answers stay as released.
 */
export function babiAnswerForms(answer: string, task: number): string[] {
  const forms = [answer];
  const parts = answer.split(",").map((s) => s.trim());
  if (parts.length < 2) return forms;
  const join = (xs: string[]): string[] => [xs.join(", "), `${xs.slice(0, -1).join(", ")} and ${xs[xs.length - 1]}`];
  forms.push(...join(parts));
  if (task === 19) {
    const compass: Record<string, string> = { n: "north", s: "south", e: "east", w: "west" };
    if (parts.every((x) => x in compass)) forms.push(...join(parts.map((x) => compass[x]!)));
  }
  return [...new Set(forms)];
}

export interface BabiBenchmarkOptions {
  /** Only this task's questions (default: every task present, each drawing from its own entities). */
  task?: number;
  seed?: number;
  /** Questions whose entities make the substitutes' pool (default: `questions`); e.g. both sides of a split. */
  pool?: readonly BabiQuestion[];
  /** (context, question) pairs to leave out, e.g. the train side's, so that no validation row repeats one. */
  exclude?: Iterable<{ context: string; question: string }>;
  /** Called with the counts (the builder's return stays the row list). */
  onCounts?: (counts: BabiBenchmarkCounts) => void;
}

export interface BabiBenchmarkCounts {
  questions: number;
  rows: number;
  /** Questions whose pattern has no replaceable entity. */
  skippedNoEntity: number;
  /** Questions for which every entity of the task is mentioned in the context. */
  skippedNoSubstitute: number;
  /** Rows dropped because their (context, known question) or (context, unknown question) is in `exclude`. */
  droppedExcluded: number;
}

export const DEFAULT_BABI_BENCHMARK_SEED = 42;

export const babiPairKey = (context: string, question: string): string => `${context}\u0000${question}`;

/** Builds the rows and returns them with their counts. */
export function babiBenchmarkWithCounts(questions: readonly BabiQuestion[], opts: Omit<BabiBenchmarkOptions, "onCounts"> = {}): { rows: BenchmarkRow[]; counts: BabiBenchmarkCounts } {
  const rng = new Rng(opts.seed ?? DEFAULT_BABI_BENCHMARK_SEED);
  const chosen = opts.task === undefined ? questions : questions.filter((q) => q.task === opts.task);
  const excluded = new Set<string>();
  for (const x of opts.exclude ?? []) excluded.add(babiPairKey(x.context, x.question));
  // Each task's entity pool, by kind, in sorted order so that the draw depends on the seed only.
  const pools = new Map<string, string[]>();
  const entities = chosen.map((q) => babiQuestionEntity(q.question, q.task));
  const tasks = new Set(chosen.map((q) => q.task));
  for (const q of opts.pool ?? chosen) {
    const e = tasks.has(q.task) ? babiQuestionEntity(q.question, q.task) : undefined;
    if (!e) continue;
    const key = `${q.task}/${e.kind}`;
    const pool = pools.get(key) ?? [];
    if (!pool.includes(e.text)) pool.push(e.text);
    pools.set(key, pool);
  }
  for (const pool of pools.values()) pool.sort();
  const counts: BabiBenchmarkCounts = { questions: chosen.length, rows: 0, skippedNoEntity: 0, skippedNoSubstitute: 0, droppedExcluded: 0 };
  const rows: BenchmarkRow[] = [];
  chosen.forEach((q, i) => {
    const e = entities[i];
    if (!e) return void counts.skippedNoEntity++;
    const context = babiContext(q);
    const safe = (pools.get(`${q.task}/${e.kind}`) ?? []).filter((cand) => cand.toLowerCase() !== e.text.toLowerCase() && q.statements.every((line) => !babiMentions(line, cand)));
    if (safe.length === 0) return void counts.skippedNoSubstitute++;
    const sub = rng.pick(safe);
    const negQuery = q.question.slice(0, e.index) + sub + q.question.slice(e.index + e.text.length);
    if (excluded.has(babiPairKey(context, q.question)) || excluded.has(babiPairKey(context, negQuery))) return void counts.droppedExcluded++;
    rows.push({
      id: rows.length,
      context,
      pos_query: q.question,
      pos_answer: babiAnswerForms(q.answer, q.task),
      neg_query: negQuery,
      neg_answer: [],
      sample_id: `babi-qa${q.task}-story${q.story}`,
      ambiguous_question: e.pattern,
      pos_wikipage: null,
      neg_wikipage: null,
      neg_context: "",
    });
  });
  counts.rows = rows.length;
  return { rows, counts };
}

/** One benchmark row per bAbI question with a safe substitute (see the file's comment). */
export function babiBenchmark(questions: readonly BabiQuestion[], opts: BabiBenchmarkOptions = {}): BenchmarkRow[] {
  const { onCounts, ...rest } = opts;
  const r = babiBenchmarkWithCounts(questions, rest);
  onCounts?.(r.counts);
  return r.rows;
}
