/**
 * out/report: index.html (tables and plotly figures, plotly.js inlined once, so the page works
 * offline) and results.json. Our numbers and the authors' temp.py numbers are never mixed: every bar
 * and every table row names its source.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { TEMP_PY_ROWS, accuracyBarChart, type AccuracyBarRow } from "../viz/bars.ts";
import { reliabilityDiagram, riskCoverageCurve } from "../viz/calibration-plots.ts";
import { figure, readable, type Figure } from "../viz/figure.ts";
import { writeFileAtomic, writeJsonAtomic } from "../util/fs.ts";
import { acceptanceRows } from "./acceptance.ts";
import { PIPELINE_ARMS, type PipelineResult } from "./run.ts";
import { formatCi, formatMeanCi, formatSpread, modelName, summarizePipeline, type ArmSummary, type BenchmarkSummary, type PipelineSummary } from "./summary.ts";

const COLORS = { overall: "salmon", known: "deepskyblue", unknown: "lightslategray" } as const;

/** Our arms as grouped bars (known / unknown / overall), mean over seeds with ±1 sd error bars and every seed as a dot. */
export function oursBarChart(summary: PipelineSummary, bench?: BenchmarkSummary): Figure {
  const arms = bench?.arms ?? summary.arms;
  const title = bench?.title ?? summary.benchmarks[summary.primary_benchmark]?.title ?? "";
  const x = arms.map((a) => `${a.label}<br>(${a.paper_label})`);
  const series = [
    { key: "overall", name: "overall (harmonic mean)" },
    { key: "known", name: "known-question accuracy" },
    { key: "unknown", name: "unknown-question accuracy (refusals)" },
  ] as const;
  const data = series.flatMap((s, k) => [
    {
      type: "bar",
      name: `${s.name}: ${summary.source}`,
      x,
      y: arms.map((a) => a[s.key].mean),
      error_y: { type: "data", array: arms.map((a) => a[s.key].sd), visible: true },
      marker: { color: COLORS[s.key] },
      offsetgroup: String(k),
      text: arms.map(() => "ours"),
      textposition: "inside",
      hovertext: arms.map((a) => `${a.label}<br>${s.name}: ${formatSpread(a[s.key])}<br>seeds: ${a.seeds.map((r) => r[s.key].value.toFixed(1)).join(", ")}<br>source: ${summary.source}`),
      hoverinfo: "text",
    },
  ]);
  const allZero = arms.every((a) => a.known.max === 0 && a.unknown.max === 0);
  return figure(data, {
    title: { text: `Ours on ${title} (${modelName(summary.model.path)}, ${arms[1]?.seeds.length ?? 0} seeds): mean ± sd, strict scoring` },
    annotations: allZero ? [{ text: "every bar is 0: no arm answered a known question or refused an unknown one (see the diagnostics)", xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { size: 14, color: "firebrick" } }] : [],
    barmode: "group",
    width: 980,
    height: 540,
    yaxis: { title: { text: "accuracy (%)" }, range: [0, 105] },
    legend: { orientation: "h", y: -0.3 },
    margin: { b: 150 },
  });
}

/** The authors' figure and ours in temp.py's layout, each bar labelled with its source. */
export function paperComparisonChart(summary: PipelineSummary): Figure {
  // Each setting twice, side by side: the authors' bars, then ours (each bar also names its source).
  const rows: AccuracyBarRow[] = summary.arms.flatMap((a) => {
    const theirs = TEMP_PY_ROWS.find((r) => r.label.replace(/\s*\n\s*/g, " ") === a.paper_label);
    const ours = { label: `${a.paper_label}\n(ours)`, overall: a.overall.mean, known: a.known.mean, unknown: a.unknown.mean, source: summary.source };
    return theirs ? [{ ...theirs, label: `${a.paper_label}\n(authors)` }, ours] : [ours];
  });
  return accuracyBarChart(rows, { title: "Authors' temp.py numbers (Llama-2-7B) beside ours (tiny model): different models, data and scale", ylim: [0, 100], width: 1200 });
}

