/**
 * Calibration figures as plain plotly figure objects, drawn by the conventions of
 * calibration.md 2.12: reliability diagram with a bin-count panel, the equal-mass variant,
 * confidence histograms split by known/unknown question, risk-coverage curves.
 */
import type { BinTable, ReliabilityBins, RiskCoverage } from "../eval/calibration.ts";
import type { CalibrationReport } from "../eval/bootstrap.ts";
import { figure, type Figure } from "./figure.ts";

const GREY = "#888888";
const BAR = "#4c78a8";
const BAR_FEW = "rgba(76,120,168,0.35)";
const GAP = "rgba(214,39,40,0.35)";

const f4 = (x: number) => x.toFixed(4);
/** A bin's interval written with its closure: [0, e1] for the first, (e_{m-1}, e_m] after. */
export const binInterval = (edges: readonly number[], m: number): string => `${m === 0 ? "[" : "("}${f4(edges[m]!)}, ${f4(edges[m + 1]!)}]`;

const fmt = (x: number | null | undefined, digits = 3) => (x === null || x === undefined ? "n/a" : x.toFixed(digits));
const ci = (r: CalibrationReport, key: keyof NonNullable<CalibrationReport["bootstrap"]>["ci"]) => {
  const v = r.bootstrap?.ci[key];
  return v ? ` [${fmt(v[0])}, ${fmt(v[1])}]` : "";
};

export interface ReliabilityOptions {
  title?: string;
  /** e.g. "P(Sufficient) vs answerable, positive-class" */
  description?: string;
  /** Bins with fewer items are drawn lighter and flagged "few items". Default 10. */
  fewItems?: number;
  logCounts?: boolean;
}

/** The summary line printed on the figure: n, base rate, ECE with its interval, MCE with its bin count, Brier, AUROC. */
export function calibrationAnnotation(r: CalibrationReport, description?: string): string {
  const lines = [
    description ?? (r.provenance ? `${r.provenance.source} vs ${r.provenance.target}, ${r.provenance.convention ?? "positive-class"}` : undefined),
    `n = ${r.n}, base rate ${fmt(r.base_rate)}`,
    `ECE (15 equal-width) ${fmt(r.ece_equal_width_15)}${ci(r, "ece_equal_width_15")}, equal-mass ${fmt(r.ece_equal_mass_15)}`,
    `MCE ${fmt(r.mce_15)} (bin of ${r.mce_15_bin_count}), Brier ${fmt(r.brier)}, AUROC ${fmt(r.auroc)}`,
    r.null_ece ? `ECE of a calibrated model with these confidences: mean ${fmt(r.null_ece.mean)}, 95th pct ${fmt(r.null_ece.p95)}` : undefined,
  ];
  return lines.filter(Boolean).join("<br>");
}

/** Reliability diagram: bars of accuracy per non-empty bin, gap to mean confidence shaded, counts below. */
export function reliabilityDiagram(report: CalibrationReport, options: ReliabilityOptions = {}): Figure {
  const bins: ReliabilityBins = report.reliability_diagram;
  const few = options.fewItems ?? 10;
  const M = bins.counts.length;
  const width = 1 / M;
  const centers = bins.edges.slice(0, M).map((e, m) => (e + bins.edges[m + 1]!) / 2);
  const nonEmpty = bins.counts.map((k, m) => m).filter((m) => bins.counts[m]! > 0);
  const hover = (m: number) =>
    `${binInterval(bins.edges, m)}<br>n = ${bins.counts[m]}${bins.counts[m]! < few ? " (few items)" : ""}<br>conf ${fmt(bins.mean_confidence[m], 4)}<br>acc ${fmt(bins.accuracy[m], 4)}<br>gap ${fmt(bins.gap[m], 4)}`;
  const data = [
    {
      type: "bar",
      name: "accuracy",
      x: nonEmpty.map((m) => centers[m]),
      y: nonEmpty.map((m) => bins.accuracy[m]),
      width: nonEmpty.map(() => width),
      marker: { color: nonEmpty.map((m) => (bins.counts[m]! < few ? BAR_FEW : BAR)), line: { color: "white", width: 0.5 } },
      hovertext: nonEmpty.map(hover),
      hoverinfo: "text",
      xaxis: "x",
      yaxis: "y",
    },
    {
      type: "bar",
      name: "gap to mean confidence",
      x: nonEmpty.map((m) => centers[m]),
      base: nonEmpty.map((m) => Math.min(bins.accuracy[m]!, bins.mean_confidence[m]!)),
      y: nonEmpty.map((m) => bins.gap[m]),
      width: nonEmpty.map(() => width),
      marker: { color: GAP, pattern: { shape: "/", fgcolor: "rgba(214,39,40,0.8)" } },
      hovertext: nonEmpty.map(hover),
      hoverinfo: "text",
      xaxis: "x",
      yaxis: "y",
    },
    {
      type: "scatter",
      mode: "markers",
      name: "bin mean (conf, acc)",
      x: nonEmpty.map((m) => bins.mean_confidence[m]),
      y: nonEmpty.map((m) => bins.accuracy[m]),
      marker: { color: "black", size: 6 },
      hovertext: nonEmpty.map(hover),
      hoverinfo: "text",
      xaxis: "x",
      yaxis: "y",
    },
    { type: "scatter", mode: "lines", name: "perfectly calibrated", x: [0, 1], y: [0, 1], line: { color: GREY, dash: "dash" }, hoverinfo: "skip", xaxis: "x", yaxis: "y" },
    {
      type: "bar",
      name: "items per bin",
      x: centers,
      y: bins.counts,
      width: centers.map(() => width),
      text: bins.counts.map(String),
      textposition: "outside",
      marker: { color: bins.counts.map((k) => (k < few ? BAR_FEW : GREY)) },
      hovertext: bins.counts.map((k, m) => `${binInterval(bins.edges, m)}<br>n = ${k}`),
      hoverinfo: "text",
      showlegend: false,
      xaxis: "x",
      yaxis: "y2",
    },
  ];
  const layout = {
    title: { text: options.title ?? "Reliability diagram", font: { size: 14 } },
    barmode: "overlay",
    // About square: the upper panel's plot area is ~390 x 385 px (no scaleanchor, which would widen the x range).
    width: 470,
    height: 680,
    xaxis: { range: [0, 1], dtick: 0.2, title: { text: "confidence" }, anchor: "y2" },
    yaxis: { range: [0, 1], dtick: 0.2, title: { text: "observed frequency" }, domain: [0.3, 1] },
    yaxis2: { title: { text: "items" }, domain: [0, 0.2], type: options.logCounts ? "log" : "linear", rangemode: "tozero" },
    legend: { orientation: "h", y: -0.12 },
    annotations: [{ text: calibrationAnnotation(report, options.description), x: 0.02, y: 0.98, xref: "paper", yref: "paper", xanchor: "left", yanchor: "top", showarrow: false, align: "left", font: { size: 10 }, bgcolor: "rgba(255,255,255,0.8)" }],
    margin: { t: 50, l: 60, r: 20, b: 80 },
  };
  return figure(data, layout);
}

