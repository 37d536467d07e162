import assert from "node:assert/strict";
import { before, test } from "node:test";
import { loadReaderData, type ReaderData } from "../src/data/reader-data.ts";
import { compactQaPrompt } from "../src/pipeline/compact.ts";
import { copyTask, cropWindow, drawTask, memberTask, recallTask, spanTask, wordPools, type WordPools } from "../src/data/synthetic.ts";
import { Rng } from "../src/util/rng.ts";

let data: ReaderData;
let pools: WordPools;
before(async () => {
  data = await loadReaderData();
  pools = wordPools(data.corpus);
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

test("generators are deterministic under a seed and differ across seeds", () => {
  const source = { pools, qa: data.qaTrain, maxContextChars: 600, qaPrompt: compactQaPrompt };
  const draw = (seed: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: 40 }, () => drawTask(rng, { copy: 1, recall: 1, member: 1, span: 1 }, source));
  };
  assert.deepEqual(draw(5), draw(5));
  assert.notDeepEqual(draw(5), draw(6));
  assert.deepEqual(new Set(draw(5).map((e) => e.task.split("-")[0])), new Set(["copy", "recall", "member", "span"]));
});

test("each task's answer is the right one", () => {
  const rng = new Rng(3);
  for (let i = 0; i < 200; i++) {
    const c = copyTask(rng, pools);
    assert.equal(c.prompt.split("\n")[0]!.slice("Copy:".length), c.answer);
    const r = recallTask(rng, pools);
    const key = /QUERY: (\S+)/.exec(r.prompt)![1]!;
    assert.ok(r.prompt.includes(`\n${key}:${r.answer}\n`) || r.prompt.startsWith(`${key}:${r.answer}\n`), r.prompt);
    const m = memberTask(rng, pools);
    const asked = /Is (\S+) listed/.exec(m.prompt)![1]!;
    assert.equal(m.answer, m.prompt.split("\n")[0]!.includes(`${asked} lives`) ? " Yes" : " No");
  }
  const yes = Array.from({ length: 400 }, () => memberTask(rng, pools).answer === " Yes").filter(Boolean).length;
  assert.ok(yes > 160 && yes < 240, `${yes} of 400 member labels are Yes`);
});

test("span tasks crop around the answer and keep it", () => {
  const rng = new Rng(9);
  for (let i = 0; i < 300; i++) {
    const e = spanTask(rng, data.qaTrain, 300, compactQaPrompt);
    const context = /\nCONTEXT: ([\s\S]*)\nANSWER:$/.exec(e.prompt)![1]!;
    assert.ok(context.includes(e.answer.trim()), `answer ${e.answer} cut out`);
    assert.ok(context.length <= 300, `${context.length} chars`);
  }
  assert.equal(cropWindow("short text", "text", 100), "short text");
});
