import assert from "node:assert/strict";
import { test } from "node:test";
import { openModel } from "../src/model/open.ts";
import { dataPath } from "../src/util/paths.ts";
import { IGNORE_INDEX } from "../src/train/dataset.ts";
import { compactCognitionPrompt, compactQaPrompt, cropAround, encodeExample, fitContext, wordOverlap } from "../src/pipeline/compact.ts";
import { clusterBootstrap, firstPassageWords, nonReadingBaselines, scoreOutputs, type ItemOutput } from "../src/pipeline/evaluate.ts";
import { patternCheck, patternStatement, seedMeanIntervals, type ArmSummary, type BenchmarkSummary } from "../src/pipeline/summary.ts";
import { benchmarkTableRows } from "../src/pipeline/report.ts";
import { buildSourceData } from "../src/pipeline/sources.ts";
import type { TestItem } from "../src/pipeline/datasets.ts";
import { PIPELINE_ARMS } from "../src/pipeline/run.ts";

const { tokenizer } = openModel(dataPath("models", "stories260K", "stories260K.bin"));
const passage =
  "This is a passage about Sounds of Silence:\nSounds of Silence is the second studio album by Simon & Garfunkel, released on January 17, 1966. The album's title is a slight modification of the title of the duo's first major hit, \"The Sound of Silence\", which originally was released as \"The Sounds of Silence\". The song had earlier been released in an acoustic version on the album Wednesday Morning, 3 A.M., and without the knowledge of Simon or Garfunkel, electric guitars, bass and drums were overdubbed under the direction of Columbia Records staff producer Tom Wilson on June 15, 1965.";

test("cropAround keeps the header and the anchor, cuts at spaces and marks the cuts", () => {
  const out = cropAround(passage, "Tom Wilson", 80);
  assert.ok(out.startsWith("This is a passage about Sounds of Silence:\n... "));
  assert.ok(out.includes("Tom Wilson"));
  const body = out.slice(out.indexOf("\n") + 1).replace(/^\.\.\. /, "").replace(/ \.\.\.$/, "");
  assert.ok(body.length <= 80, `window of ${body.length} characters`);
  assert.ok(passage.includes(body), "the window is a contiguous piece of the passage");
  assert.equal(cropAround(passage, "Tom Wilson", 10_000), passage);
});

test("fitContext makes every prompt of a row fit, with room for the answer, and keeps the gold answer", () => {
  for (const maxLen of [192, 256, 384]) {
    const q1 = "Who is the original artist of sound of silence, the album?";
    const q2 = "Who produced the electric overdub of the sound of silence?";
    const fit = fitContext(tokenizer, passage, "Simon & Garfunkel", maxLen, [(c) => compactQaPrompt(q1, c), (c) => compactCognitionPrompt(q2, c)], 12);
    for (const prompt of [compactQaPrompt(q1, fit.context), compactCognitionPrompt(q2, fit.context)]) {
      assert.ok(tokenizer.encode(prompt, { bos: true }).length + 13 <= maxLen, `fits ${maxLen}`);
    }
    assert.ok(fit.context.includes("Simon & Garfunkel"), `maxLen ${maxLen}: ${fit.context}`);
    assert.ok(fit.keptChars > 0 && fit.keptChars <= fit.totalChars);
  }
  const whole = fitContext(tokenizer, "This is a passage about X:\nshort text", "short", 256, [(c) => compactQaPrompt("Q?", c)], 4);
  assert.equal(whole.cut, false);
  assert.equal(whole.context, "This is a passage about X:\nshort text");
});

test("encodeExample trains on the answer and EOS only, as continuationLogprobs scores it", () => {
  const prompt = compactCognitionPrompt("Who?", "This is a passage about X:\nsome text");
  const ex = encodeExample(tokenizer, prompt, " Insufficient", 0, 512);
  const scored = [...ex.labels].map((l, i) => [l, i] as const).filter(([l]) => l !== IGNORE_INDEX);
  assert.equal(ex.inputIds.at(-1), tokenizer.eosId);
  assert.equal(scored.at(-1)![0], tokenizer.eosId);
  const answerIds = scored.slice(0, -1).map(([l]) => l);
  assert.equal(tokenizer.decode(answerIds).trim(), "Insufficient");
  // Everything before the answer is masked.
  assert.equal(scored[0]![1], ex.inputIds.length - answerIds.length - 1);
});

test("wordOverlap is the share of the question's content words found in the passage", () => {
  assert.equal(wordOverlap("Who overdubbed Sounds of Silence?", passage), 1);
  assert.equal(wordOverlap("Which zebra painted Mars?", passage), 0);
});

const items = (n: number, f: (i: number) => Partial<ItemOutput>): ItemOutput[] =>
  Array.from({ length: n }, (_, i) => ({ id: String(i), group: `g${i % 10}`, known_answer: "", unknown_answer: "", known_p_sufficient: 0.5, unknown_p_sufficient: 0.5, known_p_answer: 0.5, unknown_p_answer: 0.5, ...f(i) }));