/** Equal-mass bins: unequal widths, so points at (conf_b, acc_b) joined by a line; each bin's span and count below. */
export function equalMassReliability(bins: BinTable, options: { title?: string } = {}): Figure {
  const used = bins.counts.map((k, b) => b).filter((b) => bins.counts[b]! > 0);
  const hover = used.map((b) => `[${fmt(bins.confidence_min[b], 4)}, ${fmt(bins.confidence_max[b], 4)}]<br>n = ${bins.counts[b]}<br>conf ${fmt(bins.mean_confidence[b], 4)}<br>acc ${fmt(bins.accuracy[b], 4)}`);
  return figure(
    [
      { type: "scatter", mode: "lines", name: "perfectly calibrated", x: [0, 1], y: [0, 1], line: { color: GREY, dash: "dash" }, hoverinfo: "skip", xaxis: "x", yaxis: "y" },
      {
        type: "scatter",
        mode: "lines+markers",
        name: "equal-mass bins",
        x: used.map((b) => bins.mean_confidence[b]),
        y: used.map((b) => bins.accuracy[b]),
        hovertext: hover,
        hoverinfo: "text",
        xaxis: "x",
        yaxis: "y",
      },
      {
        // One bar per bin from its smallest to its largest confidence, as high as its count.
        type: "bar",
        name: "items per bin",
        x: used.map((b) => (bins.confidence_min[b]! + bins.confidence_max[b]!) / 2),
        width: used.map((b) => Math.max(bins.confidence_max[b]! - bins.confidence_min[b]!, 0.004)),
        y: used.map((b) => bins.counts[b]),
        text: used.map((b) => String(bins.counts[b])),
        textposition: "outside",
        marker: { color: GREY, opacity: 0.6 },
        hovertext: hover,
        hoverinfo: "text",
        showlegend: false,
        xaxis: "x",
        yaxis: "y2",
      },
    ],
    {
      title: { text: options.title ?? "Reliability (equal-mass bins)", font: { size: 13 } },
      width: 470,
      height: 620,
      xaxis: { range: [0, 1], dtick: 0.2, title: { text: "mean confidence" }, anchor: "y2" },
      yaxis: { range: [0, 1], dtick: 0.2, title: { text: "observed frequency" }, domain: [0.32, 1] },
      yaxis2: { title: { text: "items" }, domain: [0, 0.22], rangemode: "tozero" },
      legend: { orientation: "h", y: -0.15 },
    },
  );
}