/** The collapse diagnostics: AUROC of P(Sufficient) and of 1 − P(Not Provided) per arm, chance and the word-overlap reference. */
export function diagnosticsChart(summary: PipelineSummary, bench?: BenchmarkSummary): Figure {
  const arms = bench?.arms ?? summary.arms;
  const title = bench?.title ?? summary.benchmarks[summary.primary_benchmark]?.title ?? "";
  const x = arms.map((a) => a.label);
  const trace = (name: string, pick: (d: PipelineSummary["arms"][number]["seeds"][number]) => { value: number; ci: [number, number] | null }, color: string, shift: number) => ({
    type: "scatter",
    mode: "markers",
    name,
    x: arms.flatMap((a) => a.seeds.map(() => a.label)),
    y: arms.flatMap((a) => a.seeds.map((s) => pick(s).value)),
    error_y: {
      type: "data",
      symmetric: false,
      array: arms.flatMap((a) => a.seeds.map((s) => (pick(s).ci ? pick(s).ci![1] - pick(s).value : 0))),
      arrayminus: arms.flatMap((a) => a.seeds.map((s) => (pick(s).ci ? pick(s).value - pick(s).ci![0] : 0))),
    },
    marker: { color, size: 8 },
    xaxis: "x",
    offset: shift,
  });
  const ref = (bench?.overlap_reference_auroc ?? summary.overlap_reference_auroc).value;
  return figure(
    [
      trace("AUROC of P(Sufficient), stage-1 prompt (95% cluster CI)", (s) => s.diagnostics.auroc_p_sufficient, "darkorange", -0.1),
      trace("AUROC of 1 − P(Not Provided), QA prompt (95% cluster CI)", (s) => s.diagnostics.auroc_p_answer, "teal", 0.1),
      { type: "scatter", mode: "lines", name: "chance (0.5)", x: [x[0], x.at(-1)], y: [0.5, 0.5], line: { dash: "dash", color: "gray" } },
      { type: "scatter", mode: "lines", name: `word-overlap reference, no training (${ref.toFixed(2)})`, x: [x[0], x.at(-1)], y: [ref, ref], line: { dash: "dot", color: "green" } },
    ],
    {
      title: { text: `${title}: does the model tell known from unknown questions? (each dot one seed)` },
      width: 980,
      height: 520,
      yaxis: { title: { text: "AUROC" }, range: [0, 1] },
      legend: { orientation: "h", y: -0.25 },
      margin: { b: 120 },
    },
  );
}

/** Training loss of every run of the first seed, from its trainer_log.jsonl. */
export function lossChart(result: PipelineResult): Figure {
  const seed = result.options.seeds[0];
  const runs = result.trained.filter((t) => t.seed === seed);
  const data = runs.flatMap((t) => {
    const file = join(t.dir, "trainer_log.jsonl");
    if (!existsSync(file)) return [];
    const rows = readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { current_steps: number; loss?: number })
      .filter((r) => typeof r.loss === "number");
    return [{ type: "scatter", mode: "lines", name: `${t.arm}: ${t.set}`, x: rows.map((r) => r.current_steps), y: rows.map((r) => r.loss) }];
  });
  // Whole steps on the axis (a two-step run would otherwise show 1.2, 1.4, ...).
  const lastStep = Math.max(1, ...data.flatMap((d) => d.x));
  return readable(
    figure(data, { title: { text: `Training loss (seed ${seed}; response tokens only)` }, width: 760, height: 380, xaxis: { title: { text: "optimizer step" }, tick0: 0, dtick: Math.max(1, Math.ceil(lastStep / 10)) }, yaxis: { title: { text: "loss (nats/token)" } } }),
  );
}

/** Every figure of the report, named. */
export function reportFigures(result: PipelineResult, summary = summarizePipeline(result)): { name: string; figure: Figure }[] {
  const first = (arm: string) => result.evaluations.find((e) => e.arm === arm);
  const figs = [
    { name: "ours", figure: oursBarChart(summary) },
    { name: "paper-comparison", figure: paperComparisonChart(summary) },
    { name: "diagnostics", figure: diagnosticsChart(summary) },
    { name: "loss", figure: lossChart(result) },
  ];
  for (const arm of ["base", "stage1", "stage1_stage2"]) {
    const e = first(arm);
    if (e) figs.push({ name: `reliability-${arm}`, figure: reliabilityDiagram(e.evaluation.calibration.p_sufficient, { title: `Reliability of P(Sufficient): ${arm}${e.seed === null ? "" : ` (seed ${e.seed})`}` }) });
  }
  const curves = PIPELINE_ARMS.flatMap((a) => {
    const e = first(a.id);
    return e ? [{ name: a.label, curve: e.evaluation.calibration.p_sufficient.risk_coverage, aurc: e.evaluation.calibration.p_sufficient.aurc }] : [];
  });
  for (const f of figs) readable(f.figure);
  figs.push({ name: "risk-coverage", figure: readable(riskCoverageCurve(curves, { title: "Risk vs coverage, abstaining on low P(Sufficient) (first seed)" })) });
  // The other benchmarks: their bars and diagnostics (the primary one's are above).
  for (const bench of Object.values(summary.benchmarks)) {
    if (bench.source === summary.primary_benchmark) continue;
    figs.push({ name: `ours-${bench.source}`, figure: readable(oursBarChart(summary, bench)) });
    figs.push({ name: `diagnostics-${bench.source}`, figure: readable(diagnosticsChart(summary, bench)) });
  }
  return figs;
}

