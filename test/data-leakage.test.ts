import assert from "node:assert/strict";
import { test } from "node:test";
import {
  assertNoLeakage,
  babiBenchmarkSides,
  babiContext,
  buildBenchmark,
  buildCognitionPsqa,
  buildStage1,
  buildStage2,
  buildStageSets,
  DEFAULT_ASQA_FILE,
  DEFAULT_HOTPOT_FILES,
  findLeaks,
  isBabiValidationStory,
  readAsqa,
  readBabiSplit,
  readHotpotAll,
  readSquadSplit,
  splitBenchmark,
  taskCognitionPrompt,
  type BenchmarkRow,
  type HotpotSample,
  type StageSets,
} from "../src/index.ts";
import { qaPrompt } from "../src/model/prompt-format.ts";

/**
 * No held-out (context, question) of bAbI (validation stories, every task), SQuAD (validation
 * articles) or ASQA (the test side of the split) is in the stage-1 / stage-2 training sets built
 * from the train sides.
 */

const pairs = (rows: readonly BenchmarkRow[]) => rows.flatMap((r) => [{ context: r.context, question: r.pos_query }, { context: r.context, question: r.neg_query }]);
const texts = (s: Pick<StageSets, "stage1" | "stage1WithQa" | "stage2" | "qa" | "cognitionPsqa">): string[] =>
  [...new Set([...s.stage1, ...s.stage1WithQa, ...s.stage2.rows, ...s.qa, ...s.cognitionPsqa].map((r) => r.instruction))];

test("assertNoLeakage: a held-out pair inside a training prompt is found, whatever the template; a shared sub-story is not", () => {
  const context = "Mary moved to the bathroom. John went to the hallway.";
  const held = [{ context, question: "Where is Mary?" }];
  assert.throws(() => assertNoLeakage([taskCognitionPrompt(context, "Where is Mary?")], held), /leakage: 1 held-out \(context, question\) pair occurrence\(s\).*"Where is Mary\?"/);
  const compact = { templates: { qa: "Trustworthy QA Task, else Not Provided.\nQUESTION: {question}\nCONTEXT: {context}\nANSWER:", cognition: "", prompt_sensitive: "", checking_target: "" }, labels: { sufficient: "", insufficient: "", refusal: "" } };
  assert.equal(findLeaks([qaPrompt(compact, "Where is Mary?", context)], held).length, 1);
  // Another question on the same context, or the same question on a longer story holding this one: not this item.
  assertNoLeakage([taskCognitionPrompt(context, "Where is John?")], held);
  assertNoLeakage([taskCognitionPrompt(`Daniel went to the office. ${context}`, "Where is Mary?")], held);
  assertNoLeakage([taskCognitionPrompt(`${context} Mary went to the garden.`, "Where is Mary?")], held);
  // by: "context" flags the passage alone; multi-line contexts (ASQA's header) are matched whole.
  const asqa = "This is a passage about X:\nX is a river.";
  assert.equal(findLeaks([taskCognitionPrompt(asqa, "Other?")], [{ context: asqa, question: "Q?" }], { by: "context" }).length, 1);
  assert.equal(findLeaks([taskCognitionPrompt("This is a passage about X:\nX is a river. It is long.", "Q?")], [{ context: asqa, question: "Q?" }]).length, 0);
});

test("bAbI, every task: no validation row's (context, question) is a train-side question or a train row's unknown question", () => {
  for (let task = 1; task <= 20; task++) {
    const sides = babiBenchmarkSides({ task });
    const split = readBabiSplit(task);
    const seen = new Set([...split.train.map((q) => `${babiContext(q)}\u0000${q.question}`), ...pairs(sides.train.rows).map((p) => `${p.context}\u0000${p.question}`)]);
    for (const p of pairs(sides.validation.rows)) assert.ok(!seen.has(`${p.context}\u0000${p.question}`), `task ${task}: ${p.question} on ${p.context}`);
    const storyOf = (r: BenchmarkRow): number => Number(/story(\d+)$/.exec(r.sample_id)![1]);
    assert.ok(sides.validation.rows.every((r) => isBabiValidationStory(storyOf(r))), `task ${task}`);
    assert.ok(sides.train.rows.every((r) => !isBabiValidationStory(storyOf(r))), `task ${task}`);
  }
});

for (const task of [1, 2]) {
  test(`bAbI task ${task}: the rendered stage-1 / stage-2 / ablation texts hold no validation row; the raw repeats by chance are visible to the check`, () => {
    const sets = buildStageSets("babi", { task });
    const train = texts(sets);
    assertNoLeakage(train, pairs(sets.benchmark.validation.rows));
    // The check can see a leak: validation questions whose (context, question) is also a train
    // question occur (the benchmark drops them).
    const raw = readBabiSplit(task).validation.map((q) => ({ context: babiContext(q), question: q.question }));
    assert.ok(findLeaks(train, raw, { max: 1 }).length === 1);
  });
}

test("SQuAD: no validation article's paragraph or (paragraph, question) in the training texts", () => {
  const sets = buildStageSets("squad");
  const train = texts(sets);
  const validation = readSquadSplit().validation;
  const held = validation.flatMap((a) => a.paragraphs.flatMap((p) => p.qas.map((q) => ({ context: p.context, question: q.question }))));
  assertNoLeakage(train, held, { by: "context" });
  const trainQuestions = new Set(sets.benchmark.train.rows.flatMap((r) => [r.pos_query, r.neg_query]));
  assert.deepEqual(held.filter((h) => trainQuestions.has(h.question)), []);
});

test("ASQA: no test-side passage or question in the stage sets built from the train side", async () => {
  const asqa = await readAsqa(DEFAULT_ASQA_FILE);
  const split = splitBenchmark(buildBenchmark(asqa.items, { filter: "paper" }).rows, { seed: 42, testFraction: 0.3 });
  const hotpot: HotpotSample[] = [];
  for (const f of DEFAULT_HOTPOT_FILES) hotpot.push(...(await readHotpotAll(f)));
  const stage2 = buildStage2(hotpot, { seed: 42 });
  const train = texts({ stage1: buildStage1(split.train), stage1WithQa: buildStage1(split.train, { withQa: hotpot }), stage2, qa: [], cognitionPsqa: buildCognitionPsqa(split.train, stage2.rows) });
  assert.ok(split.test.length > 50);
  assertNoLeakage(train, pairs(split.test), { by: "context" });
  const trainQuestions = new Set(split.train.flatMap((r) => [r.pos_query, r.neg_query]));
  assert.deepEqual(split.test.filter((r) => trainQuestions.has(r.pos_query) || trainQuestions.has(r.neg_query)), []);
});