/** Overlaid confidence histograms, one per question kind (known / unknown by default). */
export function confidenceHistogram(items: readonly { confidence: number; question: string }[], options: { title?: string; bins?: number; xTitle?: string } = {}): Figure {
  const kinds = [...new Set(items.map((i) => i.question))].sort();
  const colors: Record<string, string> = { known: "deepskyblue", unknown: "lightslategray" };
  const size = 1 / (options.bins ?? 20);
  return figure(
    kinds.map((kind) => ({
      type: "histogram",
      name: `${kind} questions (n = ${items.filter((i) => i.question === kind).length})`,
      x: items.filter((i) => i.question === kind).map((i) => i.confidence),
      xbins: { start: 0, end: 1 + 1e-9, size },
      opacity: 0.6,
      marker: { color: colors[kind] },
    })),
    {
      title: { text: options.title ?? "Confidence by question kind" },
      barmode: "overlay",
      width: 560,
      height: 360,
      xaxis: { range: [0, 1], title: { text: options.xTitle ?? "confidence" } },
      yaxis: { title: { text: "questions" } },
    },
  );
}

/** Risk-coverage curves (one per named run), drawn as steps, with AURC in the legend. */
export function riskCoverageCurve(curves: readonly { name: string; curve: RiskCoverage; aurc?: number }[], options: { title?: string } = {}): Figure {
  return figure(
    curves.map(({ name, curve, aurc }) => ({
      type: "scatter",
      mode: "lines+markers",
      // The risk of point j holds on (coverage_{j-1}, coverage_j]: vertical first, so the area under the steps is the AURC.
      line: { shape: "vh" },
      name: aurc === undefined ? name : `${name} (AURC ${aurc.toFixed(3)})`,
      x: curve.coverage,
      y: curve.risk,
      hovertext: curve.threshold.map((t, j) => `threshold ${t.toFixed(4)}<br>coverage ${curve.coverage[j]!.toFixed(3)}<br>risk ${curve.risk[j]!.toFixed(3)}`),
      hoverinfo: "text",
    })),
    {
      title: { text: options.title ?? "Selective prediction: risk vs coverage" },
      showlegend: true,
      legend: { orientation: "h", y: -0.25 },
      width: 560,
      height: 420,
      xaxis: { range: [0, 1.02], title: { text: "coverage (fraction answered)" } },
      yaxis: { rangemode: "tozero", title: { text: "risk (error rate of the answered)" } },
    },
  );
}

/**
 * Source (a)'s label mass log(P(Sufficient) + P(Insufficient)) per question: near 0 when the
 * model's next words are one of the two labels, very negative when it wanted to say something
 * else (renormalising the two labels then hides that), per calibration.md 1.2.
 */
export function labelMassHistogram(items: readonly { log_label_mass?: number; question: string }[], options: { title?: string } = {}): Figure {
  const kinds = [...new Set(items.map((i) => i.question))].sort();
  const colors: Record<string, string> = { known: "deepskyblue", unknown: "lightslategray" };
  return figure(
    kinds.map((kind) => ({
      type: "histogram",
      name: `${kind} questions`,
      x: items.filter((i) => i.question === kind && i.log_label_mass !== undefined).map((i) => i.log_label_mass),
      opacity: 0.6,
      nbinsx: 30,
      marker: { color: colors[kind] },
    })),
    {
      title: { text: options.title ?? "Label mass: log(P(Sufficient) + P(Insufficient))" },
      barmode: "overlay",
      width: 560,
      height: 360,
      xaxis: { title: { text: "log label mass (nats; 0 = all mass on the two labels)" } },
      yaxis: { title: { text: "questions" } },
    },
  );
}

/**
 * The 2x2 table of a thresholded confidence: decision c >= threshold ("answerable" / "correct")
 * against the label, counts and shares of all items, with accuracy in the title.
 */
export function confusionTable(
  labels: readonly number[],
  confidences: readonly number[],
  options: { threshold?: number; title?: string; positive?: string; negative?: string } = {},
): Figure {
  const t = options.threshold ?? 0.5;
  const pos = options.positive ?? "answerable";
  const neg = options.negative ?? "unanswerable";
  const cell = [
    [0, 0],
    [0, 0],
  ];
  labels.forEach((y, i) => cell[y === 1 ? 0 : 1]![confidences[i]! >= t ? 0 : 1]!++);
  const n = labels.length;
  const acc = n ? (cell[0]![0]! + cell[1]![1]!) / n : 0;
  return figure(
    [
      {
        type: "heatmap",
        x: [`predicted ${pos} (c ≥ ${t})`, `predicted ${neg}`],
        y: [`actually ${pos}`, `actually ${neg}`],
        z: cell.map((row) => row.map((v) => v / Math.max(1, n))),
        zmin: 0,
        zmax: 1,
        colorscale: "Blues",
        showscale: false,
        text: cell.map((row) => row.map((v) => `${v}<br>(${n ? ((100 * v) / n).toFixed(1) : "0.0"}%)`)),
        texttemplate: "%{text}",
        hoverinfo: "text",
      },
    ],
    {
      title: { text: options.title ?? `Decisions at c ≥ ${t}: accuracy ${(100 * acc).toFixed(1)}% (n = ${n})` },
      width: 520,
      height: 300,
      yaxis: { autorange: "reversed" },
      margin: { l: 140 },
    },
  );
}
