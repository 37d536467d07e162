import { InputError } from "../util/errors.ts";
import type { AsqaItem, AsqaQaPair } from "./asqa.ts";
import { describeValue, parseJsonlRows } from "./text-input.ts";

/**
 * The contextual-QA benchmark of paper.md §1.1, built by the authors' rule taken literally
 * (generate_trustworthy_benchmark.py):
 * - per item, a dict keyed by context over the pairs whose context is not "No context provided";
 *   identical contexts collapse, the LAST pair wins but keeps the FIRST one's position (a Map does
 *   the same as a Python dict);
 * - the item is kept when that dict has more than one entry;
 * - every ordered pair (permutations of 2) is a candidate row; `id` counts every candidate, so the
 *   ids of the kept rows are not contiguous;
 * - the shown context is `This is a passage about {wikipage}:\n{context}`, header included in the
 *   substring search (a null wikipage prints "None", as a Python f-string does);
 * - filter "paper": some known answer occurs in the shown context AND no KNOWN answer occurs in the
 *   other passage (the bug: the unknown question's answers are never looked at);
 * - filter "corrected": additionally no answer of the unknown question occurs in the shown context.
 * All comparisons are on lower-cased strings.
 */

export type BenchmarkFilter = "paper" | "corrected";
export const BENCHMARK_FILTERS: readonly BenchmarkFilter[] = ["paper", "corrected"];

export const NO_CONTEXT = "No context provided";

/** One benchmark row: the paper's five columns, then extra fields for the split and evaluation. */
export interface BenchmarkRow {
  id: number;
  context: string;
  pos_query: string;
  pos_answer: string[];
  neg_query: string;
  /** The unknown question's short answers (the seed computes them but never uses them). */
  neg_answer: string[];
  /** The ASQA ambiguous question that both questions disambiguate: the unit of the split. */
  sample_id: string;
  ambiguous_question: string;
  pos_wikipage: string | null;
  neg_wikipage: string | null;
  /** The other passage, with its header, as the filter saw it ("" for bAbI and SQuAD rows). */
  neg_context: string;
  /** The source's id of the known question where it has one (SQuAD's question id); absent for ASQA. */
  pos_id?: string;
  /** The source's id of the unknown question (SQuAD's question id of the other paragraph). */
  neg_id?: string;
}

export interface BenchmarkCounts {
  /** ASQA items read. */
  items: number;
  /** Items with more than one distinct real context. */
  itemsUsed: number;
  /** Ordered pairs before the filter (the `benchmark_uncleaned` sheet). */
  pairsBefore: number;
  /** Rows kept by the filter (the `benchmark` sheet). */
  pairsAfter: number;
}

export interface BenchmarkResult {
  filter: BenchmarkFilter;
  rows: BenchmarkRow[];
  uncleaned: BenchmarkRow[];
  counts: BenchmarkCounts;
}

/** Python's str() of the wikipage inside the f-string. */
const pyStr = (value: string | null): string => (value === null ? "None" : value);

export const passageWithHeader = (pair: AsqaQaPair): string => `This is a passage about ${pyStr(pair.wikipage)}:\n${pair.context}`;

/** The distinct real contexts of an item, last pair winning, first position kept. */
export function collapseContexts(item: AsqaItem): AsqaQaPair[] {
  const byContext = new Map<string, AsqaQaPair>();
  for (const pair of item.qa_pairs) if (pair.context !== NO_CONTEXT) byContext.set(pair.context, pair);
  return [...byContext.values()];
}

/** itertools.permutations(items, 2), in the same order. */
export function* orderedPairs<T>(items: readonly T[]): Generator<[T, T]> {
  for (let i = 0; i < items.length; i++) for (let j = 0; j < items.length; j++) if (i !== j) yield [items[i]!, items[j]!];
}

const anyIn = (answers: string[], text: string): boolean => answers.some((a) => text.includes(a.toLowerCase()));

