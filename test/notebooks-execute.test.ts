/**
 * Every CPU notebook executed by nbclient with our kernel, on small parameters (KTU_NOTEBOOK_PARAMS),
 * into a temporary copy: no error outputs, the key numbers present and in range. Notebook 05 is then
 * rendered to HTML by nbconvert and screenshot in Chromium for non-blank plots.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";
import { haveChromium, plotPixels } from "./helpers/plot-pixels.ts";

const PY = "/usr/bin/python3";
const root = mkdtempSync(join(tmpdir(), "ktu-notebooks-"));
const nbDir = join(root, "notebooks");
const env = { ...process.env, JUPYTER_PATH: join(root, "jupyter", "share", "jupyter") };
const small = { maxLen: 192, trainRows: 32, testRows: 8, maxSteps: 2 };
const pipeline = { ...small, out: join(root, "out"), seeds: [1], draws: 100, jobs: 2 };

before(() => {
  mkdirSync(nbDir, { recursive: true });
  const installed = runKtu(["kernel", "install", "--prefix", join(root, "jupyter")]);
  assert.equal(installed.status, 0, installed.stderr);
});
after(() => rmSync(root, { recursive: true, force: true }));

interface Output {
  output_type: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}
interface Notebook {
  cells: { cell_type: string; source: string | string[]; outputs?: Output[] }[];
}

const joined = (v: unknown): string => (Array.isArray(v) ? v.join("") : typeof v === "string" ? v : JSON.stringify(v ?? ""));

/** Runs notebooks/NAME.ipynb (a copy) with the given parameters; returns the executed notebook and its text. */
function execute(name: string, params: Record<string, unknown>): { nb: Notebook; text: string; seconds: number; path: string } {
  const src = join(nbDir, `${name}.ipynb`);
  copyFileSync(join(repoRoot, "notebooks", `${name}.ipynb`), src);
  const out = join(nbDir, `${name}.out.ipynb`);
  const r = spawnSync(PY, [join(repoRoot, "test", "helpers", "run-notebook.py"), src, out, "know-the-unknown", "900"], {
    env: { ...env, KTU_NOTEBOOK_PARAMS: JSON.stringify(params) },
    encoding: "utf8",
    timeout: 1_200_000,
  });
  assert.equal(r.status, 0, `${name} failed:\n${r.stderr.slice(-4000)}`);
  const nb = JSON.parse(readFileSync(out, "utf8")) as Notebook;
  const outputs = nb.cells.flatMap((c) => c.outputs ?? []);
  const errors = outputs.filter((o) => o.output_type === "error");
  assert.deepEqual(errors.map((e) => `${e.ename}: ${e.evalue}`), [], `${name} has error outputs`);
  const text = outputs.map((o) => joined(o.text) + Object.entries(o.data ?? {}).filter(([k]) => k.startsWith("text/")).map(([, v]) => joined(v)).join("\n")).join("\n");
  const seconds = Number(r.stdout.trim().split("\n").at(-1));
  process.stdout.write(`# ${name}: ${seconds.toFixed(1)} s\n`);
  return { nb, text, seconds, path: out };
}

/** The default model, named with its size and origin (src/model/describe.ts): the reader when its weights are there, else stories260K. */
const MODEL_LINE = /model: (reader: 1\.33M-parameter Llama trained from scratch by recipes\/reader, see data\/models\/reader\/MODEL_CARD\.md|stories260K: \d+K-parameter Llama, see data\/models\/stories260K\/PROVENANCE\.md)/;

const numbersAfter = (text: string, label: RegExp): number[] => [...text.matchAll(label)].map((m) => Number(m[1]));

test("01-datasets: the benchmark counts, the split without shared questions, stage 1 and 2", () => {
  const { text } = execute("01-datasets", { maxLen: 192 });
  assert.match(text, /benchmark \(paper filter\)\s+342/);
  assert.match(text, /benchmark \(corrected filter\)\s+289/);
  assert.match(text, /53 of 342 literal rows have the unknown question's answer in the shown passage/);
  assert.match(text, /ambiguous questions on both sides: 0/);
  assert.match(text, /486 stage-1 examples; labels: \{ Sufficient: 243, Insufficient: 243 \}/);
  assert.match(text, /CHECKING:/);
  assert.match(text, /dataset_info\.json/);
});

test("02-stage1: trains with a live loss plot and reports the classifier before and after", () => {
  const { nb, text } = execute("02-stage1-uncertainty-recognition", { ...small, outDir: join(root, "out", "stage1") });
  assert.match(text, MODEL_LINE, "the notebook says what the model is");
  // The cell after the training loop prints the steps done and each step's loss, and saves the adapter.
  assert.match(text, new RegExp(`steps done: ${small.maxSteps} of ${small.maxSteps}`));
  const loss = numbersAfter(text, /step \d+: loss (\d+\.\d+)/g);
  assert.equal(loss.length, small.maxSteps);
  assert.ok(loss.every((l) => l > 0 && l < 20), `losses ${loss}`);
  assert.match(text, /adapter in /);
  const acc = numbersAfter(text, /\|\s*(?:base|stage 1)\s*\|\s*(\d+\.\d)\s*\|/g);
  assert.equal(acc.length >= 2, true, text.slice(0, 2000));
  for (const a of acc) assert.ok(a >= 0 && a <= 100);
  assert.match(text, /No learned discrimination|separates known from unknown/);
  const plotly = nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.["application/vnd.plotly.v1+json"]);
  assert.ok(plotly.length >= 4, `${plotly.length} plotly outputs`);
  allBenchmarks(text, ["base model", "stage 1 only"]);
});

