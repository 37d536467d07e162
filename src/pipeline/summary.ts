/**
 * What the main job found, as data: per arm the numbers of every seed with intervals, their mean and
 * spread, the collapse diagnostics, and whether the paper's pattern shows. results.json is this
 * object; the HTML report and the notebooks draw from it.
 */
import { TEMP_PY_NUMBERS, AUTHORS_TEMP_PY } from "../eval/results.ts";
import type { CollapseDiagnostics, Interval, MetricWithCi } from "./evaluate.ts";
import { PIPELINE_ARMS, type PipelineArmId, type PipelineResult } from "./run.ts";

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

export function summarizePipeline(result: PipelineResult): PipelineSummary {
  const source = `ours: ${modelName(result.model.path)}`;
  const arms: ArmSummary[] = PIPELINE_ARMS.map((arm) => {
    const seeds: SeedResult[] = result.evaluations
      .filter((e) => e.arm === arm.id)
      .map(({ seed, evaluation: e }) => ({
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
    };
  });
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
    overlap_reference_auroc: result.overlapReference,
    arms,
    pattern: patternCheck(arms),
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
