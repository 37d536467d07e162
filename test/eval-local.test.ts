import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runKtu } from "./helpers/cli.ts";
import { loadLocalSource } from "../src/eval/local-source.ts";
import { labelProbability } from "../src/eval/confidence.ts";
import { dataPath } from "../src/util/paths.ts";

const tmp = mkdtempSync(join(tmpdir(), "ktu-eval-local-"));
const model = dataPath("models", "stories260K", "stories260K.bin");
const tokenizer = dataPath("models", "stories260K", "tok512.bin");

// The benchmark is built from the real ASQA rows shipped in data/asqa, as a user would.
const built = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", join(tmp, "bench")]);
const benchmark = join(tmp, "bench", "benchmark.jsonl");

test("the real ASQA benchmark builds", () => {
  assert.equal(built.status, 0, built.stderr);
  assert.ok(existsSync(benchmark));
});

test("in-process source: label probabilities from the decoder's continuation log-probs", async () => {
  const source = loadLocalSource(model, tokenizer, { fitContext: true });
  const [suf, insuf] = await source.continuationLogprobs("Once upon a time, the answer was", ["Sufficient", "Insufficient"]);
  assert.ok(suf!.length >= 1 && insuf!.length >= 1);
  const p = labelProbability(suf!, insuf!);
  assert.ok(p.probability > 0 && p.probability < 1 && p.logLabelMass < 0);
  const long = "word ".repeat(2000);
  await assert.doesNotReject(source.complete([long], { maxNewTokens: 4, temperature: 0 }));
  const strict = loadLocalSource(model, tokenizer);
  await assert.rejects(strict.complete([long], { maxNewTokens: 4, temperature: 0 }), /context is 512 positions/);
  assert.notEqual(source.id, strict.id, "fitting the context is part of the cache identity");
});

test("ktu eval run --model on stories260K writes predictions and scores", () => {
  const out = join(tmp, "run");
  const r = runKtu(["eval", "run", "--benchmark", benchmark, "--model", model, "--out", out, "--limit", "2", "--max-tokens", "8", "--prompt", "normal"]);
  assert.equal(r.status, 0, r.stderr);
  const preds = readFileSync(join(out, "predictions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(preds.length, 2);
  for (const p of preds) assert.deepEqual(Object.keys(p).slice(0, 3), ["id", "pos_prediction", "neg_prediction"]);
  const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(summary.n, 2);
  const scores = JSON.parse(readFileSync(join(out, "scores.json"), "utf8"));
  assert.match(scores.config.source, /^local:.*stories260K\.bin@.*:fit-context$/);
  assert.equal(scores.config.cut_prompts, 4, "every real ASQA prompt is longer than stories260K's 512 positions");
  assert.match(r.stderr, /4 prompt\(s\) were cut from the left/);
  const strict = runKtu(["eval", "run", "--benchmark", benchmark, "--model", model, "--out", join(tmp, "run-strict"), "--limit", "1", "--max-tokens", "8", "--no-fit-context"]);
  assert.equal(strict.status, 1);
  assert.match(strict.stderr, /id 0, field pos_prediction: the prompt has \d+ tokens but the model's context is 512 positions/);
  // The scorer gives the same numbers from the saved file.
  const rescored = runKtu(["eval", "score", "--benchmark", benchmark, "--predictions", join(out, "predictions.jsonl"), "--partial"]);
  assert.equal(rescored.status, 0, rescored.stderr);
  const again = JSON.parse(rescored.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual([again.known_acc, again.unknown_acc, again.overall], [summary.known_acc, summary.unknown_acc, summary.overall]);
});

test("ktu eval calibrate on stories260K writes metrics JSON and the plots (HTML)", () => {
  const out = join(tmp, "cal");
  const r = runKtu(["eval", "calibrate", "--benchmark", benchmark, "--model", model, "--out", out, "--limit", "2", "--fit-context", "--sources", "p_sufficient", "--draws", "100", "--no-png"]);
  assert.equal(r.status, 0, r.stderr);
  const cal = JSON.parse(readFileSync(join(out, "calibration.json"), "utf8"));
  const result = cal.results[0];
  assert.equal(result.source, "p_sufficient");
  assert.equal(result.report.n, 4);
  assert.equal(result.report.base_rate, 0.5);
  assert.equal(result.report.bootstrap.draws, 100);
  assert.equal(result.report.provenance.target, "answerability");
  assert.ok(readFileSync(join(out, "calibration.html"), "utf8").includes("Reliability: p_sufficient"));
  // PNG writing is tested in viz-figures (one browser launch for the suite); here the HTML holds every figure.
  const html = readFileSync(join(out, "calibration.html"), "utf8");
  for (const title of ["Reliability, equal-mass bins: p_sufficient", "Label mass", "Decisions of p_sufficient", "Selective prediction"]) assert.ok(html.includes(title), title);
  const items = JSON.parse(readFileSync(join(out, "confidences.json"), "utf8")).p_sufficient;
  assert.equal(items.length, 4);
  assert.deepEqual(items.map((i: { label: number }) => i.label), [1, 0, 1, 0]);
  assert.ok(items.every((i: { log_label_mass: number; group: string }) => i.log_label_mass < 0 && i.group.startsWith("sample:")));
});

test("ktu eval baseline (sampling, fixed and seed-bug votes) and ktu eval stage1-check on stories260K", () => {
  const sampling = runKtu(["eval", "baseline", "--kind", "sampling", "--benchmark", benchmark, "--model", model, "--out", join(tmp, "bs"), "--limit", "1", "--fit-context", "--max-tokens", "6"]);
  assert.equal(sampling.status, 0, sampling.stderr);
  const row = JSON.parse(readFileSync(join(tmp, "bs", "predictions.jsonl"), "utf8").trim());
  assert.equal(row.pos_samples.length, 3);
  assert.equal(new Set(row.pos_samples).size > 1 || row.pos_samples[0] !== "", true, "samples at T = 0.6 are drawn with distinct seeds");
  assert.equal(row.known_correct, row.known_votes >= 1.5);
  const check = runKtu(["eval", "stage1-check", "--benchmark", benchmark, "--model", model, "--out", join(tmp, "s1"), "--limit", "2", "--fit-context", "--max-tokens", "8"]);
  assert.equal(check.status, 0, check.stderr);
  const s = JSON.parse(check.stdout.trim().split("\n").at(-1)!);
  assert.equal(s.n + s.skipped, 2);
});