/** A setting's value as a table cell: lists joined, objects as key = value pairs, paths as given. */
function settingText(value: unknown): string {
  if (value === undefined || value === null) return "–";
  if (Array.isArray(value)) return value.map(settingText).join(", ");
  if (typeof value === "object") return Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k} = ${settingText(v)}`).join("; ");
  return String(value);
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function table(head: string[], rows: (string | number)[][], cls = ""): string {
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(String(c))}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

export function plotlyJs(): string {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve("plotly.js-dist-min"), "utf8");
}

/** The paper figure's order: base, stage 1, US-Tuning, then the ablations. */
export const PAPER_TABLE_ORDER = ["base", "stage1", "stage1_stage2", "qa", "stage2", "stage1_qa"] as const;

/** One benchmark's rows in the shape of the paper's figure (known, unknown, overall per setting), then the non-reading baselines. */
export function benchmarkTableRows(bench: BenchmarkSummary): string[][] {
  const arms = PAPER_TABLE_ORDER.map((id) => bench.arms.find((a) => a.id === id)).filter((a): a is ArmSummary => a !== undefined && a.seeds.length > 0);
  const auroc = (a: ArmSummary) => (a.seeds.length ? (a.seeds.reduce((t, r) => t + r.diagnostics.auroc_p_sufficient.value, 0) / a.seeds.length).toFixed(2) : "–");
  return [
    ...arms.map((a) => [a.label, a.paper_label, formatMeanCi(a, "known"), formatMeanCi(a, "unknown"), formatMeanCi(a, "overall"), String(a.seeds.length), `${a.collapsed_seeds}/${a.seeds.length}`, auroc(a)]),
    ...bench.baselines.map((b) => [b.label, "–", formatCi(b.known), formatCi(b.unknown), formatCi(b.overall), "–", "–", b.id === "overlap_first_words" ? formatCi(bench.overlap_reference_auroc, 2) : "–"]),
  ];
}

/** The report's lead: one table per benchmark, its pattern stated with the intervals, whatever it is. */
export function benchmarkSections(summary: PipelineSummary): string {
  return Object.values(summary.benchmarks)
    .map((b) => {
      const cls = b.pattern.artifact || !b.pattern.appears ? "warn" : "ok";
      return `<h3 id="bench-${b.source}">${esc(b.title)}</h3>
