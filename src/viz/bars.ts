/**
 * The authors' temp.py bar chart (paper.md 4.2: overall, known and unknown accuracy per model,
 * ylim 50-100, salmon / deepskyblue / lightslategray), with every bar labelled by where its number
 * comes from, and the outcome table of one run.
 */
import type { Accuracies } from "../eval/scoring.ts";
import { harmonicMean } from "../eval/scoring.ts";
import { AUTHORS_TEMP_PY, TEMP_PY_NUMBERS } from "../eval/results.ts";
import { figure, type Figure } from "./figure.ts";

export interface AccuracyBarRow {
  label: string;
  /** Harmonic mean of known and unknown accuracy (temp.py's "F1 Score"), percent. */
  overall: number;
  known: number;
  unknown: number;
  /** Where the numbers come from, e.g. "authors (temp.py)" or "ours: stories260K". */
  source: string;
}

/** The authors' temp.py rows as bars, labelled with their source. */
export const TEMP_PY_ROWS: readonly AccuracyBarRow[] = Object.freeze(
  TEMP_PY_NUMBERS.map(({ label, overall, known, unknown }) => Object.freeze({ label, overall, known, unknown, source: AUTHORS_TEMP_PY })),
);

/** A bar row of ours from a score report (percent accuracies). */
export const accuracyRowFromScores = (label: string, scores: Pick<Accuracies, "known_acc" | "unknown_acc">, source = "ours"): AccuracyBarRow => ({
  label,
  overall: harmonicMean(scores.known_acc, scores.unknown_acc),
  known: scores.known_acc,
  unknown: scores.unknown_acc,
  source,
});

const SERIES = [
  { key: "overall", name: "F1 Score", color: "salmon", offset: -1.3 },
  { key: "known", name: "Accuracy of Positive Samples", color: "deepskyblue", offset: 0 },
  { key: "unknown", name: "Accuracy of Negative Samples", color: "lightslategray", offset: 1.3 },
] as const;

/**
 * Grouped bars like temp.py (width 0.18, offsets -1.3w / 0 / +1.3w, y "score", ylim 50-100).
 * Each source gets its own fill pattern and every bar carries its source as text and on hover,
 * so the authors' numbers and ours are never confused.
 */
export function accuracyBarChart(rows: readonly AccuracyBarRow[], options: { title?: string; ylim?: [number, number]; width?: number } = {}): Figure {
  const width = 0.18;
  const sources = [...new Set(rows.map((r) => r.source))];
  const patterns = ["", "/", "x", ".", "\\", "+"];
  const shortSource = (s: string) => (s.length > 18 ? s.slice(0, 17) + "…" : s);
  const data = SERIES.flatMap((series) =>
    sources.map((source, k) => {
      const picked = rows.map((r, i) => ({ r, i })).filter(({ r }) => r.source === source);
      return {
        type: "bar",
        name: sources.length > 1 ? `${series.name}: ${source}` : series.name,
        legendgroup: series.key,
        x: picked.map(({ i }) => i + series.offset * width),
        y: picked.map(({ r }) => r[series.key]),
        width: picked.map(() => width),
        marker: { color: series.color, pattern: { shape: patterns[k % patterns.length], fgcolor: "rgba(0,0,0,0.45)" }, line: { color: "white", width: 0.5 } },
        text: picked.map(() => shortSource(source)),
        textposition: "inside",
        textangle: -90,
        insidetextanchor: "start",
        textfont: { size: 8 },
        hovertext: picked.map(({ r }) => `${r.label.replace(/\s*\n\s*/g, " ")}<br>${series.name}: ${r[series.key].toFixed(2)}<br>source: ${source}`),
        hoverinfo: "text",
      };
    }),
  );
  const layout = {
    title: { text: options.title ?? "Known, unknown and overall accuracy" },
    width: options.width ?? Math.max(640, 125 * rows.length),
    height: 520,
    barmode: "overlay",
    // The source also goes under each group's label: bar text is hidden when a bar is too short for it.
    // Labels and sources wrapped to the width of a group, so that neighbours do not overlap.
    xaxis: { tickangle: 0, tickvals: rows.map((_, i) => i), ticktext: rows.map((r) => `${wrap(r.label, 12)}<br><i style="font-size:9px">${wrap(r.source, 18)}</i>`) },
    yaxis: { title: { text: "score" }, range: options.ylim ?? [50, 100] },
    legend: { orientation: "h", y: -0.34 },
    margin: { b: 140 },
  };
  return figure(data, layout);
}

/** The outcome table of one run: known questions correct / wrong / refused, unknown refused / answered. */
export function outcomeTable(scores: Accuracies, options: { title?: string } = {}): Figure {
  const n = scores.n;
  const unknownAnswered = n - scores.unknown_correct;
  const z = [
    [scores.known_correct, scores.known_wrong, scores.known_refused],
    [null, unknownAnswered, scores.unknown_correct],
  ];
  const columns = ["answered correctly", "answered wrongly (hallucinated)", "refused"];
  const rowsLabels = ["known question", "unknown question"];
  const pct = (v: number | null) => (v === null || n === 0 ? "n/a" : `${v}<br>(${((100 * v) / n).toFixed(1)}%)`);
  return figure(
    [
      {
        type: "heatmap",
        x: columns,
        y: rowsLabels,
        z: z.map((row) => row.map((v) => (v === null ? null : v / Math.max(1, n)))),
        zmin: 0,
        zmax: 1,
        colorscale: "Blues",
        showscale: false,
        text: z.map((row) => row.map(pct)),
        texttemplate: "%{text}",
        hoverinfo: "text",
      },
    ],
    {
      title: { text: options.title ?? `Outcomes (n = ${n} rows)` },
      width: 560,
      height: 280,
      yaxis: { autorange: "reversed" },
      margin: { l: 130 },
    },
  );
}

/** Text broken into lines of about `width` characters (at spaces and after "&"), joined with <br>. */
function wrap(text: string, width: number): string {
  const lines: string[] = [];
  for (const part of text.split(/\s*\n\s*/)) {
    let line = "";
    for (const word of part.split(" ")) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    if (line) lines.push(line);
  }
  return lines.join("<br>");
}