const testItems = (n: number): TestItem[] => Array.from({ length: n }, (_, i) => ({ id: String(i), group: `g${i % 10}`, context: "", knownQuestion: "", unknownQuestion: "", gold: ["Paris"], overlapKnown: 0, overlapUnknown: 0 }));

test("scoreOutputs flags a constant 'Not Provided' model as collapsed and without discrimination", () => {
  const e = scoreOutputs(items(40, () => ({ known_answer: " Not Provided", unknown_answer: " Not Provided" })), testItems(40), { draws: 100 });
  assert.equal(e.known.value, 0);
  assert.equal(e.unknown.value, 100);
  assert.equal(e.overall.value, 0);
  assert.equal(e.diagnostics.majority_output_share, 1);
  assert.equal(e.diagnostics.majority_output, "not");
  assert.equal(e.diagnostics.refusal_share, 1);
  assert.equal(e.diagnostics.collapsed, true);
  assert.equal(e.diagnostics.no_discrimination, true);
  assert.equal(e.diagnostics.classification_acc, 0.5);
});

test("scoreOutputs credits a model that answers known questions and refuses unknown ones", () => {
  const e = scoreOutputs(
    items(40, (i) => ({ known_answer: " Paris", unknown_answer: " Not Provided", known_p_sufficient: 0.8 + (i % 3) * 0.05, unknown_p_sufficient: 0.2, known_p_answer: 0.9, unknown_p_answer: 0.1 })),
    testItems(40),
    { draws: 100 },
  );
  assert.equal(e.known.value, 100);
  assert.equal(e.unknown.value, 100);
  assert.equal(e.diagnostics.collapsed, false);
  assert.equal(e.diagnostics.auroc_p_sufficient.value, 1);
  assert.equal(e.diagnostics.no_discrimination, false);
  assert.equal(e.diagnostics.classification_acc, 1);
  assert.ok(e.known.ci && e.known.ci[0] === 100);
});

test("clusterBootstrap resamples whole groups: a statistic constant within groups keeps group values", () => {
  const rows = Array.from({ length: 30 }, (_, i) => ({ g: `g${i % 3}`, v: i % 3 }));
  const ci = clusterBootstrap(rows, (r) => r.g, (s) => s.reduce((a, r) => a + r.v, 0) / s.length, 500, 1)!;
  assert.ok(ci[0] >= 0 && ci[1] <= 2 && ci[0] < 1 && ci[1] > 1);
  assert.equal(clusterBootstrap([{ g: "a" }], (r) => r.g, () => 1), null);
});

const arm = (id: string, known: number, unknown: number, collapsed = 0): ArmSummary => {
  const spec = PIPELINE_ARMS.find((a) => a.id === id)!;
  const s = (mean: number) => ({ mean, sd: 0, min: mean, max: mean });
  return { id: spec.id, label: spec.label, paper_label: spec.paperLabel, source: "test", seeds: [], known: s(known), unknown: s(unknown), overall: s(0), collapsed_seeds: collapsed, no_discrimination_seeds: 0, mean_ci: { known: null, unknown: null, overall: null } };
};

test("patternCheck recognises the authors' own numbers as the pattern, and not its absence", () => {
  // temp.py: LLaMA2 79.3/58.3, Cognition 52.4/84.4, Cognition & PSQA 79.7/93.0.
  const paper = patternCheck([arm("base", 79.3, 58.3), arm("stage1", 52.4, 84.4), arm("qa", 77.5, 58.3), arm("stage2", 84.8, 59), arm("stage1_qa", 77, 20.9), arm("stage1_stage2", 79.7, 93)]);
  assert.equal(paper.appears, true);
  assert.equal(paper.artifact, false);
  const flat = patternCheck([arm("base", 0, 0), arm("stage1", 0, 100, 1), arm("qa", 0, 0), arm("stage2", 0, 0), arm("stage1_qa", 0, 100), arm("stage1_stage2", 0, 100, 1)]);
  assert.equal(flat.appears, false);
  assert.equal(flat.stage2_known_recovered, false);
  assert.equal(flat.artifact, true);
  assert.match(flat.verdict, /smoke test/);
});

const item = (id: string, group: string, context: string, known: string, unknown: string, gold: string[], overlapKnown: number, overlapUnknown: number): TestItem => ({ id, group, context, knownQuestion: known, unknownQuestion: unknown, gold, overlapKnown, overlapUnknown });

test("the non-reading baselines: the first 5 passage words, and the same with a Not Provided below half word overlap", () => {
  assert.equal(firstPassageWords("This is a passage about X:\nMary went to the bathroom. John left."), "Mary went to the bathroom.");
  assert.equal(firstPassageWords("... cut here and there we go on"), "cut here and there we");
  const test = [
    item("0", "s0", "Mary moved to the bathroom today.", "Where is Mary?", "Where is John?", ["bathroom"], 1, 0),
    item("1", "s1", "Daniel went to the garden and more.", "Where is Daniel?", "Where is Sandra?", ["hallway"], 1, 0),
  ];
  const [fw, ofw] = nonReadingBaselines(test, { draws: 50 });
  assert.equal(fw!.id, "first_words");
  assert.equal(fw!.known.value, 50);
  assert.equal(fw!.unknown.value, 0);
  assert.equal(ofw!.known.value, 50);
  assert.equal(ofw!.unknown.value, 100);
  assert.ok(Math.abs(ofw!.overall.value - 200 / 3) < 1e-9);
});