${table(["setting", "authors' label", "known % [95% CI]", "unknown % [95% CI]", "overall % [95% CI]", "seeds", "collapsed seeds", "AUROC P(Sufficient)"], benchmarkTableRows(b), "bench")}
<p class="statement">${esc(b.statement)}</p>
<div class="${cls}">${esc(b.pattern.verdict)}</div>`;
    })
    .join("\n");
}

export function reportHtml(result: PipelineResult, summary: PipelineSummary, figs = reportFigures(result, summary)): string {
  const s = summary;
  const seeds = s.settings.seeds.length;
  const armRows = s.arms.map((a) => [a.label, a.paper_label, formatSpread(a.known), formatSpread(a.unknown), formatSpread(a.overall), `${a.collapsed_seeds}/${a.seeds.length}`, `${a.no_discrimination_seeds}/${a.seeds.length}`]);
  const seedRowsOf = (arms: readonly ArmSummary[]) => arms.flatMap((a) =>
    a.seeds.map((r) => [a.label, r.seed ?? "–", r.n, formatCi(r.known), formatCi(r.unknown), r.known_refused.toFixed(1), formatCi(r.overall), `${(100 * r.diagnostics.majority_output_share).toFixed(0)}% "${r.diagnostics.majority_output.slice(0, 30)}"`, `${(100 * r.diagnostics.refusal_share).toFixed(0)}%`, formatCi(r.diagnostics.auroc_p_sufficient, 2), formatCi(r.diagnostics.auroc_p_answer, 2), `${(100 * r.diagnostics.classification_acc).toFixed(1)}`, r.lenient.known.toFixed(1) + " / " + r.lenient.unknown.toFixed(1)]),
  );
  const seedRows = seedRowsOf(s.arms);
  const otherSeedTables = Object.values(s.benchmarks)
    .filter((b) => b.source !== s.primary_benchmark)
    .map((b) => `<h3>Per seed on ${esc(b.title)}</h3><p>Word-overlap reference (no model): AUROC ${formatCi(b.overlap_reference_auroc, 2)}.</p>${table(["arm", "seed", "n", "known %", "unknown % (refused)", "known refused %", "overall %", "majority first word", "refusals (all answers)", "AUROC P(Sufficient)", "AUROC P(answer)", "stage-1 acc %", "lenient 2024-08 known / unknown"], seedRowsOf(b.arms))}`)
    .join("\n");
  const authorsRows = s.authors_temp_py.map((r) => [r.label, r.setting, r.known.toFixed(1), r.unknown.toFixed(1), r.overall.toFixed(1), r.source]);
  const trainRows = Object.values(s.benchmarks).flatMap((b) => b.trained).map((t) => [t.seed, t.arm, t.set, t.examples, t.steps, Number.isFinite(t.finalLoss) ? t.finalLoss.toFixed(4) : "n/a", t.seconds.toFixed(1), relative(result.reportDir, t.dir)]);
  const sets = Object.values(s.benchmarks).flatMap((b) => Object.entries(b.data.sets).map(([k, v]) => [`${b.title}: ${k}`, v.examples, v.cropped, `${(100 * v.keptShare).toFixed(0)}%`]));
  // The headline names what the table beside it shows: collapsed seeds, or models that do not discriminate.
  const collapsed = s.arms.some((a) => a.collapsed_seeds > 0);
  const banner = s.pattern.artifact
    ? `<div class="warn"><b>${collapsed ? "Collapse." : "No learned discrimination."}</b> ${esc(s.pattern.verdict)}</div>`
    : `<div class="${s.pattern.appears ? "ok" : "warn"}">${esc(s.pattern.verdict)}</div>`;
  const acceptance = s.acceptance
    ? `<h2>Acceptance of the reader</h2>
