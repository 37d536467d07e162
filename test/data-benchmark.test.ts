import assert from "node:assert/strict";
import { test } from "node:test";
import type { AsqaItem, AsqaQaPair } from "../src/data/asqa.ts";
import { readAsqa } from "../src/data/asqa.ts";
import { buildBenchmark, collapseContexts, orderedPairs } from "../src/data/benchmark.ts";
import { dataPath } from "../src/util/paths.ts";

const pair = (question: string, context: string, answers: string[], wikipage: string | null = "Page"): AsqaQaPair => ({ question, context, short_answers: answers, wikipage });
const item = (id: string, ...pairs: AsqaQaPair[]): AsqaItem => ({ sample_id: id, ambiguous_question: `ambiguous ${id}`, qa_pairs: pairs, wikipages: [] });

test("identical contexts collapse: the last pair wins and keeps the first one's position", () => {
  const it = item("a", pair("q1", "X says one.", ["one"]), pair("q2", "Y says two.", ["two"]), pair("q3", "X says one.", ["one"]));
  const passages = collapseContexts(it);
  assert.deepEqual(passages.map((p) => p.question), ["q3", "q2"]);
  const { uncleaned } = buildBenchmark([it]);
  assert.deepEqual(uncleaned.map((r) => [r.pos_query, r.neg_query]), [["q3", "q2"], ["q2", "q3"]]);
});

test("only real contexts count, and an item needs more than one distinct context", () => {
  const noContext = item("b", pair("q1", "No context provided", ["x"]), pair("q2", "No context provided", ["y"]), pair("q3", "Z.", ["z"]));
  const sameContext = item("c", pair("q1", "Same.", ["same"]), pair("q2", "Same.", ["same"]));
  const r = buildBenchmark([noContext, sameContext]);
  assert.deepEqual(r.counts, { items: 2, itemsUsed: 0, pairsBefore: 0, pairsAfter: 0 });
});

