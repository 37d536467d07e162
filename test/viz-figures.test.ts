import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { calibrationReport } from "../src/eval/bootstrap.ts";
import { authorsResultRows, calibrationTable, resultRow, resultsTable, sideBySide } from "../src/eval/results.ts";
import { summarizeRows } from "../src/eval/scoring.ts";
import { accuracyBarChart, accuracyRowFromScores, outcomeTable, TEMP_PY_ROWS } from "../src/viz/bars.ts";
import { confidenceHistogram, confusionTable, reliabilityDiagram, riskCoverageCurve } from "../src/viz/calibration-plots.ts";
import { repoRoot } from "../src/util/paths.ts";
import { closePlotlyRenderer, plainFigure, plotlyMimeBundle } from "../src/viz/plotly.ts";
import { saveFigures } from "../src/viz/save.ts";

type Trace = Record<string, any>;
const hand10 = JSON.parse(readFileSync(join(repoRoot, "test", "fixtures", "calibration", "hand_10.json"), "utf8"));

test("reliability diagram: one bar per non-empty bin spanning it, gap up to mean confidence, every count below", () => {
  const r = calibrationReport(hand10.inputs.labels, hand10.inputs.confidences, { groups: hand10.inputs.groups, draws: 200 });
  const fig = reliabilityDiagram(r, { description: "P(Sufficient) vs answerable, positive-class" });
  const [acc, gap, marks, diagonal, counts] = fig.data as Trace[];
  const nonEmpty = hand10.expected.reliability_diagram.counts.filter((k: number) => k > 0).length;
  assert.equal(acc!.x.length, nonEmpty);
  assert.ok(acc!.width.every((w: number) => Math.abs(w - 1 / 15) < 1e-15));
  // Bin 12 holds 0.82 (y=1) and 0.85 (y=0): bar at its centre, height 0.5, gap from 0.5 up to 0.835.
  const k = acc!.x.findIndex((x: number) => Math.abs(x - 12.5 / 15) < 1e-12);
  assert.equal(acc!.y[k], 0.5);
  assert.ok(Math.abs(gap!.base[k] - 0.5) < 1e-12 && Math.abs(gap!.y[k] - 0.335) < 1e-12);
  assert.ok(Math.abs(marks!.x[k] - 0.835) < 1e-12);
  assert.match(acc!.hovertext[k], /^\(0\.8000, 0\.8667\]<br>n = 2 \(few items\)/);
  assert.match(acc!.hovertext[0], /^\[0\.0000, 0\.0667\]/);
  assert.deepEqual(diagonal!.x, [0, 1]);
  assert.equal(diagonal!.line.dash, "dash");
  assert.deepEqual(counts!.y, hand10.expected.reliability_diagram.counts);
  const note = (fig.layout as any).annotations[0].text as string;
  assert.match(note, /ECE \(15 equal-width\) 0\.278 \[/);
  assert.match(note, /MCE 0\.580 \(bin of 1\)/);
  assert.match(note, /n = 10, base rate 0\.500/);
  assert.deepEqual((fig.layout as any).xaxis.range, [0, 1]);
  assert.doesNotThrow(() => JSON.stringify(fig));
});

test("a figure saves as HTML and PNG, and displays in the kernel as plotly JSON and text (with Chromium, a PNG after)", async () => {
  const r = calibrationReport(hand10.inputs.labels, hand10.inputs.confidences, { draws: 0 });
  const fig = reliabilityDiagram(r);
  try {
    const dir = mkdtempSync(join(tmpdir(), "ktu-viz-save-"));
    const saved = await saveFigures(dir, [{ name: "reliability", figure: fig }], { html: "f.html", keepRenderer: true });
    assert.ok(readFileSync(join(dir, "f.html"), "utf8").includes("perfectly calibrated"));
    if (existsSync("/usr/bin/chromium")) {
      assert.deepEqual(saved.files, [join(dir, "f.html"), join(dir, "reliability.png")]);
      assert.equal(readFileSync(join(dir, "reliability.png")).subarray(1, 4).toString(), "PNG");
    }
    // In a kernel: the figure JSON (fractions to 6 significant digits) and text at once, no HTML; the
    // kernel adds the PNG (plotlyMimeBundle gives the whole bundle).
    const bundle = (fig as any)[Symbol.for("Jupyter.display")]();
    assert.deepEqual(bundle["application/vnd.plotly.v1+json"].data, plainFigure(fig.toJSON()).data);
    assert.equal(bundle["application/vnd.plotly.v1+json"].data.length, fig.data.length);
    assert.equal(typeof bundle["text/plain"], "string");
    assert.equal(bundle["text/html"], undefined);
    const full = await plotlyMimeBundle(fig.toJSON());
    if (existsSync("/usr/bin/chromium")) assert.ok(Buffer.from(full["image/png"] as string, "base64").subarray(1, 4).toString() === "PNG");
  } finally {
    await closePlotlyRenderer();
  }
});

test("confidence histograms split by question kind; risk-coverage steps", () => {
  const items = hand10.inputs.confidences.map((c: number, i: number) => ({ confidence: c, question: hand10.inputs.labels[i] ? "known" : "unknown" }));
  const h = confidenceHistogram(items);
  assert.equal(h.data.length, 2);
  assert.match((h.data[0] as Trace).name, /known questions \(n = 5\)/);
  const r = calibrationReport(hand10.inputs.labels, hand10.inputs.confidences, { draws: 0 });
  const rc = riskCoverageCurve([{ name: "P(Sufficient)", curve: r.risk_coverage, aurc: r.aurc }]);
  const t = rc.data[0] as Trace;
  assert.equal(t.line.shape, "vh");
  assert.deepEqual(t.x, hand10.expected.risk_coverage.coverage);
  assert.match(t.name, /AURC 0\.272/);
});

test("the temp.py chart: three series in the authors' colours, ylim 50-100, every bar labelled with its source", () => {
  const ours = accuracyRowFromScores("stories260K", { known_acc: 40, unknown_acc: 60 }, "ours: stories260K");
  assert.equal(ours.overall, 48);
  const fig = accuracyBarChart([...TEMP_PY_ROWS, ours]);
  const traces = fig.data as Trace[];
  assert.deepEqual([...new Set(traces.map((t) => t.marker.color))], ["salmon", "deepskyblue", "lightslategray"]);
  assert.deepEqual((fig.layout as any).yaxis.range, [50, 100]);
  assert.equal((fig.layout as any).yaxis.title.text, "score");
  assert.equal(traces.reduce((n, t) => n + t.y.length, 0), 3 * 8);
  for (const t of traces) assert.ok(t.text.every((s: string) => s === "authors (temp.py)" || s === "ours: stories260K"), t.name);
  const f1Authors = traces.find((t) => t.name === "F1 Score: authors (temp.py)")!;
  assert.deepEqual(f1Authors.y, [81.6, 67.2, 64.6, 66.5, 69.6, 32.8, 85.8]);
  assert.ok(Math.abs(f1Authors.x[0] - -1.3 * 0.18) < 1e-12);
  assert.notEqual(traces.find((t) => t.name === "F1 Score: ours: stories260K")!.marker.pattern.shape, f1Authors.marker.pattern.shape);
  const ticks = (fig.layout as any).xaxis.ticktext as string[];
  assert.match(ticks[0]!, /^GPT-4<br>.*authors(<br>| )\(temp\.py\)/);
  assert.match(ticks[7]!, /^stories260K<br>.*ours: stories260K/);
});

test("confusion table of decisions at c >= 0.5", () => {
  const t = confusionTable(hand10.inputs.labels, hand10.inputs.confidences).data[0] as Trace;
  // Known (y=1): 0.95, 0.82, 0.62, 0.90 answerable, 0.42 not; unknown (y=0): 0.55, 0.85 answerable, three not.
  assert.deepEqual(t.text, [["4<br>(40.0%)", "1<br>(10.0%)"], ["2<br>(20.0%)", "3<br>(30.0%)"]]);
});

test("outcome table and arquero results, side by side", () => {
  const acc = summarizeRows([
    { id: "1", known_correct: true, unknown_correct: true, known_outcome: "correct" },
    { id: "2", known_correct: false, unknown_correct: false, known_outcome: "refused" },
    { id: "3", known_correct: false, unknown_correct: true, known_outcome: "wrong" },
  ]);
  const t = outcomeTable(acc).data[0] as Trace;
  assert.deepEqual(t.text[0], ["1<br>(33.3%)", "1<br>(33.3%)", "1<br>(33.3%)"]);
  assert.deepEqual(t.text[1], ["n/a", "1<br>(33.3%)", "2<br>(66.7%)"]);
  const rows = [...authorsResultRows(), resultRow("LLaMA2", "ours, llama2_chat", { ...acc, metric: "2024-08" })];
  const table = resultsTable(rows);
  assert.equal(table.numRows(), 8);
  assert.deepEqual(table.column("source")!.at(7), "ours");
  const wide = sideBySide(rows);
  assert.equal(wide.numRows(), 7);
  const llama = wide.objects().find((r: any) => r.model === "LLaMA2") as any;
  assert.equal(llama["known_acc | Llama-2-7b-chat"], 79.3);
  assert.equal(llama["known_acc | ours, llama2_chat"], 33.33);
  const report = calibrationReport(hand10.inputs.labels, hand10.inputs.confidences, { groups: hand10.inputs.groups, draws: 100, provenance: { source: "p_sufficient", target: "answerability" } });
  const cal = calibrationTable([{ model: "m", source: "p_sufficient", report }]).objects()[0] as any;
  assert.equal(cal.ece_equal_width_15, report.ece_equal_width_15);
  assert.ok(cal.ece_equal_width_15_lo <= cal.ece_equal_width_15_hi);
  assert.equal(cal.target, "answerability");
});

test("ktu eval chart draws our scores.json beside the authors' rows and writes results.csv", async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { runKtu } = await import("./helpers/cli.ts");
  const dir = mkdtempSync(join(tmpdir(), "ktu-viz-chart-"));
  writeFileSync(join(dir, "scores.json"), JSON.stringify({ n: 10, known_acc: 70, unknown_acc: 90, overall: 78.75, metric: "strict", known_correct: 7, known_wrong: 2, known_refused: 1, unknown_correct: 9 }));
  const r = runKtu(["eval", "chart", "--scores", `mine=${dir}`, "--out", join(dir, "chart"), "--no-png"]);
  assert.equal(r.status, 0, r.stderr);
  const csv = readFileSync(join(dir, "chart", "results.csv"), "utf8").trim().split("\n");
  assert.equal(csv.length, 1 + 8);
  assert.match(csv[8]!, /^mine,run,strict,ours,10,70,90,78\.75,7,2,1$/);
  assert.ok(readFileSync(join(dir, "chart", "accuracy.html"), "utf8").includes("Accuracy of Negative Samples"));
});
