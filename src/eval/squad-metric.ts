/**
 * The official SQuAD v1.1 metric (evaluate-v1.1.py), exactly: normalize_answer = lower case, drop
 * ASCII punctuation (Python's string.punctuation), drop the words a/an/the, collapse white space;
 * exact match and token F1 against each gold answer, the maximum over the gold answers; both
 * averaged over every question of the dataset (a question with no prediction scores 0) and given
 * as percentages. Where Python's regex and str.split are Unicode-aware, so are these: \b in
 * remove_articles bounds on Unicode letters, digits and "_", and split() breaks on Python's set of
 * white space.
 */
import type { SquadArticle } from "../data/squad.ts";

const PY_PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
const PY_ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;
/** Python's str.split() separators (str.isspace). */
const PY_WHITESPACE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

/** evaluate-v1.1.py's normalize_answer. */
export function squadNormalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  let noPunc = "";
  for (const ch of lower) if (!PY_PUNCTUATION.has(ch)) noPunc += ch;
  return noPunc.replace(PY_ARTICLES, " ").split(PY_WHITESPACE).filter(Boolean).join(" ");
}

/** evaluate-v1.1.py's f1_score (0 to 1). */
export function squadF1(prediction: string, groundTruth: string): number {
  const pred = squadNormalizeAnswer(prediction).split(PY_WHITESPACE).filter(Boolean);
  const gold = squadNormalizeAnswer(groundTruth).split(PY_WHITESPACE).filter(Boolean);
  const counts = new Map<string, number>();
  for (const t of gold) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of pred) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / pred.length;
  const recall = same / gold.length;
  return (2 * precision * recall) / (precision + recall);
}

/** evaluate-v1.1.py's exact_match_score. */
export const squadExactMatch = (prediction: string, groundTruth: string): boolean => squadNormalizeAnswer(prediction) === squadNormalizeAnswer(groundTruth);

const maxOver = (f: (p: string, g: string) => number, prediction: string, golds: readonly string[]): number => Math.max(...golds.map((g) => f(prediction, g)));

export interface SquadScore {
  exact_match: number;
  f1: number;
  /** Questions scored (the denominator): every question given, answered or not. */
  n: number;
  /** Questions with no prediction (scored 0, as the official script does after its message). */
  unanswered: number;
}

/**
 * evaluate-v1.1.py's evaluate(): `questions` are the gold questions (id and answer texts),
 * `predictions` maps a question id to the predicted text.
 */
export function squadEvaluate(questions: Iterable<{ id: string; answers: readonly string[] }>, predictions: Readonly<Record<string, string>>): SquadScore {
  let em = 0;
  let f1 = 0;
  let n = 0;
  let unanswered = 0;
  for (const q of questions) {
    n++;
    if (!Object.prototype.hasOwnProperty.call(predictions, q.id)) {
      unanswered++;
      continue;
    }
    const p = predictions[q.id]!;
    em += maxOver((a, b) => (squadExactMatch(a, b) ? 1 : 0), p, q.answers);
    f1 += maxOver(squadF1, p, q.answers);
  }
  return { exact_match: n === 0 ? 0 : (100 * em) / n, f1: n === 0 ? 0 : (100 * f1) / n, n, unanswered };
}

export interface SquadItem {
  id: string;
  question: string;
  context: string;
  answers: string[];
}

/** Every question of the articles, in file order, with its paragraph and gold answer texts. */
export const squadItems = (articles: readonly SquadArticle[]): SquadItem[] =>
  articles.flatMap((a) => a.paragraphs.flatMap((p) => p.qas.map((q) => ({ id: q.id, question: q.question, context: p.context, answers: q.answers.map((x) => x.text) }))));

