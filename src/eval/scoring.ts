/**
 * The contextual-QA metrics of the seed (paper.md 3.1), every version selectable by name:
 *
 * - `2024-08`: the newest code (main_run_benchmark.py at a821928/c8c6666 with prompts.neg_words of
 *   c8c6666): gold answers parsed from their list repr with the comma quirk, then expanded into
 *   every whitespace-separated word (so "the" matches), 20 refusal keywords, an empty answer to an
 *   unknown question counts as a refusal.
 * - `2024-04`: the first commit (e02920d): same parse, no word expansion, 12 keywords, an empty
 *   answer is not a refusal.
 * - `strict`: ours. Gold answers parsed as real Python literals; a known answer is correct when a
 *   gold answer, normalised as SQuAD does (lower case, punctuation and articles dropped, white space
 *   collapsed), occurs as a whole-token span of the normalised prediction; 20 keywords; an empty
 *   answer is a refusal.
 */
import { parsePythonList, pySplit, pyStrip, pythonListRepr } from "./python.ts";

export const METRIC_VARIANTS = ["2024-08", "2024-04", "strict"] as const;
export type MetricVariant = (typeof METRIC_VARIANTS)[number];
export const DEFAULT_METRIC: MetricVariant = "2024-08";

/** prompts.neg_words at e02920d ... bf69a38 (April to August 2024), verbatim. */
export const NEG_WORDS_2024_04: readonly string[] = Object.freeze([
  "not mentioned", "not provided", "not given", "'t mentioned", "'t provided", "'t given", "not provide",
  "'t provide", "'t mention", "not mention", "no context provided", "insufficient",
]);

/** prompts.neg_words at c8c6666 (the newest code), verbatim. */
export const NEG_WORDS_2024_08: readonly string[] = Object.freeze([
  ...NEG_WORDS_2024_04,
  "not familiar", "not aware", "apologize", "not able to", "not make sense", "'t make sense", "'t know", "not know",
]);

export interface MetricSpec {
  readonly name: MetricVariant;
  readonly negWords: readonly string[];
  /** Add every whitespace-separated word of every gold answer to the gold list. */
  readonly wordExpansion: boolean;
  /** An empty (white space only) answer to an unknown question counts as a refusal. */
  readonly emptyIsRefusal: boolean;
  /** `seed`: pos_answer[1:-1].split(',') with its comma quirk; `python`: a real literal parser. */
  readonly goldParse: "seed" | "python";
  /** `substring`: the seed's case-insensitive find; `span`: normalised whole-token span match. */
  readonly match: "substring" | "span";
}

export const METRIC_SPECS: Readonly<Record<MetricVariant, MetricSpec>> = Object.freeze({
  "2024-08": { name: "2024-08", negWords: NEG_WORDS_2024_08, wordExpansion: true, emptyIsRefusal: true, goldParse: "seed", match: "substring" },
  "2024-04": { name: "2024-04", negWords: NEG_WORDS_2024_04, wordExpansion: false, emptyIsRefusal: false, goldParse: "seed", match: "substring" },
  strict: { name: "strict", negWords: NEG_WORDS_2024_08, wordExpansion: false, emptyIsRefusal: true, goldParse: "python", match: "span" },
});

export const metricSpec = (variant: MetricVariant | MetricSpec): MetricSpec => (typeof variant === "string" ? METRIC_SPECS[variant] : variant);

/**
 * The seed's parse of the stored list repr, character for character:
 * `[a.strip()[1:-1].lower() for a in cell[1:-1].split(',')]`. An answer holding a comma is cut
 * into pieces that each lose one real character at the cut, and a two-character piece becomes ""
 * (which then matches every prediction).
 */
export function seedParseGold(cell: string): string[] {
  return cell
    .slice(1, -1)
    .split(",")
    .map((piece) => pyStrip(piece).slice(1, -1).toLowerCase());
}

/** The seed's word expansion: for each original answer append its words, then deduplicate. */
export function expandWords(answers: readonly string[]): string[] {
  const out = [...answers];
  for (const answer of answers) out.push(...pySplit(answer));
  return [...new Set(out)];
}

/**
 * The gold strings one variant matches against. `posAnswer` is either the list itself (our
 * benchmark.jsonl) or its Python repr (the authors' xlsx cell); a list is turned into the repr the
 * authors stored, so the seed variants see exactly the text the seed parsed.
 */
export function goldAnswers(posAnswer: string | readonly string[], variant: MetricVariant | MetricSpec = DEFAULT_METRIC): string[] {
  const spec = metricSpec(variant);
  if (spec.goldParse === "seed") {
    const parsed = seedParseGold(typeof posAnswer === "string" ? posAnswer : pythonListRepr(posAnswer));
    return spec.wordExpansion ? expandWords(parsed) : parsed;
  }
  const list = typeof posAnswer === "string" ? parsePythonList(posAnswer) : [...posAnswer];
  return spec.wordExpansion ? expandWords(list) : list;
}

const ARTICLES = /\b(a|an|the)\b/g;
// SQuAD drops string.punctuation (ASCII); Unicode punctuation goes too, since answers are Wikipedia text.
const PUNCTUATION = /[\p{P}\p{S}]/gu;