/** Whether a candidate row passes the filter. */
export function keepRow(row: Pick<BenchmarkRow, "context" | "pos_answer" | "neg_answer" | "neg_context">, filter: BenchmarkFilter): boolean {
  const shown = row.context.toLowerCase();
  const other = row.neg_context.toLowerCase();
  const posInContext = anyIn(row.pos_answer, shown);
  const knownNotInOther = !anyIn(row.pos_answer, other);
  if (filter === "paper") return posInContext && knownNotInOther;
  return posInContext && knownNotInOther && !anyIn(row.neg_answer, shown);
}

export function buildBenchmark(items: readonly AsqaItem[], options: { filter?: BenchmarkFilter } = {}): BenchmarkResult {
  const filter = options.filter ?? "paper";
  const uncleaned: BenchmarkRow[] = [];
  const rows: BenchmarkRow[] = [];
  let itemsUsed = 0;
  let id = 0;
  for (const item of items) {
    const passages = collapseContexts(item);
    if (passages.length <= 1) continue;
    itemsUsed++;
    for (const [known, unknown] of orderedPairs(passages)) {
      const row: BenchmarkRow = {
        id: id++,
        context: passageWithHeader(known),
        pos_query: known.question,
        pos_answer: known.short_answers,
        neg_query: unknown.question,
        neg_answer: unknown.short_answers,
        sample_id: item.sample_id,
        ambiguous_question: item.ambiguous_question,
        pos_wikipage: known.wikipage,
        neg_wikipage: unknown.wikipage,
        neg_context: passageWithHeader(unknown),
      };
      uncleaned.push(row);
      if (keepRow(row, filter)) rows.push(row);
    }
  }
  return { filter, rows, uncleaned, counts: { items: items.length, itemsUsed, pairsBefore: uncleaned.length, pairsAfter: rows.length } };
}

/** The paper's five columns of a row, in order (the xlsx sheet's header). */
export const BENCHMARK_COLUMNS = ["id", "context", "pos_query", "pos_answer", "neg_query"] as const;

/** Reads benchmark rows back from JSON Lines text (what `ktu data benchmark` writes). */
export function parseBenchmarkJsonl(text: string, file: string): BenchmarkRow[] {
  return parseJsonlRows(text, file, validateBenchmarkRow);
}

function validateBenchmarkRow(raw: unknown, file: string, line: number): BenchmarkRow {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new InputError(file, line, "(record)", `expected an object, got ${describeValue(raw)}`);
  const r = raw as Record<string, unknown>;
  for (const field of ["context", "pos_query", "neg_query"] as const) {
    if (typeof r[field] !== "string") throw new InputError(file, line, field, `expected a string, got ${describeValue(r[field])}`);
  }
  if (typeof r.id !== "number" && typeof r.id !== "string") throw new InputError(file, line, "id", `expected a number, got ${describeValue(r.id)}`);
  if (!Array.isArray(r.pos_answer) || !r.pos_answer.every((a) => typeof a === "string")) {
    throw new InputError(file, line, "pos_answer", `expected a list of strings, got ${describeValue(r.pos_answer)}`);
  }
  return {
    id: Number(r.id),
    context: r.context as string,
    pos_query: r.pos_query as string,
    pos_answer: r.pos_answer as string[],
    neg_query: r.neg_query as string,
    neg_answer: Array.isArray(r.neg_answer) ? (r.neg_answer as string[]) : [],
    sample_id: typeof r.sample_id === "string" ? r.sample_id : String(r.sample_id ?? ""),
    ambiguous_question: typeof r.ambiguous_question === "string" ? r.ambiguous_question : "",
    pos_wikipage: typeof r.pos_wikipage === "string" ? r.pos_wikipage : null,
    neg_wikipage: typeof r.neg_wikipage === "string" ? r.neg_wikipage : null,
    neg_context: typeof r.neg_context === "string" ? r.neg_context : "",
    ...(typeof r.pos_id === "string" ? { pos_id: r.pos_id } : {}),
    ...(typeof r.neg_id === "string" ? { neg_id: r.neg_id } : {}),
  };
}