<p>From <code>${esc(relative(process.cwd(), s.acceptance.file) || s.acceptance.file)}</code> (recipes/reader/evaluate.ts, for <code>${esc(s.acceptance.acceptance.model)}</code>${s.acceptance.acceptance.generated ? `, ${esc(s.acceptance.acceptance.generated)}` : ""}): ${s.acceptance.acceptance.test.rows} held-apart test rows in ${s.acceptance.acceptance.test.clusters} clusters${s.acceptance.acceptance.test.description ? ` (${esc(s.acceptance.acceptance.test.description)})` : ""}, ${esc(s.acceptance.acceptance.metric)} scoring, 95% cluster-bootstrap intervals. These are the recipe's own runs (full fine-tunes), not this report's arms.</p>
${table(["seed", "arm", "known %", "unknown %", "stage-1 AUROC"], acceptanceRows(s.acceptance.acceptance))}`
    : "";
  const figHtml = figs.map((f, i) => `<h3>${esc(f.name)}</h3><div id="fig-${i}" class="fig"></div><script>Plotly.newPlot("fig-${i}", ${JSON.stringify(f.figure.data)}, ${JSON.stringify(f.figure.layout)}, {responsive: true});</script>`);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>US-Tuning main job: report</title>
<style>body{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f3f3f3}.warn{background:#fff3cd;border:1px solid #e0c36b;padding:.8em;margin:1em 0}.ok{background:#e6f4ea;border:1px solid #8bc79b;padding:.8em}.authors td{color:#555;font-style:italic}code{background:#f3f3f3;padding:1px 4px}</style>
<script>${plotlyJs()}</script></head><body>
<h1>US-Tuning, the main job on ${esc(modelName(s.model.path))}: ${esc(Object.values(s.benchmarks).map((b) => b.title).join(", "))}</h1>
<p><b>Model:</b> ${esc(s.model.description.line)}. Prompts: ${esc(s.prompt.format)}${s.prompt.file ? ` (<code>${esc(s.prompt.file)}</code>)` : ""}${s.prompt.contextChars ? `, passages cropped to about ${s.prompt.contextChars} characters around the answer` : ""}.</p>
<p>Two-stage uncertainty-sensitive tuning (Li, Tang &amp; Yang, ACL Findings 2025) re-run end to end on the embedded model: data, stage 1, merge, stage 2 and the paper's ablations, ${seeds} seed(s), on each benchmark (${esc(Object.values(s.benchmarks).map((b) => `${b.title}: ${b.test_rows} held-apart test rows${b.source === "asqa" ? `, ${s.settings.benchmark} filter` : ""}`).join("; "))}); bAbI and SQuAD train their stage sets on their own train sides, ASQA on its train side and HotpotQA as the paper does. Model: <code>${esc(s.model.path)}</code>, ${s.model.params.toLocaleString("en")} parameters, context ${s.model.config.seqLen}. The steps took ${(s.step_seconds / 60).toFixed(1)} minutes in all (summed over parallel workers and earlier invocations; this invocation: ${s.seconds.toFixed(0)} s).</p>
<h2>Known, unknown and overall accuracy on each benchmark</h2>
<p>In the shape of the paper's figure: the base model, stage 1 alone, US-Tuning (stage 1, merged, then stage 2), then the ablations, each the mean over seeds with a 95% cluster-bootstrap interval (each draw resamples the test rows' clusters and scores every seed on them), strict scoring; the answers that need no model, on the same rows, below them. The AUROC of the word overlap between question and passage (no model) stands in the last column of the second baseline row.</p>
${benchmarkSections(s)}
${banner}
${acceptance}
<h2>Our results on ${esc(s.benchmarks[s.primary_benchmark]?.title ?? "")} (mean ± sd over seeds)</h2>
<p>Strict scoring: a known answer is right when a gold answer is a whole-token span of the output; an unknown answer is right when it refuses (paper.md 3.1 keywords, or empty). Overall is the harmonic mean, as the authors' "F1 Score".</p>
${table(["arm", "authors' label", "known %", "unknown %", "overall %", "collapsed seeds", "no-discrimination seeds"], armRows)}
<h2>Per seed on ${esc(s.benchmarks[s.primary_benchmark]?.title ?? "")}, with 95% cluster-bootstrap intervals and collapse diagnostics</h2>
<p>Intervals resample the ASQA ambiguous questions (both questions of a row, and rows sharing a question, move together). "Majority first word" is the share of the most common first word of the answers over all known and unknown questions (a constant label or a constant "Not Provided" shows as 90% or more), and "refusals" the share of all answers that refuse; AUROC compares known (1) with unknown (0) questions, 0.5 being chance. The word-overlap reference (no model) scores AUROC ${formatCi(s.overlap_reference_auroc, 2)} on the same rows.</p>
${table(["arm", "seed", "n", "known %", "unknown % (refused)", "known refused %", "overall %", "majority first word", "refusals (all answers)", "AUROC P(Sufficient)", "AUROC P(answer)", "stage-1 acc %", "lenient 2024-08 known / unknown"], seedRows)}
${otherSeedTables}
<h2>The authors' numbers (not ours)</h2>
<p>From the authors' plotting script temp.py (paper.md 4.2): Llama-2-7b-chat with LoRA, the paper's full prompts, ASQA train. Their test set, split and scoring version are not stated. They are shown for comparison only.</p>
${table(["authors' label", "setting (inferred)", "known %", "unknown %", "overall %", "source"], authorsRows, "authors")}
<h2>Figures</h2>
${figHtml.join("\n")}
<h2>Training runs</h2>
${table(["seed", "arm", "data", "examples", "steps", "final loss", "seconds", "adapter and trainer_log.jsonl"], trainRows)}
<h2>Data and settings</h2>
${table(["set", "examples", "cropped rows", "passage kept"], sets)}
<p>Compact prompts and cropping: the paper's templates do not fit a ${s.model.config.seqLen}-position model, so each task keeps its name and answer words and the passage is cut to a window around the gold answer (notebooks/README.md lists every change). Test passages cropped: ${Object.values(s.benchmarks).map((b) => `${esc(b.title)} ${b.data.test.cropped}/${b.data.test.n}, ${(100 * b.data.test.keptShare).toFixed(0)}% of passage characters kept`).join("; ")}.</p>
${table(["setting", "value"], Object.entries(s.settings).map(([k, v]) => [k, settingText(v)]))}
</body></html>
`;
}

/** Writes index.html and results.json into the report folder; returns the summary. */
export async function writePipelineReport(result: PipelineResult): Promise<PipelineSummary> {
  const summary = summarizePipeline(result);
  await writeJsonAtomic(join(result.reportDir, "results.json"), summary);
  await writeFileAtomic(join(result.reportDir, "index.html"), reportHtml(result, summary));
  return summary;
}