/** SQuAD answer normalisation: lower case, drop punctuation and articles, collapse white space. */
export function normalizeAnswer(s: string): string {
  return s.toLowerCase().replace(PUNCTUATION, "").replace(ARTICLES, " ").split(/\s+/).filter(Boolean).join(" ");
}

function containsSpan(haystack: readonly string[], needle: readonly string[]): boolean {
  if (needle.length === 0) return false;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Whether a known-question prediction matches one of the gold strings under the variant. */
export function isKnownCorrect(prediction: string, gold: readonly string[], variant: MetricVariant | MetricSpec = DEFAULT_METRIC): boolean {
  const spec = metricSpec(variant);
  if (spec.match === "substring") {
    const lower = prediction.toLowerCase();
    return gold.some((g) => lower.includes(g));
  }
  const tokens = normalizeAnswer(prediction).split(" ");
  return gold.some((g) => containsSpan(tokens, normalizeAnswer(g).split(" ").filter(Boolean)));
}

/** Whether the prediction contains a refusal keyword of the variant. */
export const hasRefusalKeyword = (prediction: string, variant: MetricVariant | MetricSpec = DEFAULT_METRIC): boolean => {
  const lower = prediction.toLowerCase();
  return metricSpec(variant).negWords.some((w) => lower.includes(w));
};

/** Unknown-question correctness: a refusal keyword, or (where the variant says so) an empty answer. */
export function isRefusal(prediction: string, variant: MetricVariant | MetricSpec = DEFAULT_METRIC): boolean {
  const spec = metricSpec(variant);
  if (spec.emptyIsRefusal && pyStrip(prediction).length === 0) return true;
  return hasRefusalKeyword(prediction, spec);
}

/**
 * The "overall" score: the harmonic mean of known and unknown accuracy. The seed never computes
 * it; the authors' temp.py labels it "F1 Score" and its values are this mean (paper.md 4.2).
 */
export function harmonicMean(known: number, unknown: number): number {
  return known + unknown === 0 ? 0 : (2 * known * unknown) / (known + unknown);
}

/**
 * record_analyzer.py's breakdown of one known question: correct, else `refused` when the
 * prediction holds a refusal keyword (keywords only, as the seed does), else `wrong`.
 */
export type KnownOutcome = "correct" | "wrong" | "refused";
export function knownOutcome(prediction: string, correct: boolean, variant: MetricVariant | MetricSpec = DEFAULT_METRIC): KnownOutcome {
  if (correct) return "correct";
  return hasRefusalKeyword(prediction, variant) ? "refused" : "wrong";
}

/** One row's verdicts. */
export interface RowScore {
  id: string;
  known_correct: boolean;
  unknown_correct: boolean;
  known_outcome: KnownOutcome;
}

export function scoreRow(
  id: string,
  posAnswer: string | readonly string[],
  posPrediction: string,
  negPrediction: string,
  variant: MetricVariant | MetricSpec = DEFAULT_METRIC,
): RowScore {
  const knownCorrect = isKnownCorrect(posPrediction, goldAnswers(posAnswer, variant), variant);
  return {
    id,
    known_correct: knownCorrect,
    unknown_correct: isRefusal(negPrediction, variant),
    known_outcome: knownOutcome(posPrediction, knownCorrect, variant),
  };
}

/** Accuracies in percent, unrounded; the CLI rounds for printing. */
export interface Accuracies {
  n: number;
  known_acc: number;
  unknown_acc: number;
  overall: number;
  known_correct: number;
  known_wrong: number;
  known_refused: number;
  unknown_correct: number;
}

/** Percentages as the seed computes them: 100 * count / n. */
export function summarizeRows(rows: readonly RowScore[]): Accuracies {
  const n = rows.length;
  const count = (f: (r: RowScore) => boolean) => rows.reduce((k, r) => k + (f(r) ? 1 : 0), 0);
  const knownCorrect = count((r) => r.known_correct);
  const unknownCorrect = count((r) => r.unknown_correct);
  const known = n === 0 ? 0 : (100 * knownCorrect) / n;
  const unknown = n === 0 ? 0 : (100 * unknownCorrect) / n;
  return {
    n,
    known_acc: known,
    unknown_acc: unknown,
    overall: harmonicMean(known, unknown),
    known_correct: knownCorrect,
    known_wrong: count((r) => r.known_outcome === "wrong"),
    known_refused: count((r) => r.known_outcome === "refused"),
    unknown_correct: unknownCorrect,
  };
}

/** How a refusal rule does on labelled texts: a confusion matrix plus the texts it gets wrong. */
export function refusalConfusion(examples: readonly { text: string; refusal: boolean }[], variant: MetricVariant | MetricSpec = DEFAULT_METRIC) {
  const m = { true_positive: 0, false_positive: 0, false_negative: 0, true_negative: 0, missed: [] as string[], false_alarms: [] as string[] };
  for (const { text, refusal } of examples) {
    const said = isRefusal(text, variant);
    if (said && refusal) m.true_positive++;
    else if (said) {
      m.false_positive++;
      m.false_alarms.push(text);
    } else if (refusal) {
      m.false_negative++;
      m.missed.push(text);
    } else m.true_negative++;
  }
  return m;
}
