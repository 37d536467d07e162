/**
 * Saving figures: one HTML page (plotly.js inlined once) and a PNG per figure when headless
 * Chromium is available. The `ktu eval calibrate` command writes its plots through this.
 */
import { join } from "node:path";
import type { CalibrationReport } from "../eval/bootstrap.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { confidenceHistogram, confusionTable, equalMassReliability, labelMassHistogram, reliabilityDiagram, riskCoverageCurve } from "./calibration-plots.ts";
import type { Figure } from "./figure.ts";
import { closePlotlyRenderer, renderPlotlyImage, writePlotlyHtml } from "./plotly.ts";

export interface SavedFigures {
  files: string[];
  notes: string[];
}

/** Writes `dir/<html>` with every figure and `dir/<name>.png` for each; PNGs are skipped without Chromium. */
export async function saveFigures(
  dir: string,
  figures: readonly { name: string; figure: Figure }[],
  options: { html?: string; title?: string; png?: boolean; /** Keep the headless browser warm for more renders (default: close it). */ keepRenderer?: boolean } = {},
): Promise<SavedFigures> {
  const html = join(dir, options.html ?? "figures.html");
  await writePlotlyHtml(html, figures.map((f) => f.figure.toJSON()), options.title ?? "Figures");
  const files = [html];
  const notes: string[] = [];
  if (options.png !== false) {
    try {
      for (const { name, figure } of figures) {
        const layout = figure.layout as { width?: number; height?: number };
        const png = await renderPlotlyImage(figure.toJSON(), { format: "png", width: layout.width, height: layout.height });
        if (!png) {
          notes.push("no headless Chromium: PNGs skipped, HTML written");
          break;
        }
        const path = join(dir, `${name}.png`);
        await writeFileAtomic(path, png);
        files.push(path);
      }
    } finally {
      if (!options.keepRenderer) await closePlotlyRenderer();
    }
  }
  return { files, notes };
}

export interface CalibrationFigureInput {
  name: string;
  description: string;
  report: CalibrationReport;
  items: readonly { confidence: number; label: number; question: string; log_label_mass?: number }[];
}

/** The calibration plots of every confidence source, plus one risk-coverage figure for all. */
export function calibrationFigures(runs: readonly CalibrationFigureInput[]): { name: string; figure: Figure }[] {
  const figs = runs.flatMap((r) => [
    { name: `${r.name}-reliability`, figure: reliabilityDiagram(r.report, { title: `Reliability: ${r.name}`, description: r.description }) },
    { name: `${r.name}-equal-mass`, figure: equalMassReliability(r.report.equal_mass_bins, { title: `Reliability, equal-mass bins: ${r.name}` }) },
    { name: `${r.name}-histogram`, figure: confidenceHistogram(r.items, { title: `Confidence by question kind: ${r.name}` }) },
    ...(r.items.some((i) => i.log_label_mass !== undefined) ? [{ name: `${r.name}-label-mass`, figure: labelMassHistogram(r.items) }] : []),
    {
      name: `${r.name}-decisions`,
      figure: confusionTable(
        r.items.map((i) => i.label),
        r.items.map((i) => i.confidence),
        r.report.provenance?.target === "correctness" ? { positive: "correct", negative: "wrong", title: `Decisions of ${r.name} at c ≥ 0.5` } : { title: `Decisions of ${r.name} at c ≥ 0.5` },
      ),
    },
  ]);
  if (runs.length > 0) figs.push({ name: "risk-coverage", figure: riskCoverageCurve(runs.map((r) => ({ name: r.name, curve: r.report.risk_coverage, aurc: r.report.aurc }))) });
  return figs;
}

export const saveCalibrationFigures = (dir: string, runs: readonly CalibrationFigureInput[], options: { png?: boolean } = {}): Promise<SavedFigures> =>
  saveFigures(dir, calibrationFigures(runs), { html: "calibration.html", title: "Calibration", png: options.png });
