/**
 * The reader around its weights (issue 14), with a random-init PLACEHOLDER of the reader's exact shape
 * written into a temp folder (scripts/reader-placeholder.ts), never the trained weights: the default
 * model, the prompt format declared beside the weights (prompt.json) as `ktu eval run`, `ktu eval
 * calibrate` and `ktu start` use it, the line that says what the model is, and the acceptance table.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { writeReaderPlaceholder } from "../scripts/reader-placeholder.ts";
import { cropWindow } from "../src/data/synthetic.ts";
import { answerCacheKey } from "../src/eval/cache.ts";
import { readBenchmark } from "../src/eval/io.ts";
import { describeModel } from "../src/model/describe.ts";
import { openModel } from "../src/model/open.ts";
import { checkPromptFormat, readPromptFormat } from "../src/model/prompt-format.ts";
import { ACCEPTANCE_SCHEMA, acceptanceRows, checkAcceptance, readAcceptance } from "../src/pipeline/acceptance.ts";
import { COMPACT_PROMPTS, compactQaPrompt } from "../src/pipeline/compact.ts";
import { defaultModelPath, pipelineDefaults } from "../src/pipeline/run.ts";
import { dataPath } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "ktu-reader-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder like data/models/reader with placeholder weights: reader.bin, tokenizer.bin, prompt.json. */
function readerFolder(name: string, promptJson: string | null = readFileSync(dataPath("models", "reader", "prompt.json"), "utf8")): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeReaderPlaceholder(join(dir, "reader.bin"), 1);
  copyFileSync(dataPath("models", "reader", "tokenizer.bin"), join(dir, "tokenizer.bin"));
  if (promptJson !== null) writeFileSync(join(dir, "prompt.json"), promptJson);
  return dir;
}

const reader = readerFolder("models/reader");
const readerBin = join(reader, "reader.bin");
// A benchmark file as `ktu data` writes it, from the real ASQA rows.
const built = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", join(tmp, "bench")]);
const benchmark = join(tmp, "bench", "benchmark.jsonl");

const acceptanceSample = {
  schema: ACCEPTANCE_SCHEMA,
  model: "reader.bin",
  test: { rows: 94, clusters: 27, description: "corrected filter, split seed 42" },
  metric: "strict",
  word_overlap_auroc: { value: 0.764, ci: [0.685, 0.83] },
  seeds: [1, 2].map((seed) => ({
    seed,
    base: { known: { value: 0.1, ci: [0.05, 0.2] }, unknown: { value: 0.2, ci: [0.1, 0.3] } },
    stage1: { known: { value: 0.05, ci: [0, 0.1] }, unknown: { value: 0.8, ci: [0.7, 0.9] }, auroc: { value: 0.71, ci: [0.62, 0.8] } },
    stage1_stage2: { known: { value: 0.3, ci: [0.2, 0.4] }, unknown: { value: 0.7, ci: [0.6, 0.8] } },
  })),
};

test("defaultModelPath picks models/reader/reader.bin when present (with the tokenizer beside it), stories260K otherwise", () => {
  const models = join(tmp, "default-models");
  mkdirSync(join(models, "reader"), { recursive: true });
  // Only the tokenizer shipped: not a model.
  copyFileSync(dataPath("models", "reader", "tokenizer.bin"), join(models, "reader", "tokenizer.bin"));
  assert.equal(defaultModelPath(models), join(models, "stories260K", "stories260K.bin"));
  writeReaderPlaceholder(join(models, "reader", "reader.bin"));
  assert.equal(defaultModelPath(models), join(models, "reader", "reader.bin"));
  const opened = openModel(defaultModelPath(models));
  assert.equal(opened.tokenizerPath, join(models, "reader", "tokenizer.bin"));
  assert.equal(opened.model.config.seqLen, 320);
  assert.equal(opened.tokenizer.vocabSize, 4096);
  // The real data folder: whichever is there, a .bin that is not the tokenizer.
  assert.match(defaultModelPath(), /(reader\/reader|stories260K\/stories260K)\.bin$/);
});

test("the shipped prompt.json declares the compact prompts, and the main job's defaults follow it", () => {
  const declared = readPromptFormat(dataPath("models", "reader", "reader.bin"))!;
  assert.ok(declared, "data/models/reader/prompt.json is read for reader.bin");
  assert.deepEqual(declared.templates, COMPACT_PROMPTS.templates);
  assert.deepEqual(declared.labels, COMPACT_PROMPTS.labels);
  assert.deepEqual([declared.context_chars, declared.max_len, declared.stop], [600, 320, ["\n"]]);
  assert.equal(compactQaPrompt("Q?", "C."), "Trustworthy QA Task, else Not Provided.\nQUESTION: Q?\nCONTEXT: C.\nANSWER:");
  // A question holding a placeholder stays as written (one pass).
  assert.equal(compactQaPrompt("{context}?", "C."), "Trustworthy QA Task, else Not Provided.\nQUESTION: {context}?\nCONTEXT: C.\nANSWER:");
  const d = pipelineDefaults(false, readerBin);
  assert.deepEqual([d.maxLen, d.maxNewTokens, d.contextChars], [320, declared.max_new_tokens, 600]);
  const q = pipelineDefaults(true, readerBin);
  assert.equal(q.maxLen, 192);
  const stories = pipelineDefaults(false, dataPath("models", "stories260K", "stories260K.bin"));
  assert.deepEqual([stories.maxLen, stories.maxNewTokens, stories.contextChars], [256, 12, undefined]);
});

