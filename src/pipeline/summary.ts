/**
 * What the main job found, as data: per arm the numbers of every seed with intervals, their mean and
 * spread, the collapse diagnostics, and whether the paper's pattern shows. results.json is this
 * object; the HTML report and the notebooks draw from it.
 */
import { TEMP_PY_NUMBERS, AUTHORS_TEMP_PY } from "../eval/results.ts";
import { harmonicMean, scoreRow, summarizeRows, type RowScore } from "../eval/scoring.ts";
import type { TestItem } from "./datasets.ts";
import { clusterBootstrap, type CollapseDiagnostics, type Interval, type MetricWithCi, type NonReadingBaseline } from "./evaluate.ts";
import { PIPELINE_ARMS, type BenchmarkRun, type PipelineArmId, type PipelineResult } from "./run.ts";
import type { PipelineSource } from "./sources.ts";

export interface SeedResult {
  seed: number | null;
  known: MetricWithCi;
  unknown: MetricWithCi;
  overall: MetricWithCi;
  lenient: { known: number; unknown: number; overall: number };
  /** Known questions the model refused (%): a model that refuses everything scores high on unknown ones. */
  known_refused: number;
  diagnostics: CollapseDiagnostics;
  ece_p_sufficient: number;
  n: number;
}

export interface Spread {
  mean: number;
  sd: number;
  min: number;
  max: number;
}

export interface ArmSummary {
  id: PipelineArmId;
  label: string;
  /** The x label of the same setting in the authors' temp.py figure. */
  paper_label: string;
  source: string;
  seeds: SeedResult[];
  known: Spread;
  unknown: Spread;
  overall: Spread;
  collapsed_seeds: number;
  no_discrimination_seeds: number;
  /**
   * 95% interval of the seed means (known, unknown, overall): a cluster bootstrap over the test rows,
   * each draw scoring every seed's answers on the same resampled rows and averaging over seeds.
   */
  mean_ci: { known: Interval | null; unknown: Interval | null; overall: Interval | null };
}

/** One benchmark's part of results.json: its table in the shape of the paper's figure, the baselines beside it, and the pattern. */
export interface BenchmarkSummary {
  source: PipelineSource;
  title: string;
  /** Test rows and their clusters (stories, paragraphs, ambiguous questions). */
  test_rows: number;
  test_clusters: number;
  max_new_tokens: number;
  data: BenchmarkRun["data"];
  /** AUROC of the question's word overlap with the passage, known vs unknown (no model). */
  overlap_reference_auroc: MetricWithCi;
  /** The non-reading answers' known / unknown / overall on the same rows. */
  baselines: NonReadingBaseline[];
  arms: ArmSummary[];
  pattern: PatternCheck;
  /** One sentence with the numbers behind the pattern: base, stage 1 and US-Tuning with their intervals. */
  statement: string;
  trained: PipelineResult["trained"];
}

export interface PatternCheck {
  stage1_unknown_up: boolean;
  stage1_known_down: boolean;
  stage2_known_recovered: boolean;
  stage2_unknown_stays_high: boolean;
  /** All four, on the seed means. */
  appears: boolean;
  /** Any trained arm collapsed or showed no discrimination: then any "pattern" is an artifact of the label prior. */
  artifact: boolean;
  verdict: string;
}

export interface PipelineSummary {
  generated: string;
  source: string;
  model: PipelineResult["model"];
  /** The prompts the run used (the model's prompt.json or the built-in compact ones). */
  prompt: PipelineResult["prompt"];
  /** The reader's acceptance numbers, from acceptance.json beside the weights; null without one. */
  acceptance: PipelineResult["acceptance"];
  settings: PipelineResult["options"];
  data: PipelineResult["data"];
  /** The engine that ran the main job (its children run the same one). */
  engine: PipelineResult["engine"];
  seconds: number;
  step_seconds: number;
  /** Every benchmark that ran, by source; the top-level data, overlap_reference_auroc, arms, pattern and trained are those of `primary_benchmark`. */
  benchmarks: Partial<Record<PipelineSource, BenchmarkSummary>>;
  /** ASQA when it ran, else the first benchmark. */
  primary_benchmark: PipelineSource;
  overlap_reference_auroc: MetricWithCi;
  arms: ArmSummary[];
  pattern: PatternCheck;
  authors_temp_py: { label: string; setting: string; known: number; unknown: number; overall: number; source: string; model: string }[];
  trained: PipelineResult["trained"];
}

