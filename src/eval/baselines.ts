/**
 * Scoring of the stage-1 classifier check (main_run_cognition_assessment.py) and of the two
 * post-generation baselines (main_run_benchmark_post_generation.py @ c8c6666), paper.md 3.1-3.2.
 *
 * The seed's bugs are reproducible with `seedBugs: true` and fixed by default:
 * - sampling: the seed adds one vote per gold string (or refusal keyword) found in each sample,
 *   so one sample can carry the 1.5 threshold alone; fixed, each sample votes once.
 * - self-validation: the seed builds the unknown question's validation prompt with `pos_query`;
 *   fixed, it uses `neg_query` (see validationQuestion).
 * - both baselines: the seed never counts an empty answer as a refusal and never expands gold
 *   answers into words, whatever metric is chosen; fixed, the chosen metric decides.
 */
import { goldAnswers, isKnownCorrect, isRefusal, metricSpec, seedParseGold, type MetricSpec, type MetricVariant } from "./scoring.ts";
import { pythonListRepr } from "./python.ts";

/** Rows the seed's stage-1 check visits: every 10th, starting at 0 (`range(0, len, 10)`). */
export const cognitionCheckIndices = (n: number, step = 10): number[] => Array.from({ length: Math.ceil(n / step) }, (_, k) => k * step);

/**
 * The seed's reading of a TASK_COGNITION reply, lower-cased. `skip` when the reply names neither
 * label ("insufficient" contains "sufficient", so that is: no "sufficient" at all).
 * Sufficient wins when "insufficient" is absent or its first "sufficient" comes first.
 */
export function readCognitionReply(reply: string): "sufficient" | "insufficient" | "skip" {
  const lower = reply.toLowerCase();
  const suf = lower.indexOf("sufficient");
  const insuf = lower.indexOf("insufficient");
  if (suf < 0) return "skip";
  if (insuf < 0 || suf < insuf) return "sufficient";
  return "insufficient";
}

export interface CognitionCheckRow {
  id: string;
  pos_reply: string;
  neg_reply?: string;
}

export interface CognitionCheckResult {
  /** Rows whose known-question reply named a label (the seed skips both questions otherwise). */
  n: number;
  skipped: number;
  pos_acc: number;
  neg_acc: number;
  pos_correct: number;
  neg_correct: number;
}

/**
 * Percent accuracy of the stage-1 classifier, as the seed counts it: a row is skipped, both
 * questions, when its known-question reply names no label; the unknown reply is never skipped.
 */
export function scoreCognitionCheck(rows: readonly CognitionCheckRow[]): CognitionCheckResult {
  let n = 0;
  let skipped = 0;
  let pos = 0;
  let neg = 0;
  for (const row of rows) {
    const first = readCognitionReply(row.pos_reply);
    if (first === "skip") {
      skipped++;
      continue;
    }
    n++;
    if (first === "sufficient") pos++;
    // Negative correct iff "insufficient" occurs and the first "sufficient" is not before it.
    const lower = (row.neg_reply ?? "").toLowerCase();
    const insuf = lower.indexOf("insufficient");
    if (insuf >= 0 && lower.indexOf("sufficient") > insuf) neg++;
  }
  return { n, skipped, pos_acc: n ? (100 * pos) / n : 0, neg_acc: n ? (100 * neg) / n : 0, pos_correct: pos, neg_correct: neg };
}

export interface BaselineOptions {
  metric?: MetricVariant | MetricSpec;
  /** Reproduce the seed's bugs (see the file comment). Default false. */
  seedBugs?: boolean;
}

/** The seed's baselines use the 2024-08 keyword list with its own parse and no word expansion. */
function seedBaselineSpec(metric: MetricVariant | MetricSpec): MetricSpec {
  return { ...metricSpec(metric), wordExpansion: false, emptyIsRefusal: false, goldParse: "seed", match: "substring" };
}

export const SAMPLING_K = 3;
export const SAMPLING_TEMPERATURE = 0.6;
/** `num >= sampling_num / 2` with sampling_num = 3. */
export const SAMPLING_THRESHOLD = SAMPLING_K / 2;

/** Votes of k samples on a known question; correct iff votes >= k / 2. */
export function samplingKnownVotes(samples: readonly string[], posAnswer: string | readonly string[], opts: BaselineOptions = {}): number {
  const metric = opts.metric ?? "2024-08";
  if (opts.seedBugs) {
    const gold = seedParseGold(typeof posAnswer === "string" ? posAnswer : pythonListRepr(posAnswer));
    return samples.reduce((votes, s) => votes + gold.filter((g) => s.toLowerCase().includes(g)).length, 0);
  }
  const gold = goldAnswers(posAnswer, metric);
  return samples.filter((s) => isKnownCorrect(s, gold, metric)).length;
}

/** Votes of k samples on an unknown question; correct iff votes >= k / 2. */
export function samplingUnknownVotes(samples: readonly string[], opts: BaselineOptions = {}): number {
  const metric = opts.metric ?? "2024-08";
  if (opts.seedBugs) {
    const words = seedBaselineSpec(metric).negWords;
    return samples.reduce((votes, s) => votes + words.filter((w) => s.toLowerCase().includes(w)).length, 0);
  }
  return samples.filter((s) => isRefusal(s, metric)).length;
}

export function scoreSamplingRow(posSamples: readonly string[], negSamples: readonly string[], posAnswer: string | readonly string[], opts: BaselineOptions = {}) {
  const known = samplingKnownVotes(posSamples, posAnswer, opts);
  const unknown = samplingUnknownVotes(negSamples, opts);
  return {
    known_votes: known,
    unknown_votes: unknown,
    known_correct: known >= posSamples.length / 2,
    unknown_correct: unknown >= negSamples.length / 2,
  };
}

/** The question the validation pass asks for the unknown row: the seed's bug asks pos_query. */
export const validationQuestion = (row: { pos_query: string; neg_query: string }, which: "pos" | "neg", seedBugs = false): string =>
  which === "pos" || seedBugs ? row.pos_query : row.neg_query;

/** Scores the second (validated) answers of the self-validation baseline. */
export function scoreValidationRow(posFinal: string, negFinal: string, posAnswer: string | readonly string[], opts: BaselineOptions = {}) {
  const metric = opts.metric ?? "2024-08";
  const spec = opts.seedBugs ? seedBaselineSpec(metric) : metricSpec(metric);
  return {
    known_correct: isKnownCorrect(posFinal, goldAnswers(posAnswer, spec), spec),
    unknown_correct: isRefusal(negFinal, spec),
  };
}
