/**
 * Seeded percentile bootstrap (calibration.md 2.11) and the full calibration report (3.7).
 * Resampling unit: the group (benchmark row), so both questions of a row stay together;
 * mulberry32 (src/util/rng.ts is the same generator); numpy's linear percentile.
 */
import { Rng } from "../util/rng.ts";
import {
  aurcOptimal,
  aurcOptimalClosedForm,
  averagePrecision,
  auroc,
  BOOTSTRAP_METRICS,
  checkCalibrationInputs,
  DEFAULT_BINS,
  ece,
  eceClasswise,
  eceTopLabel,
  equalMassBins,
  nll,
  reliabilityBins,
  riskCoverage,
  scalarMetrics,
  type BinTable,
  type BootstrapMetric,
  type ReliabilityBins,
  type RiskCoverage,
} from "./calibration.ts";

/** numpy.percentile's default "linear" rule (Hyndman-Fan type 7) on sorted values. */
export function percentileLinear(sorted: readonly number[], q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

export interface BootstrapOptions {
  seed?: number;
  draws?: number;
  level?: number;
  /** One key per item (e.g. the benchmark row id); items sharing a key are resampled together. */
  groups?: readonly (string | number)[];
}

export interface BootstrapResult {
  prng: "mulberry32";
  seed: number;
  draws: number;
  level: number;
  resample: "groups" | "rows";
  first_draw_group_indices: number[];
  ci: Record<BootstrapMetric, [number, number] | null>;
  valid_draws: Record<BootstrapMetric, number>;
}

export function bootstrapMetrics(labels: ArrayLike<number>, confidences: ArrayLike<number>, options: BootstrapOptions = {}): BootstrapResult {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  const seed = options.seed ?? 0;
  const draws = options.draws ?? 1000;
  const level = options.level ?? 0.95;
  const groupKeys = options.groups ?? y.map((_, i) => i);
  if (groupKeys.length !== y.length) throw new Error(`groups has ${groupKeys.length} items but labels has ${y.length}`);
  // Groups numbered 0..G-1 in order of first appearance.
  const members = new Map<string | number, number[]>();
  groupKeys.forEach((g, i) => {
    const list = members.get(g);
    if (list) list.push(i);
    else members.set(g, [i]);
  });
  const memberLists = [...members.values()];
  const G = memberLists.length;
  const rng = new Rng(seed);
  const values = Object.fromEntries(BOOTSTRAP_METRICS.map((k) => [k, [] as number[]])) as Record<BootstrapMetric, number[]>;
  let firstDraw: number[] = [];
  for (let b = 0; b < draws; b++) {
    const picks: number[] = [];
    for (let g = 0; g < G; g++) picks.push(Math.floor(rng.next() * G));
    if (b === 0) firstDraw = picks;
    const by: number[] = [];
    const bc: number[] = [];
    for (const g of picks) for (const i of memberLists[g]!) {
      by.push(y[i]!);
      bc.push(c[i]!);
    }
    const m = scalarMetrics(by, bc);
    for (const k of BOOTSTRAP_METRICS) if (m[k] !== null) values[k].push(m[k]!);
  }
  const alpha = (1 - level) / 2;
  const ci = {} as Record<BootstrapMetric, [number, number] | null>;
  const valid = {} as Record<BootstrapMetric, number>;
  for (const k of BOOTSTRAP_METRICS) {
    const v = values[k].sort((a, b) => a - b);
    valid[k] = v.length;
    ci[k] = v.length ? [percentileLinear(v, alpha), percentileLinear(v, 1 - alpha)] : null;
  }
  return {
    prng: "mulberry32",
    seed,
    draws,
    level,
    resample: options.groups ? "groups" : "rows",
    first_draw_group_indices: firstDraw,
    ci,
    valid_draws: valid,
  };
}

/**
 * What a perfectly calibrated model with the same confidences would score: ECE over label
 * redraws y* = [u < c], one u per item in item order, seeded.
 */
export function nullEceReference(confidences: ArrayLike<number>, options: { seed?: number; draws?: number; bins?: number } = {}): { mean: number; p95: number; draws: number } {
  const c = Array.from(confidences);
  const draws = options.draws ?? 1000;
  const rng = new Rng(options.seed ?? 0);
  const eces: number[] = [];
  for (let b = 0; b < draws; b++) {
    const y = c.map((p) => (rng.next() < p ? 1 : 0));
    eces.push(ece(y, c, options.bins ?? DEFAULT_BINS));
  }
  const mean = eces.reduce((s, v) => s + v, 0) / draws;
  return { mean, p95: percentileLinear(eces.sort((a, b) => a - b), 0.95), draws };
}

/** Where the numbers came from: calibration.md 3.7 asks for all of this next to every metric. */
export interface CalibrationProvenance {
  source: string;
  target: "answerability" | "correctness" | string;
  scoring_rule?: string;
  convention?: "positive-class" | "top-label" | "classwise";
  positive_class?: string;
}

export interface CalibrationReport {
  provenance?: CalibrationProvenance;
  n: number;
  base_rate: number;
  ece_equal_width_15: number;
  ece_equal_mass_15: number;
  mce_15: number;
  mce_15_bin_count: number;
  brier: number;
  brier_skill_score: number | null;
  nll: number;
  nll_clipped_rows: number;
  auroc: number | null;
  auroc_reason?: string;
  average_precision: number | null;
  average_precision_reason?: string;
  aurc: number;
  aurc_optimal: number;
  aurc_optimal_closed_form: number;
  eaurc: number;
  ece_top_label_15: number;
  ece_classwise_15: number;
  ece_equal_width_10: number;
  reliability_diagram: ReliabilityBins;
  reliability_diagram_10: ReliabilityBins;
  equal_mass_bins: BinTable;
  risk_coverage: RiskCoverage;
  bootstrap?: BootstrapResult;
  null_ece?: { mean: number; p95: number; draws: number };
}

export interface CalibrationOptions extends BootstrapOptions {
  provenance?: CalibrationProvenance;
  /** Bootstrap draws; 0 skips the bootstrap and the null reference. Default 1000. */
  draws?: number;
}

/** Every metric of calibration.md with the field names of the test vectors. */
export function calibrationReport(labels: ArrayLike<number>, confidences: ArrayLike<number>, options: CalibrationOptions = {}): CalibrationReport {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  const n = y.length;
  const base = y.reduce((s, v) => s + v, 0) / n;
  const scalars = scalarMetrics(y, c);
  const rel = reliabilityBins(y, c, 15);
  const mceBin = rel.gap.indexOf(scalars.mce_15);
  const roc = auroc(y, c);
  const ap = averagePrecision(y, c);
  const nl = nll(y, c);
  const report: CalibrationReport = {
    ...(options.provenance ? { provenance: options.provenance } : {}),
    n,
    base_rate: base,
    ece_equal_width_15: scalars.ece_equal_width_15!,
    ece_equal_mass_15: scalars.ece_equal_mass_15!,
    mce_15: scalars.mce_15!,
    mce_15_bin_count: rel.counts[mceBin] ?? 0,
    brier: scalars.brier!,
    brier_skill_score: base > 0 && base < 1 ? 1 - scalars.brier! / (base * (1 - base)) : null,
    nll: nl.value,
    nll_clipped_rows: nl.clippedRows,
    auroc: roc.value,
    ...(roc.reason ? { auroc_reason: roc.reason } : {}),
    average_precision: ap.value,
    ...(ap.reason ? { average_precision_reason: ap.reason } : {}),
    aurc: scalars.aurc!,
    aurc_optimal: aurcOptimal(y),
    aurc_optimal_closed_form: aurcOptimalClosedForm(y),
    eaurc: scalars.eaurc!,
    ece_top_label_15: eceTopLabel(y, c),
    ece_classwise_15: eceClasswise(y, c),
    ece_equal_width_10: ece(y, c, 10),
    reliability_diagram: rel,
    reliability_diagram_10: reliabilityBins(y, c, 10),
    equal_mass_bins: equalMassBins(y, c),
    risk_coverage: riskCoverage(y, c),
  };
  if ((options.draws ?? 1000) > 0) {
    report.bootstrap = bootstrapMetrics(y, c, options);
    report.null_ece = nullEceReference(c, { seed: options.seed, draws: options.draws });
  }
  return report;
}

/**
 * Percentile intervals of known, unknown and overall accuracy (percent) by resampling rows, or
 * whole groups of rows (e.g. the ASQA ambiguous question), with the same generator and rule.
 */
export function accuracyBootstrap(
  rows: readonly { known_correct: boolean; unknown_correct: boolean }[],
  options: BootstrapOptions = {},
): { known_acc: [number, number]; unknown_acc: [number, number]; overall: [number, number]; draws: number; seed: number; resample: "groups" | "rows" } | null {
  if (rows.length === 0) return null;
  const keys = options.groups ?? rows.map((_, i) => i);
  const members = new Map<string | number, number[]>();
  keys.forEach((g, i) => (members.get(g) ?? members.set(g, []).get(g)!).push(i));
  const lists = [...members.values()];
  const draws = options.draws ?? 1000;
  const seed = options.seed ?? 0;
  const rng = new Rng(seed);
  const known: number[] = [];
  const unknown: number[] = [];
  const overall: number[] = [];
  for (let b = 0; b < draws; b++) {
    let n = 0;
    let k = 0;
    let u = 0;
    for (let g = 0; g < lists.length; g++) {
      for (const i of lists[Math.floor(rng.next() * lists.length)]!) {
        n++;
        if (rows[i]!.known_correct) k++;
        if (rows[i]!.unknown_correct) u++;
      }
    }
    const ka = (100 * k) / n;
    const ua = (100 * u) / n;
    known.push(ka);
    unknown.push(ua);
    overall.push(ka + ua === 0 ? 0 : (2 * ka * ua) / (ka + ua));
  }
  const level = options.level ?? 0.95;
  const alpha = (1 - level) / 2;
  const interval = (v: number[]): [number, number] => {
    v.sort((a, b) => a - b);
    return [percentileLinear(v, alpha), percentileLinear(v, 1 - alpha)];
  };
  return { known_acc: interval(known), unknown_acc: interval(unknown), overall: interval(overall), draws, seed, resample: options.groups ? "groups" : "rows" };
}
