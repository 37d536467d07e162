import assert from "node:assert/strict";
import { before, test } from "node:test";
import { loadReaderData, type ReaderData } from "../src/data/reader-data.ts";
import { cropWindow } from "../src/data/synthetic.ts";
import { Rng } from "../src/util/rng.ts";

let data: ReaderData;
before(async () => {
  data = await loadReaderData();
});

test("reader data keeps the held-apart text out of training", () => {
  const testPassages = new Set(data.benchmarkTest.map((r) => r.context));
  assert.ok(data.corpus.every((d) => !testPassages.has(d)));
  const heldParagraphs = new Set(data.qaTest.flatMap((q) => q.context.split("\n")));
  assert.ok(data.corpus.every((d) => !heldParagraphs.has(d)));
  assert.ok(data.qaTrain.every((q) => !heldParagraphs.has(q.context.split("\n")[0]!)));
  assert.ok(data.qaTrain.length > 500 && data.qaTest.length > 200, `${data.qaTrain.length} / ${data.qaTest.length}`);
  assert.ok([...data.qaTrain, ...data.qaTest].every((q) => q.context.includes(q.answer)));
});

test("passage windows keep the answer and their size", () => {
  const rng = new Rng(9);
  for (let i = 0; i < 300; i++) {
    const q = rng.pick(data.qaTrain);
    const context = cropWindow(q.context, q.answer, 300, rng);
    assert.ok(context.includes(q.answer), `answer ${q.answer} cut out`);
    assert.ok(context.length <= 300, `${context.length} chars`);
  }
  assert.equal(cropWindow("short text", "text", 100), "short text");
});
