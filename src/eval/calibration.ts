/**
 * Calibration metrics exactly as docs/calibration.md section 2 fixes them (bin edges m/M by one
 * double division, bins [0,e1], (e1,e2], ..., ties as one threshold, null for undefined values),
 * so that the numbers match the vectors in test/fixtures/calibration to about 1e-12.
 * Every function takes labels y in {0,1} and confidences c = P(y = 1); nothing flips scores.
 */

export const DEFAULT_BINS = 15;
export const NLL_EPS = 1e-15;

/** Checks the inputs; clamps confidences outside [0,1] by at most 1e-12; names the bad index. */
export function checkCalibrationInputs(labels: ArrayLike<number>, confidences: ArrayLike<number>): { y: number[]; c: number[] } {
  if (labels.length !== confidences.length) throw new Error(`labels has ${labels.length} items but confidences has ${confidences.length}`);
  if (labels.length === 0) throw new Error("calibration metrics need at least one item");
  const y: number[] = new Array(labels.length);
  const c: number[] = new Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label !== 0 && label !== 1) throw new Error(`labels[${i}] = ${label} is not 0 or 1`);
    let conf = confidences[i]!;
    if (typeof conf !== "number" || !Number.isFinite(conf)) throw new Error(`confidences[${i}] = ${conf} is not a finite number`);
    if (conf < 0 || conf > 1) {
      if (conf < -1e-12 || conf > 1 + 1e-12) throw new Error(`confidences[${i}] = ${conf} is outside [0, 1]`);
      conf = conf < 0 ? 0 : 1;
    }
    y[i] = label;
    c[i] = conf;
  }
  return { y, c };
}

/** e_m = m / M, each one IEEE division (never accumulated, never linspace). */
export const binEdges = (bins = DEFAULT_BINS): number[] => Array.from({ length: bins + 1 }, (_, m) => m / bins);