/** The closing section of notebooks 02 to 05: one table per benchmark, its statement with intervals, the no-model answers. */
function allBenchmarks(text: string, arms: string[]): void {
  for (const title of ["ASQA", "bAbI task 1", "SQuAD v1.1"]) assert.match(text, new RegExp(`${title.replace(/\./g, "\\.")} \\(\\d+ test rows in \\d+ clusters, 1 seed\\(s\\), strict scoring`), title);
  for (const arm of arms) assert.ok(text.includes(arm), arm);
  assert.match(text, /first 5 passage words \(no model\)/);
  assert.match(text, /base known \d+\.\d \[\d+\.\d, \d+\.\d\]/, "intervals");
}

test("03-stage2: instruction following and known/unknown accuracy after stage 2", () => {
  const { text } = execute("03-stage2-prompt-sensitive", { ...small, stage1Dir: join(root, "out", "stage1"), outDir: join(root, "out", "stage2"), instructionRows: 4 });
  assert.match(text, MODEL_LINE, "the notebook says what the model is");
  assert.match(text, /stage 1 then stage 2/);
  const rates = numbersAfter(text, /(\d+\.\d)%/g);
  assert.ok(rates.length >= 6 && rates.every((r) => r >= 0 && r <= 100));
  assert.match(text, /Collapse:|answers depend on the question/);
  allBenchmarks(text, ["base model", "stage 1 only", "stage 1 then stage 2 (US-Tuning)"]);
});

test("04-evaluation: the table over every arm with intervals and the verdict", () => {
  const { text } = execute("04-evaluation-and-calibration", pipeline);
  assert.match(text, MODEL_LINE, "the notebook says what the model is");
  for (const arm of ["base model", "stage 1 only", "QA only", "stage 2 only", "stage 1 then QA", "stage 1 then stage 2"]) assert.ok(text.includes(arm), arm);
  assert.match(text, /Verdict\./);
  assert.match(text, /Word-overlap reference/);
  assert.match(text, /\d+\.\d \[\d+\.\d, \d+\.\d\]/, "intervals");
  allBenchmarks(text, ["base model", "stage 1 only", "QA only", "stage 2 only", "stage 1 then QA", "stage 1 then stage 2 (US-Tuning)"]);
});

test("05-paper-figure: the authors' bars labelled as theirs beside ours, and a non-blank HTML rendering", async () => {
  const { nb, text, path } = execute("05-paper-figure", pipeline);
  assert.match(text, MODEL_LINE, "the notebook says what the model is");
  const figures = nb.cells.flatMap((c) => c.outputs ?? []).map((o) => o.data?.["application/vnd.plotly.v1+json"]).filter(Boolean).map((f) => JSON.stringify(f));
  assert.ok(figures.length >= 4);
  assert.ok(figures[0]!.includes("authors (temp.py)") && !figures[0]!.includes("ours:"), "the first figure is the authors' alone");
  assert.ok(figures.some((f) => f.includes("authors (temp.py)") && f.includes("ours:")), "a figure with both sources, each labelled");
  assert.match(text, /Does our run show the paper's pattern\?/);
  assert.match(text, /Llama-2-7b-chat/);
  allBenchmarks(text, []);
  // Our bars on each benchmark after the comparison: the authors' figure, ours in its layout, ours, the comparison, then one per benchmark.
  assert.equal(figures.length, 4 + 3);
  assert.ok(figures.slice(4).every((f) => f.includes("ours:")));
  if (!haveChromium()) return;
  const html = spawnSync(PY, ["-m", "nbconvert", "--to", "html", path, "--output-dir", nbDir, "--output", "05"], { env, encoding: "utf8" });
  assert.equal(html.status, 0, html.stderr);
  const plots = await plotPixels(join(nbDir, "05.html"), { minPlots: 4 });
  assert.ok(plots.length >= 4, `${plots.length} plots`);
  for (const [i, p] of plots.entries()) assert.ok(p.inked > 0.01, `plot ${i} is blank: ${JSON.stringify(p)}`);
  // The authors' bars always draw in colour (ours may all be 0 when the tiny model collapses).
  assert.ok(plots[0]!.coloured > 0.005, `authors' figure: ${JSON.stringify(plots[0])}`);
  assert.ok(plots[3]!.coloured > 0.005, `authors' and ours side by side: ${JSON.stringify(plots[3])}`);
});

test("06-full-size: skipped with a clear message where there is no GPU or LLaMA-Factory", () => {
  const { text } = execute("06-full-size-with-llamafactory", { modelPath: join(root, "no-model") });
  assert.match(text, /Skipped:|Everything is here/);
  assert.match(text, /Llama2_Stage1/);
  // The real-model section: the stage-time estimate (bench/results) and no download unless asked.
  assert.match(text, /stage 1 \(1000 ex\.\) h|no estimate for smollm2-135m/);
  assert.match(text, /skipped: set params\.hubModel|skipped: LLaMA-Factory is not installed/);
});
