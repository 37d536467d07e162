import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadLocalSource } from "../src/eval/local-source.ts";
import { checkSurePrompt, loadRTuningItems, mmluPrompt, rtuningAveragePrecision, runRTuning } from "../src/eval/rtuning.ts";
import type { AnswerSource } from "../src/eval/generator.ts";
import { dataPath } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

test("R-Tuning prompts, byte for byte", () => {
  const shot = ["1+1?", "1", "2", "3", "4", "B"];
  const q = ["2+2?", "2", "3", "4", "5", "C"];
  assert.equal(
    mmluPrompt(q, "elementary_mathematics", [shot]),
    "The following are multiple choice questions (with answers) about  elementary mathematics.\n\n1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:B\n\n2+2?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer:",
  );
  assert.equal(checkSurePrompt("Question: x Answer: y"), "Question: x Answer: y. Are you sure you accurately answered the question based on your internal knowledge? I am");
  const mmlu = loadRTuningItems("mmlu");
  assert.equal(mmlu.length, 2439);
  assert.match(mmlu[0]!.prompt, /^The following are multiple choice questions \(with answers\) about  abstract algebra\.\n\n/);
  assert.equal(loadRTuningItems("pararel").length, 5584);
  assert.equal(loadRTuningItems("halueval")[0]!.answer, "Arthur's Magazine");
  assert.throws(() => loadRTuningItems("mmlu", "OOD"), /MMLU_OOD_test\.json.*not shipped/);
});

test("calculate_ap.py: AP of correctness against 0.5 conf + 0.5 sure, ties as one threshold", () => {
  // scores 0.9, 0.7, 0.7, 0.2 with labels 1, 0, 1, 0: AP = 1/2 * 1 + 1/2 * 2/3.
  const ap = rtuningAveragePrecision([[1, 0.9, 0.9], [0, 0.6, 0.8], [1, 0.8, 0.6], [0, 0.2, 0.2]]);
  assert.ok(Math.abs(ap! - (0.5 + 1 / 3)) < 1e-12);
  assert.equal(rtuningAveragePrecision([[0, 0.5, 0.5]]), null);
});

test("MMLU scoring: the letter with the highest first-token score; R-Tuning's option-text check behind seedBugs", async () => {
  // A fake source that always prefers " C" and is always 80% sure.
  const fake: AnswerSource = {
    id: "fake",
    complete: async () => [],
    continuationLogprobs: async (_p, conts) => conts.map((c) => [c === " C" ? -0.1 : c === " sure" ? Math.log(0.8) : c === " unsure" ? Math.log(0.2) : -3]),
  };
  const item = { id: "x", prompt: "p", answer: "C", options: ["C and D", "b", "c", "d"] };
  const fixed = await runRTuning("mmlu", [item], fake);
  assert.equal(fixed.outputs[0]!.output, "C");
  assert.equal(fixed.results[0]![0], 1);
  assert.ok(Math.abs(fixed.results[0]![2] - 0.8) < 1e-12);
  const p = Math.exp(-0.1) / (Math.exp(-0.1) + 3 * Math.exp(-3));
  assert.ok(Math.abs(fixed.results[0]![1] - p) < 1e-12);
  const seed = await runRTuning("mmlu", [{ ...item, options: ["4", "b", "c", "d"] }], fake, { seedBugs: true });
  assert.equal(seed.results[0]![0], 0, "'4' is not in 'C' although C is right");
});

test("ParaRel through the in-process model, and ktu eval ap on the results file", async () => {
  const source = loadLocalSource(dataPath("models", "stories260K", "stories260K.bin"), dataPath("models", "stories260K", "tok512.bin"), { fitContext: true });
  const r = await runRTuning("pararel", loadRTuningItems("pararel"), source, { limit: 3 });
  assert.equal(r.n, 3);
  for (const [correct, conf, sure] of r.results) {
    assert.ok(correct === 0 || correct === 1);
    assert.ok(conf >= 0 && conf <= 1 && sure > 0 && sure < 1);
  }
  const file = join(mkdtempSync(join(tmpdir(), "ktu-eval-ap-")), "results.json");
  writeFileSync(file, JSON.stringify([[1, 0.9, 0.9], [0, 0.6, 0.8], [1, 0.8, 0.6], [0, 0.2, 0.2]]));
  const cli = runKtu(["eval", "ap", "--results", file]);
  assert.equal(cli.status, 0, cli.stderr);
  const out = JSON.parse(cli.stdout.trim().split("\n").at(-1)!);
  assert.ok(Math.abs(out.average_precision - (0.5 + 1 / 3)) < 1e-12);
  assert.equal(out.prevalence, 0.5);
  writeFileSync(file, JSON.stringify([[2, 0.1, 0.1]]));
  const bad = runKtu(["eval", "ap", "--results", file]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /record item 0, field correct: expected 0 or 1/);
});