/** 0-based equal-width bin: the first m in 1..M with c <= e_m, minus one; binary search on the edges. */
export function equalWidthBin(c: number, edges: readonly number[]): number {
  let lo = 1;
  let hi = edges.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (c <= edges[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo - 1;
}

export interface BinTable {
  counts: number[];
  mean_confidence: (number | null)[];
  accuracy: (number | null)[];
  gap: (number | null)[];
  confidence_min: (number | null)[];
  confidence_max: (number | null)[];
}

export interface ReliabilityBins extends BinTable {
  edges: number[];
  /** 0-based bin of every input item. */
  index: number[];
}

function summarise(groups: readonly number[][], y: readonly number[], c: readonly number[]): BinTable {
  const t: BinTable = { counts: [], mean_confidence: [], accuracy: [], gap: [], confidence_min: [], confidence_max: [] };
  for (const ids of groups) {
    const k = ids.length;
    t.counts.push(k);
    if (k === 0) {
      for (const key of ["mean_confidence", "accuracy", "gap", "confidence_min", "confidence_max"] as const) t[key].push(null);
      continue;
    }
    let sc = 0;
    let sy = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (const i of ids) {
      sc += c[i]!;
      sy += y[i]!;
      lo = Math.min(lo, c[i]!);
      hi = Math.max(hi, c[i]!);
    }
    const conf = sc / k;
    const acc = sy / k;
    t.mean_confidence.push(conf);
    t.accuracy.push(acc);
    t.gap.push(Math.abs(acc - conf));
    t.confidence_min.push(lo);
    t.confidence_max.push(hi);
  }
  return t;
}

const eceOf = (t: BinTable, n: number): number => t.counts.reduce((s, k, b) => (k ? s + (k / n) * t.gap[b]! : s), 0);

export function reliabilityBins(labels: ArrayLike<number>, confidences: ArrayLike<number>, bins = DEFAULT_BINS): ReliabilityBins {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  const edges = binEdges(bins);
  const index = c.map((v) => equalWidthBin(v, edges));
  const groups: number[][] = Array.from({ length: bins }, () => []);
  index.forEach((b, i) => groups[b]!.push(i));
  return { edges, index, ...summarise(groups, y, c) };
}

/** Stable ascending order of the confidences (ties keep input order). */
export const ascendingOrder = (c: readonly number[]): number[] => c.map((_, i) => i).sort((a, b) => c[a]! - c[b]! || a - b);

/** Equal-mass bins: stable sort, then numpy.array_split sizes (the first n mod M get one more). */
export function equalMassBins(labels: ArrayLike<number>, confidences: ArrayLike<number>, bins = DEFAULT_BINS, order?: readonly number[]): BinTable {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  const sorted = order ?? ascendingOrder(c);
  const q = Math.floor(c.length / bins);
  const r = c.length % bins;
  const groups: number[][] = [];
  let pos = 0;
  for (let b = 0; b < bins; b++) {
    const size = q + (b < r ? 1 : 0);
    groups.push(sorted.slice(pos, pos + size) as number[]);
    pos += size;
  }
  return summarise(groups, y, c);
}

export const ece = (labels: ArrayLike<number>, confidences: ArrayLike<number>, bins = DEFAULT_BINS): number =>
  eceOf(reliabilityBins(labels, confidences, bins), labels.length);

export const eceEqualMass = (labels: ArrayLike<number>, confidences: ArrayLike<number>, bins = DEFAULT_BINS): number =>
  eceOf(equalMassBins(labels, confidences, bins), labels.length);

/** Largest gap over non-empty bins, with that bin's index and count (a one-item bin can set it). */
export function mce(labels: ArrayLike<number>, confidences: ArrayLike<number>, bins = DEFAULT_BINS): { value: number; bin: number; count: number } {
  const t = reliabilityBins(labels, confidences, bins);
  let best = { value: -1, bin: -1, count: 0 };
  t.gap.forEach((g, b) => {
    if (g !== null && g > best.value) best = { value: g, bin: b, count: t.counts[b]! };
  });
  return best;
}

/** Top-label view: confidence max(c, 1-c), label = whether the decision c >= 0.5 was right. */
export function topLabel(labels: ArrayLike<number>, confidences: ArrayLike<number>): { labels: number[]; confidences: number[] } {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  return {
    confidences: c.map((v) => Math.max(v, 1 - v)),
    labels: c.map((v, i) => ((v >= 0.5 ? 1 : 0) === y[i] ? 1 : 0)),
  };
}

export function eceTopLabel(labels: ArrayLike<number>, confidences: ArrayLike<number>, bins = DEFAULT_BINS): number {
  const t = topLabel(labels, confidences);
  return ece(t.labels, t.confidences, bins);
}

export function eceClasswise(labels: ArrayLike<number>, confidences: ArrayLike<number>, bins = DEFAULT_BINS): number {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  return 0.5 * (ece(y, c, bins) + ece(y.map((v) => 1 - v), c.map((v) => 1 - v), bins));
}

export function brier(labels: ArrayLike<number>, confidences: ArrayLike<number>): number {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  return c.reduce((s, v, i) => s + (v - y[i]!) ** 2, 0) / c.length;
}

/** Mean negative log-likelihood in nats, confidences clipped to [eps, 1 - eps] first. */
export function nll(labels: ArrayLike<number>, confidences: ArrayLike<number>, eps = NLL_EPS): { value: number; clippedRows: number } {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  let total = 0;
  let clipped = 0;
  for (let i = 0; i < c.length; i++) {
    if (c[i]! < eps || c[i]! > 1 - eps) clipped++;
    const p = Math.min(Math.max(c[i]!, eps), 1 - eps);
    total += y[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return { value: -total / c.length, clippedRows: clipped };
}

/** A metric that can be undefined for its input: null with the reason, never 0, 0.5 or NaN. */
export interface Maybe {
  value: number | null;
  reason?: string;
}

/** AUROC as the Mann-Whitney statistic with average ranks for ties (= sklearn roc_auc_score). */
export function auroc(labels: ArrayLike<number>, confidences: ArrayLike<number>, order?: readonly number[]): Maybe {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  const pos = y.reduce((s, v) => s + v, 0);
  const neg = y.length - pos;
  if (pos === 0 || neg === 0) return { value: null, reason: `only one class present (${pos} positive, ${neg} negative)` };
  const sorted = order ?? ascendingOrder(c);
  let rankSum = 0;
  for (let start = 0; start < sorted.length; ) {
    let end = start;
    while (end + 1 < sorted.length && c[sorted[end + 1]!] === c[sorted[start]!]) end++;
    const avgRank = start + (end - start + 2) / 2;
    for (let k = start; k <= end; k++) if (y[sorted[k]!] === 1) rankSum += avgRank;
    start = end + 1;
  }
  return { value: (rankSum - (pos * (pos + 1)) / 2) / (pos * neg) };
}

export interface Thresholds {
  /** Distinct confidences, decreasing. */
  threshold: number[];
  /** Cumulative true and false positives at each threshold (accepting c >= t). */
  tp: number[];
  fp: number[];
}

/** One threshold per distinct confidence, decreasing, with cumulative counts (ties never split). */
export function thresholdsDescending(labels: ArrayLike<number>, confidences: ArrayLike<number>, order?: readonly number[]): Thresholds {
  const { y, c } = checkCalibrationInputs(labels, confidences);
  const sorted = order ?? ascendingOrder(c);
  const out: Thresholds = { threshold: [], tp: [], fp: [] };
  let tp = 0;
  let fp = 0;
  for (let k = sorted.length - 1; k >= 0; ) {
    const t = c[sorted[k]!]!;
    while (k >= 0 && c[sorted[k]!] === t) {
      if (y[sorted[k]!] === 1) tp++;
      else fp++;
      k--;
    }
    out.threshold.push(t);
    out.tp.push(tp);
    out.fp.push(fp);
  }
  return out;
}

/** sklearn average_precision_score: the step sum of precision over recall increments. */
export function averagePrecision(labels: ArrayLike<number>, confidences: ArrayLike<number>, order?: readonly number[]): Maybe {
  const t = thresholdsDescending(labels, confidences, order);
  const positives = t.tp[t.tp.length - 1]!;
  if (positives === 0) return { value: null, reason: "no positive label" };
  let ap = 0;
  let prevRecall = 0;
  for (let j = 0; j < t.threshold.length; j++) {
    const recall = t.tp[j]! / positives;
    ap += (recall - prevRecall) * (t.tp[j]! / (t.tp[j]! + t.fp[j]!));
    prevRecall = recall;
  }
  return { value: ap };
}

export interface RiskCoverage {
  threshold: number[];
  coverage: number[];
  risk: number[];
}

/** Selective prediction: accept c >= t; risk = error rate of the accepted; one point per distinct c. */
export function riskCoverage(labels: ArrayLike<number>, confidences: ArrayLike<number>, order?: readonly number[]): RiskCoverage {
  const t = thresholdsDescending(labels, confidences, order);
  const n = labels.length;
  return {
    threshold: t.threshold,
    coverage: t.tp.map((tp, j) => (tp + t.fp[j]!) / n),
    risk: t.fp.map((fp, j) => fp / (fp + t.tp[j]!)),
  };
}

/** Area under the risk-coverage curve, step rule: each item adds the risk at its own threshold. */
export function aurc(labels: ArrayLike<number>, confidences: ArrayLike<number>, order?: readonly number[]): number {
  const t = thresholdsDescending(labels, confidences, order);
  const n = labels.length;
  let total = 0;
  let prev = 0;
  for (let j = 0; j < t.threshold.length; j++) {
    const accepted = t.tp[j]! + t.fp[j]!;
    total += ((accepted - prev) / n) * (t.fp[j]! / accepted);
    prev = accepted;
  }
  return total;
}

/** AURC of the oracle ranking (every correct item first), discrete form. */
export function aurcOptimal(labels: ArrayLike<number>): number {
  const n = labels.length;
  let nc = 0;
  for (let i = 0; i < n; i++) nc += labels[i]!;
  let s = 0;
  for (let k = nc + 1; k <= n; k++) s += (k - nc) / k;
  return s / n;
}

/** Geifman et al.'s approximation r + (1 - r) ln(1 - r), for comparison only. */
export function aurcOptimalClosedForm(labels: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) sum += labels[i]!;
  const r = 1 - sum / labels.length;
  return r < 1 ? r + (1 - r) * Math.log(1 - r) : 1;
}

/** The nine scalars that get bootstrap intervals, computed with one shared sort. */
export const BOOTSTRAP_METRICS = ["ece_equal_width_15", "ece_equal_mass_15", "mce_15", "brier", "nll", "auroc", "average_precision", "aurc", "eaurc"] as const;
export type BootstrapMetric = (typeof BOOTSTRAP_METRICS)[number];

export function scalarMetrics(y: readonly number[], c: readonly number[], bins = DEFAULT_BINS): Record<BootstrapMetric, number | null> {
  const order = ascendingOrder(c);
  const rel = reliabilityBins(y, c, bins);
  const a = aurc(y, c, order);
  return {
    ece_equal_width_15: eceOf(rel, y.length),
    ece_equal_mass_15: eceOf(equalMassBins(y, c, bins, order), y.length),
    mce_15: Math.max(...rel.gap.filter((g): g is number => g !== null)),
    brier: brier(y, c),
    nll: nll(y, c).value,
    auroc: auroc(y, c, order).value,
    average_precision: averagePrecision(y, c, order).value,
    aurc: a,
    eaurc: a - aurcOptimal(y),
  };
}