test("readPromptFormat: none without prompt.json; a bad one is an error naming the file and the field", () => {
  assert.equal(readPromptFormat(dataPath("models", "stories260K", "stories260K.bin")), undefined);
  assert.equal(readPromptFormat("hf:org/name"), undefined);
  const good = JSON.parse(readFileSync(dataPath("models", "reader", "prompt.json"), "utf8"));
  assert.throws(() => checkPromptFormat({ ...good, templates: { ...good.templates, qa: "QUESTION: {question}" } }, "x/prompt.json"), /x\/prompt\.json, field templates\.qa: has no \{context\} placeholder/);
  assert.throws(() => checkPromptFormat({ ...good, max_len: "320" }, "x/prompt.json"), /field max_len: expected a whole number > 0/);
  assert.throws(() => checkPromptFormat({ ...good, stop: "\n" }, "x/prompt.json"), /field stop: expected a list/);
  const broken = readerFolder("broken", "{ not json");
  assert.throws(() => readPromptFormat(join(broken, "reader.bin")), /broken\/prompt\.json: not JSON/);
});

test("describeModel says what the model is: name, size, origin and card", () => {
  const config = openModel(dataPath("models", "stories260K", "stories260K.bin")).model.config;
  assert.match(describeModel(dataPath("models", "stories260K", "stories260K.bin"), config).line, /^stories260K: \d+K-parameter Llama, see data\/models\/stories260K\/PROVENANCE\.md$/);
  const r = describeModel(readerBin, openModel(readerBin).model.config);
  assert.equal(r.params, 1_328_256);
  assert.match(r.line, /^reader: 1\.33M-parameter Llama trained from scratch by recipes\/reader, see .*models\/reader\/MODEL_CARD\.md$/);
});

