/**
 * `ktu start --quick` end to end through the real CLI, on all three benchmarks (the default): the report
 * files and their keys, one table per benchmark in the paper figure's shape, resuming
 * (a rerun skips every finished step; a changed evaluation setting redoes only the evaluations), a
 * Chromium screenshot of the report with non-blank plots, and bad options.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";
import { haveChromium, plotPixels } from "./helpers/plot-pixels.ts";

const dir = mkdtempSync(join(tmpdir(), "ktu-start-"));
const args = ["start", "--quick", "--out", dir, "--test-rows", "10"];
let first: ReturnType<typeof runKtu>;
let seconds = 0;

before(() => {
  const t0 = Date.now();
  first = runKtu(args, { timeoutMs: 900_000 });
  seconds = (Date.now() - t0) / 1000;
});
after(() => rmSync(dir, { recursive: true, force: true }));

const results = () => JSON.parse(readFileSync(join(dir, "report", "results.json"), "utf8"));

test("ktu start --quick writes out/report/index.html, results.json, adapters and trainer logs", () => {
  assert.equal(first.status, 0, first.stderr + first.stdout.slice(-2000));
  assert.match(first.stdout, /Report: .*index\.html/);
  assert.match(first.stdout, /benchmarks asqa,babi,squad/);
  // A fresh run reads as one: the engine named (README), no "already done" from the seed workers.
  assert.doesNotMatch(first.stdout, /already done/);
  const r = results();
  for (const key of ["generated", "source", "model", "settings", "data", "engine", "seconds", "step_seconds", "overlap_reference_auroc", "arms", "pattern", "authors_temp_py", "trained"]) assert.ok(key in r, `results.json has ${key}`);
  // The run names its engine on its second line, and results.json records the same one.
  const line = first.stdout.split("\n").find((l) => l.startsWith("engine: "));
  assert.ok(line, "ktu start prints its engine");
  assert.equal(r.engine.line, line);
  assert.match(r.engine.name, /^(native|wasm|tensorflow|tensorflow-gpu|cpu)$/);
  if (process.env.KTU_ENGINE) assert.equal(r.engine.name, process.env.KTU_ENGINE);
  assert.deepEqual(r.arms.map((a: { id: string }) => a.id), ["base", "stage1", "qa", "stage2", "stage1_qa", "stage1_stage2"]);
  for (const arm of r.arms) {
    assert.equal(arm.seeds.length, 1, arm.id);
    const s = arm.seeds[0];
    for (const m of ["known", "unknown", "overall"]) {
      assert.ok(s[m].value >= 0 && s[m].value <= 100, `${arm.id} ${m}`);
      assert.ok(Array.isArray(s[m].ci) && s[m].ci[0] <= s[m].value + 1e-9 && s[m].value <= s[m].ci[1] + 1e-9, `${arm.id} ${m} interval ${s[m].ci}`);
    }
    assert.equal(s.n, 10);
    assert.ok(s.diagnostics.majority_output_share > 0 && s.diagnostics.majority_output_share <= 1);
    assert.ok(s.diagnostics.auroc_p_sufficient.value >= 0 && s.diagnostics.auroc_p_sufficient.value <= 1);
    assert.equal(typeof s.diagnostics.collapsed, "boolean");
  }
  // The old top-level keys are ASQA's; every benchmark has its own section with the same arms, baselines and pattern.
  assert.equal(r.primary_benchmark, "asqa");
  assert.deepEqual(Object.keys(r.benchmarks), ["asqa", "babi", "squad"]);
  assert.deepEqual(r.benchmarks.asqa.arms, r.arms);
  for (const [source, b] of Object.entries(r.benchmarks) as [string, any][]) {
    assert.equal(b.source, source);
    assert.equal(b.test_rows, 10, source);
    assert.deepEqual(b.arms.map((a: { id: string }) => a.id), ["base", "stage1", "qa", "stage2", "stage1_qa", "stage1_stage2"], source);
    for (const a of b.arms) {
      assert.equal(a.seeds.length, 1, `${source} ${a.id}`);
      for (const m of ["known", "unknown", "overall"]) {
        const ci = a.mean_ci[m];
        assert.ok(Array.isArray(ci) && ci[0] <= a[m].mean + 1e-9 && a[m].mean <= ci[1] + 1e-9, `${source} ${a.id} ${m}: ${a[m].mean} in ${ci}`);
      }
    }
    assert.deepEqual(b.baselines.map((x: { id: string }) => x.id), ["first_words", "overlap_first_words"], source);
    for (const x of b.baselines) assert.ok(x.known.value >= 0 && x.known.value <= 100 && Array.isArray(x.known.ci), `${source} ${x.id}`);
    assert.ok(b.overlap_reference_auroc.value >= 0 && b.overlap_reference_auroc.value <= 1);
    assert.equal(b.trained.length, 5, source);
    assert.match(b.statement, /base known \d+\.\d \[\d+\.\d, \d+\.\d\], unknown .*stage 1 known .*US-Tuning \(stage 1 then 2\) known .*first 5 passage words/, source);
    assert.ok(b.pattern.verdict.startsWith(b.title), source);
  }
  assert.equal(r.benchmarks.babi.title, "bAbI task 1");
  assert.equal(typeof r.pattern.appears, "boolean");
  assert.ok(r.pattern.verdict.length > 20);
  assert.equal(r.authors_temp_py.length, 7);
  assert.ok(r.authors_temp_py.every((a: { source: string }) => a.source === "authors (temp.py)"));
  assert.ok(r.source.startsWith("ours"));
  // stage 1 is trained once and shared by the arms built on it: 5 trainings for 5 trained arms.
  assert.equal(r.trained.length, 5);
  for (const t of r.trained) {
    assert.ok(existsSync(join(t.dir, "adapter_model.safetensors")), t.dir);
    assert.ok(readFileSync(join(t.dir, "trainer_log.jsonl"), "utf8").includes('"loss"'), t.dir);
  }
  const html = readFileSync(join(dir, "report", "index.html"), "utf8");
  assert.match(html, /authors \(temp\.py\)/);
  assert.match(html, /The authors' numbers \(not ours\)/);
  assert.ok(html.includes(r.pattern.verdict.replace(/'/g, "&#39;").slice(0, 30)) || html.includes(r.pattern.verdict.slice(0, 30)));
  assert.equal((html.match(/Plotly\.newPlot/g) ?? []).length >= 6, true);
  // Settings as a table, not a JSON dump; the headline names what the table shows.
  assert.doesNotMatch(html, /<pre>/);
  assert.match(html, /<th>setting<\/th><th>value<\/th>/);
  // The report leads with one table per benchmark (base, stage 1, US-Tuning, then the ablations, then the no-model answers) and states each pattern.
  const lead = html.indexOf("Known, unknown and overall accuracy on each benchmark");
  assert.ok(lead > 0 && lead < html.indexOf("Our results on"), "the per-benchmark tables come first");
  for (const title of ["ASQA", "bAbI task 1", "SQuAD v1.1"]) assert.ok(html.includes(`>${title}</h3>`), title);
  for (const b of Object.values(r.benchmarks) as any[]) assert.ok(html.includes(b.statement.replace(/'/g, "&#39;").slice(0, 60)) || html.includes(b.statement.slice(0, 60)), b.source);
  const firstTable = html.slice(html.indexOf('<table class="bench">'), html.indexOf("</table>", html.indexOf('<table class="bench">')));
  const settings = [...firstTable.matchAll(/<tr><td>([^<]+)<\/td>/g)].map((m) => m[1]);
  assert.deepEqual(settings, ["base model", "stage 1 only", "stage 1 then stage 2 (US-Tuning)", "QA only", "stage 2 only", "stage 1 then QA", "first 5 passage words (no model)", "first 5 passage words, Not Provided when word overlap &lt; 0.5 (no model)"]);
  const anyCollapsed = r.arms.some((a: { collapsed_seeds: number }) => a.collapsed_seeds > 0);
  if (r.pattern.artifact) assert.match(html, anyCollapsed ? /<b>Collapse\.<\/b>/ : /<b>No learned discrimination\.<\/b>/);
  process.stdout.write(`# ktu start --quick: ${seconds.toFixed(1)} s\n`);
});

test("a rerun skips every finished step; a changed evaluation setting redoes only the evaluations", () => {
  const before = results();
  const again = runKtu(args, { timeoutMs: 600_000 });
  assert.equal(again.status, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /^> /m, "no step starts again");
  assert.ok((again.stdout.match(/already done/g) ?? []).length >= 3 * 13, again.stdout);
  const after = results();
  assert.deepEqual(after.arms, before.arms);

  const draws = runKtu([...args, "--draws", "50"], { timeoutMs: 600_000 });
  assert.equal(draws.status, 0, draws.stderr);
  const started = draws.stdout.split("\n").filter((l) => l.startsWith("> "));
  assert.ok(started.length >= 6 && started.every((l) => l.endsWith("evaluate")), started.join("\n"));
  assert.ok(started.length >= 3 * 6, started.join("\n"));
  assert.match(draws.stdout, /= asqa seed 1 stage1: train on stage1: already done/);
  assert.match(draws.stdout, /= babi seed 1 stage1: train on stage1: already done/);
});

test("the report renders in Chromium with non-blank plots", { skip: !haveChromium() && "no /usr/bin/chromium" }, async () => {
  const plots = await plotPixels(join(dir, "report", "index.html"), { minPlots: 6 });
  assert.ok(plots.length >= 6, `${plots.length} plots`);
  for (const [i, p] of plots.entries()) assert.ok(p.inked > 0.01, `plot ${i} is blank: ${JSON.stringify(p)}`);
  // Our bars may all be 0 when the tiny model collapses; the authors' bars beside ours and the diagnostics' markers always draw in colour.
  assert.ok(plots[1]!.coloured > 0.005, `paper comparison: ${JSON.stringify(plots[1])}`);
  assert.ok(plots[2]!.coloured > 0.0005, `diagnostics: ${JSON.stringify(plots[2])}`);
});

test("bad options are usage errors naming the option; a missing model names the file", () => {
  const seeds = runKtu(["start", "--seeds", "one,two", "--out", dir]);
  assert.equal(seeds.status, 2);
  assert.match(seeds.stderr, /--seeds must be whole numbers/);
  const len = runKtu(["start", "--max-len", "8", "--out", dir]);
  assert.equal(len.status, 2);
  assert.match(len.stderr, /--max-len must be at least 32/);
  const model = runKtu(["start", "--quick", "--model", join(dir, "nope.bin"), "--out", dir]);
  assert.equal(model.status, 1);
  assert.match(model.stderr, /nope\.bin.*no such model file/);
  const source = runKtu(["start", "--source", "mnist", "--out", dir]);
  assert.equal(source.status, 2);
  assert.match(source.stderr, /--source/);
  const arms = runKtu(["start", "--arms", "base,stage3", "--out", dir]);
  assert.equal(arms.status, 2);
  assert.match(arms.stderr, /--arms takes a list of base, stage1/);
  const task = runKtu(["start", "--babi-task", "21", "--out", dir]);
  assert.equal(task.status, 2);
  assert.match(task.stderr, /--babi-task must be a task number from 1 to 20/);
});

test("a run killed in the middle of a training continues from its checkpoint", async () => {
  const out = mkdtempSync(join(tmpdir(), "ktu-kill-"));
  const small = ["start", "--source", "asqa", "--out", out, "--seeds", "1", "--jobs", "1", "--steps", "6", "--train-rows", "16", "--test-rows", "4", "--max-len", "128", "--draws", "20"];
  try {
    // Checkpoints come every 5 steps here; the line of step 5 is printed after its checkpoint is written.
    const child = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), ...small], { stdio: ["ignore", "pipe", "pipe"] });
    let seen = "";
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`no step 5 within 10 minutes:\n${seen}`)), 600_000);
      child.stdout.on("data", (chunk: Buffer) => {
        seen += chunk.toString();
        if (/stage1: stage1 step 5\/6/.test(seen)) {
          clearTimeout(timer);
          child.kill("SIGKILL");
          done();
        }
      });
      child.on("exit", () => fail(new Error(`ended before step 5:\n${seen}`)));
    });
    const rerun = runKtu(small, { timeoutMs: 600_000 });
    assert.equal(rerun.status, 0, rerun.stderr);
    assert.match(rerun.stdout, /asqa seed 1 stage1: train on stage1: resumed at step 5\/6/);
    assert.match(rerun.stdout, /= asqa base: evaluate: already done/);
    const log = readFileSync(join(out, "report", "runs", "asqa", "seed-1", "stage1", "trainer_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(log.filter((r) => "loss" in r).map((r) => r.current_steps), [1, 2, 3, 4, 5, 6]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