test("seedMeanIntervals: the cluster bootstrap of the seed-averaged accuracy holds the seed mean", () => {
  const test = Array.from({ length: 20 }, (_, i) => item(String(i), `g${i % 10}`, "c", "q", "u", ["yes"], 0, 0));
  const evals = [0, 1].map((s) => ({ evaluation: { items: test.map((t, i) => ({ id: t.id, known_answer: (i + s) % 2 ? "yes" : "no", unknown_answer: i % 4 === 0 ? "Not Provided" : "maybe" })) } }));
  const ci = seedMeanIntervals(evals, test, 300, 1);
  assert.ok(ci.known && ci.known[0] <= 50 && 50 <= ci.known[1], `${ci.known}`);
  assert.ok(ci.unknown && ci.unknown[0] <= 30 && 30 <= ci.unknown[1], `${ci.unknown}`);
  assert.deepEqual(seedMeanIntervals([], test), { known: null, unknown: null, overall: null });
});

test("a benchmark's table is in the paper figure's order, no-model answers last; its statement names every number's interval", () => {
  const arms = PIPELINE_ARMS.map((a) => ({ ...arm(a.id, 40, 60), seeds: [{ diagnostics: { auroc_p_sufficient: { value: 0.7 } } }] as never, mean_ci: { known: [30, 50] as [number, number], unknown: [50, 70] as [number, number], overall: [40, 55] as [number, number] } }));
  const baselines = [{ id: "first_words" as const, label: "first 5 passage words (no model)", known: { value: 20, ci: [10, 30] as [number, number] }, unknown: { value: 0, ci: null }, overall: { value: 0, ci: null }, lenient: { known: 20, unknown: 0, overall: 0 } }];
  const bench = { source: "babi" as const, title: "bAbI task 1", test_rows: 100, test_clusters: 80, arms, baselines, overlap_reference_auroc: { value: 0.9, ci: null } } as unknown as BenchmarkSummary;
  assert.deepEqual(benchmarkTableRows(bench).map((r) => r[0]), ["base model", "stage 1 only", "stage 1 then stage 2 (US-Tuning)", "QA only", "stage 2 only", "stage 1 then QA", "first 5 passage words (no model)"]);
  assert.deepEqual(benchmarkTableRows(bench)[0]!.slice(2, 5), ["40.0 [30.0, 50.0]", "60.0 [50.0, 70.0]", "0.0 [40.0, 55.0]"]);
  assert.equal(
    patternStatement("bAbI task 1", bench),
    "bAbI task 1 (100 test rows in 80 clusters, 1 seed(s), strict scoring, seed means with 95% cluster-bootstrap intervals): base known 40.0 [30.0, 50.0], unknown 60.0 [50.0, 70.0]; stage 1 known 40.0 [30.0, 50.0], unknown 60.0 [50.0, 70.0]; US-Tuning (stage 1 then 2) known 40.0 [30.0, 50.0], unknown 60.0 [50.0, 70.0]; the first 5 passage words (no model) score known 20.0 [10.0, 30.0].",
  );
});

test("bAbI and SQuAD test rows: capped, spread over clusters, and none of their (passage, question) pairs in the stage sets", async () => {
  const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "ktu-sources-"));
  try {
    for (const source of ["babi", "squad"] as const) {
      const r = await buildSourceData(source, { outDir: join(dir, source), seed: 42, testRows: 40, qaSamples: 64 });
      const rows = (f: string) => readFileSync(r.paths[f]!, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      const test = rows("splitPaperTest");
      assert.equal(test.length, 40, source);
      assert.ok(r.counts.testClusters >= 25, `${source}: ${r.counts.testClusters} clusters`);
      const testPairs = new Set(test.flatMap((t: { context: string; pos_query: string; neg_query: string }) => [`${t.context}\u0000${t.pos_query}`, `${t.context}\u0000${t.neg_query}`]));
      const trainPairs = rows("splitPaperTrain").flatMap((t: { context: string; pos_query: string; neg_query: string }) => [`${t.context}\u0000${t.pos_query}`, `${t.context}\u0000${t.neg_query}`]);
      assert.equal(trainPairs.filter((p: string) => testPairs.has(p)).length, 0, `${source}: a test pair in the stage-1 rows`);
      const samples = rows("samples").map((s: { question: string; context: [string, string[]][] }) => `${s.context[0]![1].join("")}\u0000${s.question}`);
      assert.equal(samples.filter((p: string) => testPairs.has(p)).length, 0, `${source}: a test pair in the stage-2 / QA samples`);
      assert.equal(rows("stage2").length, 64);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