test("ktu eval run --model DIR/reader.bin asks with the prompt.json beside it; the last stdout line is the score JSON", () => {
  assert.equal(built.status, 0, built.stderr);
  const out = join(tmp, "eval");
  const r = runKtu(["eval", "run", "--benchmark", benchmark, "--model", readerBin, "--out", out, "--limit", "2"], { timeoutMs: 600_000 });
  assert.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(last.n, 2);
  for (const k of ["known_acc", "unknown_acc", "overall"]) assert.equal(typeof last[k], "number", k);
  const scores = JSON.parse(readFileSync(join(out, "scores.json"), "utf8"));
  assert.match(scores.config.prompt, /^ktu-compact-v1 \(declared in .*models\/reader\/prompt\.json\)$/);
  assert.deepEqual(scores.config.decode, { maxNewTokens: 24, temperature: 0, stop: ["\n"] });
  assert.equal(scores.config.cut_prompts, undefined, "every declared prompt fits the 320 positions");
  // The prompts actually sent: the compact QA template on the 600-character window around the known answer.
  const cache = new Set(readFileSync(join(out, "answers.cache.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).key));
  for (const row of readBenchmark(benchmark).slice(0, 2)) {
    const gold = (row.pos_answer as string[]).find((a) => row.context.includes(a))!;
    const window = cropWindow(row.context, gold, 600);
    assert.ok(window.length <= 600 && window.includes(gold) && row.context.length > 600, `row ${row.id} is cropped around its answer`);
    for (const q of [row.pos_query, row.neg_query]) {
      const prompt = `Trustworthy QA Task, else Not Provided.\nQUESTION: ${q}\nCONTEXT: ${window}\nANSWER:`;
      assert.ok(cache.has(answerCacheKey({ model: scores.config.source, kind: "answer", prompt, settings: scores.config.decode })), `row ${row.id}: ${JSON.stringify(q)} asked with the declared prompt`);
    }
  }
  // --prompt still overrides; --task-assignment goes with the paper's prompts only.
  const named = runKtu(["eval", "run", "--benchmark", benchmark, "--model", readerBin, "--out", join(tmp, "eval-normal"), "--limit", "1", "--prompt", "normal", "--max-tokens", "2"], { timeoutMs: 600_000 });
  assert.equal(named.status, 0, named.stderr);
  assert.equal(JSON.parse(readFileSync(join(tmp, "eval-normal", "scores.json"), "utf8")).config.prompt, "normal");
  const ta = runKtu(["eval", "run", "--benchmark", benchmark, "--model", readerBin, "--out", join(tmp, "eval-ta"), "--task-assignment"]);
  assert.equal(ta.status, 2);
  assert.match(ta.stderr, /--task-assignment goes with the paper's prompt versions.*prompt\.json declares the model's own format \(ktu-compact-v1\)/);
});

test("ktu eval run errors clearly on bad input: a bad benchmark row, a missing file, a bad prompt.json", () => {
  const bad = join(tmp, "bad.jsonl");
  writeFileSync(bad, JSON.stringify({ id: 1, context: "c", pos_query: "q" }) + "\n");
  const rows = runKtu(["eval", "run", "--benchmark", bad, "--model", readerBin, "--out", join(tmp, "eval-bad")]);
  assert.equal(rows.status, 1);
  assert.match(rows.stderr, /bad\.jsonl, record id 1 \(line 1\), field (pos_answer|neg_query): missing/);
  const missing = runKtu(["eval", "run", "--benchmark", join(tmp, "nope.jsonl"), "--model", readerBin, "--out", join(tmp, "eval-missing")]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope\.jsonl/);
  const broken = readerFolder("broken-field", JSON.stringify({ ...JSON.parse(readFileSync(dataPath("models", "reader", "prompt.json"), "utf8")), context_chars: 0 }));
  const r = runKtu(["eval", "run", "--benchmark", benchmark, "--model", join(broken, "reader.bin"), "--out", join(tmp, "eval-broken")]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /broken-field\/prompt\.json, field context_chars: expected a whole number > 0, got 0/);
});

test("ktu eval calibrate uses the declared cognition and QA prompts", () => {
  const out = join(tmp, "calibrate");
  const r = runKtu(["eval", "calibrate", "--benchmark", benchmark, "--model", readerBin, "--out", out, "--limit", "2", "--sources", "p_sufficient,p_answer", "--draws", "20", "--no-png"], { timeoutMs: 600_000 });
  assert.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(last.p_sufficient.n, 4);
  const cal = JSON.parse(readFileSync(join(out, "calibration.json"), "utf8"));
  assert.match(cal.prompt, /^ktu-compact-v1 \(declared in /);
});

test("acceptance.json: checked against its schema, shown as rows with intervals", () => {
  const a = checkAcceptance(acceptanceSample, "a.json");
  const rows = acceptanceRows(a);
  assert.equal(rows.length, 2 * 3 + 1);
  assert.deepEqual(rows[1], ["1", "stage 1", "5.0 [0.0, 10.0]", "80.0 [70.0, 90.0]", "0.710 [0.620, 0.800]"]);
  assert.deepEqual(rows.at(-1), ["–", "word overlap (no model)", "–", "–", "0.764 [0.685, 0.830]"]);
  assert.throws(() => checkAcceptance({ ...acceptanceSample, schema: "v0" }, "a.json"), /a\.json, field schema: expected "ktu-reader-acceptance\/1"/);
  const noCi = structuredClone(acceptanceSample) as { seeds: { stage1: { auroc: { ci: number[] } } }[] };
  noCi.seeds[0]!.stage1.auroc.ci = [0.8, 0.9];
  assert.throws(() => checkAcceptance(noCi, "a.json"), /field seeds\[0\]\.stage1\.auroc\.ci: the interval \[0\.8, 0\.9\] does not hold the value 0\.71/);
  assert.equal(readAcceptance(dataPath("models", "stories260K", "stories260K.bin")), undefined);
});

test("ktu start on the reader's shape: the model line, the declared prompts and the acceptance table in the report", () => {
  const dir = readerFolder("start-reader");
  writeFileSync(join(dir, "acceptance.json"), JSON.stringify(acceptanceSample));
  const out = join(tmp, "start");
  const args = ["start", "--source", "asqa", "--model", join(dir, "reader.bin"), "--out", out, "--seeds", "1", "--jobs", "1", "--steps", "1", "--train-rows", "16", "--test-rows", "2", "--draws", "20", "--max-len", "160"];
  const r = runKtu(args, { timeoutMs: 600_000 });
  assert.equal(r.status, 0, r.stderr + r.stdout.slice(-2000));
  const lines = r.stdout.split("\n");
  assert.match(lines[1]!, /^engine: /);
  assert.match(lines[2]!, /^model: reader: 1\.33M-parameter Llama trained from scratch by recipes\/reader, see .*MODEL_CARD\.md; prompts: ktu-compact-v1 \(.*prompt\.json\)$/);
  const results = JSON.parse(readFileSync(join(out, "report", "results.json"), "utf8"));
  assert.equal(results.model.description.name, "reader");
  assert.equal(results.prompt.format, "ktu-compact-v1");
  assert.equal(results.prompt.contextChars, 600);
  assert.equal(results.acceptance.acceptance.seeds.length, 2);
  assert.ok(results.data.sets.qa.preview[0].prompt.startsWith("Trustworthy QA Task, else Not Provided.\nQUESTION: "));
  const html = readFileSync(join(out, "report", "index.html"), "utf8");
  assert.match(html, /<b>Model:<\/b> reader: 1\.33M-parameter Llama trained from scratch by recipes\/reader/);
  assert.match(html, /<h2>Acceptance of the reader<\/h2>/);
  assert.match(html, /0\.710 \[0\.620, 0\.800\]/);
  // A bad acceptance.json stops the run before any work, naming the file and the field.
  writeFileSync(join(dir, "acceptance.json"), JSON.stringify({ ...acceptanceSample, seeds: [] }));
  const bad = runKtu(args, { timeoutMs: 600_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /start-reader\/acceptance\.json, field seeds: expected a non-empty list/);
});