function spread(values: readonly number[]): Spread {
  const n = values.length;
  const mean = n ? values.reduce((a, b) => a + b, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

export const modelName = (path: string): string => path.split("/").filter(Boolean).at(-1)!.replace(/\.bin$/, "");

/** The cluster-bootstrap interval of a seed-mean accuracy (see ArmSummary.mean_ci). */
export function seedMeanIntervals(evaluations: readonly { evaluation: { items: readonly { id: string; known_answer: string; unknown_answer: string }[] } }[], test: readonly TestItem[], draws = 1000, seed = 0): ArmSummary["mean_ci"] {
  if (evaluations.length === 0 || draws <= 0) return { known: null, unknown: null, overall: null };
  const gold = new Map(test.map((t) => [t.id, t.gold]));
  const perSeed = evaluations.map((e) => new Map(e.evaluation.items.map((o) => [o.id, scoreRow(o.id, gold.get(o.id) ?? [], o.known_answer, o.unknown_answer, "strict")])));
  const rows = test.filter((t) => perSeed.every((m) => m.has(t.id)));
  const mean = (sample: readonly TestItem[], f: (known: number, unknown: number) => number) =>
    perSeed.reduce((acc, m) => {
      const a = summarizeRows(sample.map((t) => m.get(t.id) as RowScore));
      return acc + f(a.known_acc, a.unknown_acc);
    }, 0) / perSeed.length;
  const ci = (f: (known: number, unknown: number) => number) => clusterBootstrap(rows, (t) => t.group, (sample) => mean(sample, f), draws, seed);
  return { known: ci((k) => k), unknown: ci((_, u) => u), overall: ci(harmonicMean) };
}

function summarizeArms(bench: BenchmarkRun, source: string, draws: number): ArmSummary[] {
  return PIPELINE_ARMS.map((arm) => {
    const evals = bench.evaluations.filter((e) => e.arm === arm.id);
    const seeds: SeedResult[] = evals.map(({ seed, evaluation: e }) => ({
      seed,
      known: e.known,
      unknown: e.unknown,
      overall: e.overall,
      lenient: { known: e.lenient.known_acc, unknown: e.lenient.unknown_acc, overall: e.lenient.overall },
      known_refused: e.n ? (100 * e.strict.known_refused) / e.n : 0,
      diagnostics: e.diagnostics,
      ece_p_sufficient: e.calibration.p_sufficient.ece_equal_width_15,
      n: e.n,
    }));
    return {
      id: arm.id,
      label: arm.label,
      paper_label: arm.paperLabel,
      source,
      seeds,
      known: spread(seeds.map((s) => s.known.value)),
      unknown: spread(seeds.map((s) => s.unknown.value)),
      overall: spread(seeds.map((s) => s.overall.value)),
      collapsed_seeds: seeds.filter((s) => s.diagnostics.collapsed).length,
      no_discrimination_seeds: seeds.filter((s) => s.diagnostics.no_discrimination).length,
      mean_ci: seedMeanIntervals(evals, bench.test, draws),
    };
  });
}

/** A seed mean with its interval, as the tables print it: "52.0 [44.0, 60.0]". */
export const formatMeanCi = (a: Pick<ArmSummary, "known" | "unknown" | "overall" | "mean_ci">, key: "known" | "unknown" | "overall", digits = 1): string => formatCi({ value: a[key].mean, ci: a.mean_ci[key] }, digits);

/** The numbers behind a benchmark's pattern in one sentence (base, stage 1, US-Tuning, the first-words answer). */
export function patternStatement(title: string, bench: Pick<BenchmarkSummary, "test_rows" | "test_clusters" | "arms" | "baselines">): string {
  const get = (id: PipelineArmId) => bench.arms.find((a) => a.id === id);
  const seeds = get("stage1")?.seeds.length ?? 0;
  const part = (id: PipelineArmId, name: string) => {
    const a = get(id);
    return a && a.seeds.length ? `${name} known ${formatMeanCi(a, "known")}, unknown ${formatMeanCi(a, "unknown")}` : null;
  };
  const fw = bench.baselines.find((b) => b.id === "first_words");
  const parts = [part("base", "base"), part("stage1", "stage 1"), part("stage1_stage2", "US-Tuning (stage 1 then 2)")].filter(Boolean);
  return `${title} (${bench.test_rows} test rows in ${bench.test_clusters} clusters, ${seeds} seed(s), strict scoring, seed means with 95% cluster-bootstrap intervals): ${parts.join("; ")}${fw ? `; the first 5 passage words (no model) score known ${formatCi(fw.known)}` : ""}.`;
}

export function summarizeBenchmark(bench: BenchmarkRun, source: string, draws: number): BenchmarkSummary {
  const arms = summarizeArms(bench, source, draws);
  const test_rows = bench.test.length;
  const test_clusters = new Set(bench.test.map((t) => t.group)).size;
  const pattern = patternCheck(arms);
  const statement = patternStatement(bench.title, { test_rows, test_clusters, arms, baselines: bench.baselines });
  return {
    source: bench.source,
    title: bench.title,
    test_rows,
    test_clusters,
    max_new_tokens: bench.maxNewTokens,
    data: bench.data,
    overlap_reference_auroc: bench.overlapReference,
    baselines: bench.baselines,
    arms,
    pattern: { ...pattern, verdict: `${bench.title}: ${pattern.verdict}` },
    statement,
    trained: bench.trained,
  };
}

export function summarizePipeline(result: PipelineResult): PipelineSummary {
  const source = `ours: ${modelName(result.model.path)}`;
  const benchmarks = Object.fromEntries(result.benchmarks.map((b) => [b.source, summarizeBenchmark(b, source, result.options.draws)])) as PipelineSummary["benchmarks"];
  const primary = benchmarks[result.primary]!;
  return {
    generated: new Date().toISOString(),
    source,
    model: result.model,
    prompt: result.prompt,
    acceptance: result.acceptance,
    settings: result.options,
    data: result.data,
    engine: result.engine,
    seconds: result.seconds,
    step_seconds: result.stepSeconds,
    benchmarks,
    primary_benchmark: result.primary,
    overlap_reference_auroc: result.overlapReference,
    arms: primary.arms,
    pattern: primary.pattern,
    authors_temp_py: TEMP_PY_NUMBERS.map((r) => ({ label: r.label.replace(/\s*\n\s*/g, " "), setting: r.setting, known: r.known, unknown: r.unknown, overall: r.overall, source: AUTHORS_TEMP_PY, model: "Llama-2-7b-chat (authors' code, temp.py)" })),
    trained: result.trained,
  };
}

/** Changes smaller than this many points count as "no change" (the test set's detectable gap is about 20). */
const MARGIN = 5;

export function patternCheck(arms: readonly ArmSummary[]): PatternCheck {
  const get = (id: PipelineArmId) => arms.find((a) => a.id === id)!;
  const base = get("base");
  const s1 = get("stage1");
  const us = get("stage1_stage2");
  const check = {
    stage1_unknown_up: s1.unknown.mean > base.unknown.mean + MARGIN,
    stage1_known_down: s1.known.mean < base.known.mean - MARGIN,
    stage2_known_recovered: us.known.mean > s1.known.mean + MARGIN,
    stage2_unknown_stays_high: us.unknown.mean >= s1.unknown.mean - MARGIN && us.unknown.mean > base.unknown.mean + MARGIN,
  };
  const appears = Object.values(check).every(Boolean);
  const trainedArms = arms.filter((a) => a.id !== "base");
  const artifact = trainedArms.some((a) => a.collapsed_seeds > 0 || a.no_discrimination_seeds > 0);
  const collapsedArms = trainedArms.filter((a) => a.collapsed_seeds > 0).map((a) => `${a.label} (${a.collapsed_seeds}/${a.seeds.length} seeds)`);
  const noDisc = trainedArms.filter((a) => a.no_discrimination_seeds > 0).map((a) => a.label);
  const parts: string[] = [];
  parts.push(appears ? "The paper's pattern appears in the seed means (stage 1: refusals up, known accuracy down; stage 2: known accuracy back, refusals still high)." : "The paper's pattern does NOT appear in the seed means.");
  const s1Refused = s1.seeds.length ? s1.seeds.reduce((a, r) => a + r.known_refused, 0) / s1.seeds.length : 0;
  if (s1.unknown.mean > base.unknown.mean + MARGIN && s1Refused >= s1.unknown.mean - 10) {
    parts.push(`Stage 1's refusals do not depend on the question: it refuses ${s1Refused.toFixed(1)}% of the known questions as well (unknown accuracy ${s1.unknown.mean.toFixed(1)}%).`);
  }
  if (collapsedArms.length) parts.push(`The model collapsed to a (nearly) constant output in: ${collapsedArms.join(", ")}.`);
  if (noDisc.length) parts.push(`The known-vs-unknown AUROC interval contains 0.5 (chance) in: ${noDisc.join(", ")}, so the model does not tell answerable from unanswerable questions there.`);
  if (artifact) parts.push("Numbers from collapsed or non-discriminating models come from the label prior, not from learned uncertainty: read them as a pipeline smoke test, not a reproduction.");
  return { ...check, appears, artifact, verdict: parts.join(" ") };
}

export const formatCi = (m: MetricWithCi, digits = 1): string => `${m.value.toFixed(digits)}${m.ci ? ` [${m.ci[0].toFixed(digits)}, ${m.ci[1].toFixed(digits)}]` : ""}`;
export const formatSpread = (s: Spread, digits = 1): string => (Number.isNaN(s.mean) ? "n/a" : `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}`);
export type { Interval };