test("ordered permutations in itertools order; ids count every permutation so kept ids skip", () => {
  assert.deepEqual([...orderedPairs([0, 1, 2])], [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]);
  // q2's answer is not in its own passage, so both rows with q2 as the known question are dropped.
  const it = item("d", pair("q1", "One is here.", ["one"]), pair("q2", "Nothing.", ["two"]), pair("q3", "Three is here.", ["three"]));
  const r = buildBenchmark([it, item("e", pair("p1", "Alpha.", ["alpha"]), pair("p2", "Beta.", ["beta"]))]);
  assert.deepEqual(r.uncleaned.map((x) => x.id), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(r.rows.map((x) => x.id), [0, 1, 4, 5, 6, 7]);
  assert.deepEqual(r.counts, { items: 2, itemsUsed: 2, pairsBefore: 8, pairsAfter: 6 });
});

test("the shown context carries the header line, and the header takes part in the search", () => {
  // "Paris" is only in the wikipage title, not in the passage text: the literal rule still keeps it.
  const it = item("f", pair("Capital?", "The city has many museums.", ["PARIS"], "Paris"), pair("Other?", "Something else.", ["else"], "Elsewhere"));
  const r = buildBenchmark([it]);
  assert.equal(r.uncleaned[0]!.context, "This is a passage about Paris:\nThe city has many museums.");
  assert.equal(r.rows[0]!.pos_query, "Capital?");
  assert.equal(r.rows.length, 2);
});

test("a null wikipage prints as None, like a Python f-string", () => {
  const it = item("g", pair("q1", "A a.", ["a"], null), pair("q2", "B b.", ["b"], null));
  assert.equal(buildBenchmark([it]).uncleaned[0]!.context, "This is a passage about None:\nA a.");
});

test("the filter as written: known answers are tested against the OTHER passage, header included", () => {
  // The known answer "Lee" also occurs in the other passage's header: dropped, although q1 is answerable.
  const it = item("h", pair("q1", "Lee wrote it.", ["Lee"], "Book"), pair("q2", "Kim sang it.", ["Kim"], "Lee's song"));
  const r = buildBenchmark([it]);
  assert.deepEqual(r.rows.map((x) => x.pos_query), ["q2"]);
});

test("the paper filter ignores the unknown question's answers; corrected drops rows whose shown passage answers it", () => {
  // q2's answer "1990" is in q1's passage: the unknown question is in fact answerable there.
  const it = item("i", pair("q1", "It opened in 1985 and closed in 1990.", ["1985"]), pair("q2", "It closed in 1990.", ["1990"]));
  const paper = buildBenchmark([it], { filter: "paper" });
  const corrected = buildBenchmark([it], { filter: "corrected" });
  // Row 1 (known q2 on passage 2): "1990" is also in passage 1, so the known-answer check drops it under both filters.
  assert.deepEqual(paper.rows.map((r) => r.id), [0]);
  assert.deepEqual(corrected.rows.map((r) => r.id), []);
  assert.deepEqual(paper.rows[0]!.neg_answer, ["1990"]);
  assert.equal(buildBenchmark([it]).filter, "paper");
});

test("rows keep the paper's columns plus the fields the split and evaluation need", () => {
  const it = item("j", pair("q1", "One.", ["one"], "P1"), pair("q2", "Two.", ["two"], "P2"));
  const row = buildBenchmark([it]).rows[0]!;
  assert.deepEqual(Object.keys(row).slice(0, 5), ["id", "context", "pos_query", "pos_answer", "neg_query"]);
  assert.deepEqual(row.pos_answer, ["one"]);
  assert.equal(row.sample_id, "j");
  assert.equal(row.neg_context, "This is a passage about P2:\nTwo.");
  assert.equal(row.ambiguous_question, "ambiguous j");
});

test("golden: the 400 shipped ASQA dev lines give 137 items used, 454 pairs, 342 (paper) and 289 (corrected) rows", async () => {
  const asqa = await readAsqa(dataPath("asqa", "asqa_dev_first400.jsonl"));
  assert.equal(asqa.layout, "hf-jsonl");
  assert.equal(asqa.items.length, 400);
  const paper = buildBenchmark(asqa.items);
  const corrected = buildBenchmark(asqa.items, { filter: "corrected" });
  assert.deepEqual(paper.counts, { items: 400, itemsUsed: 137, pairsBefore: 454, pairsAfter: 342 });
  assert.deepEqual(corrected.counts, { items: 400, itemsUsed: 137, pairsBefore: 454, pairsAfter: 289 });
  // Corrected is a subset of paper, row for row.
  const paperIds = new Set(paper.rows.map((r) => r.id));
  assert.ok(corrected.rows.every((r) => paperIds.has(r.id)));
  assert.deepEqual(paper.rows.slice(0, 3).map((r) => r.id), [0, 1, 4]);
  assert.equal(paper.rows[0]!.pos_query, "Who is the original artist of sound of silence, the album?");
  for (const r of corrected.rows) assert.ok(!r.neg_answer.some((a) => r.context.toLowerCase().includes(a.toLowerCase())));
});

test("golden: the original ASQA.json layout (TFDS fixture) reads per split", async () => {
  const train = await readAsqa(dataPath("asqa", "tfds_dummy_ASQA.json"));
  assert.equal(train.layout, "original");
  assert.equal(train.split, "train");
  assert.deepEqual(train.items.map((i) => i.sample_id), ["-5742327688291876861", "-3582047784487750233"]);
  assert.deepEqual(buildBenchmark(train.items).counts, { items: 2, itemsUsed: 1, pairsBefore: 2, pairsAfter: 0 });
  const dev = await readAsqa(dataPath("asqa", "tfds_dummy_ASQA.json"), { split: "dev" });
  assert.deepEqual(dev.items.map((i) => i.sample_id), ["-7013890438520559398"]);
  assert.equal(dev.items[0]!.wikipages.length, 2);
  assert.equal(dev.items[0]!.qa_pairs[0]!.wikipage, null);
});
