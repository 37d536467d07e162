import assert from "node:assert/strict";
import { before, test } from "node:test";
import { loadReaderData, type ReaderData } from "../src/data/reader-data.ts";
import { BpeTokenizer } from "../src/model/bpe.ts";
import { compactQaPrompt } from "../src/pipeline/compact.ts";
import { dataPath } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { answerCandidates, clozeQuestion, clozeTask, lmTask, lookupTask, qaExample, realQaTask, repeatTask, splitDocs, templateIds, templateRepeatTask, type CorpusDoc, type TemplateIds } from "../recipes/reader/tasks.ts";

let data: ReaderData;
let tok: BpeTokenizer;
let t: TemplateIds;
let docs: CorpusDoc[];
before(async () => {
  data = await loadReaderData();
  tok = BpeTokenizer.load(dataPath("models", "reader", "tokenizer.bin"), 4096);
  t = templateIds(tok);
  docs = splitDocs(data.corpus);
});

test("the template's id pieces rebuild the compact QA prompt of any question and context", () => {
  const rng = new Rng(4);
  for (let i = 0; i < 20; i++) {
    const q = Array.from({ length: 3 }, () => rng.pick(t.wordPieces));
    const c = Array.from({ length: 6 }, () => rng.pick(t.wordPieces));
    const real = tok.encode(compactQaPrompt(tok.decode(q).trimStart(), tok.decode(c).trimStart()), { bos: true });
    assert.deepEqual([...t.prefix, ...q, ...t.mid, ...c, ...t.suffix], real);
  }
});

test("repeat scores exactly the copy after its first piece", () => {
  const rng = new Rng(1);
  for (const n of [8, 16]) {
    const e = repeatTask(rng, t, n, 512);
    assert.equal(e.ids.length, 2 * n + 2);
    assert.deepEqual(e.ids.slice(1, n + 1), e.ids.slice(n + 2));
    assert.equal(e.ids[e.lossFrom - 1], e.ids[1]);
    assert.ok(e.ids.slice(1).every((id) => id === t.newline || t.wordPieces.indexOf(id) < 512));
    const tr = templateRepeatTask(rng, t, n, 0);
    assert.deepEqual(tr.ids.slice(tr.lossFrom - 1, tr.lossFrom - 1 + n), tr.ids.slice(t.prefix.length, t.prefix.length + n));
  }
});

test("lookup's one-piece answer is the piece its question points at, and only that one", () => {
  const rng = new Rng(2);
  for (let i = 0; i < 300; i++) {
    const w = rng.pick([8, 16, 64]);
    const reach = rng.pick([undefined, { before: 10, after: 10 }]);
    const e = lookupTask(rng, t, w, 0, reach);
    const prompt = e.ids.slice(0, e.lossFrom);
    assert.deepEqual(e.ids.slice(e.lossFrom), [e.ids[e.lossFrom]!, t.eos]);
    const answer = e.ids[e.lossFrom]!;
    const q = prompt.slice(t.prefix.length, prompt.indexOf(t.qmark));
    const window = prompt.slice(prompt.length - t.suffix.length - w, prompt.length - t.suffix.length);
    assert.equal(new Set(window).size, w, "window pieces are distinct");
    const what = q.indexOf(t.what);
    const beforePieces = what >= 0 ? q.slice(0, what) : q;
    const at = window.indexOf(answer);
    assert.ok(at >= beforePieces.length);
    assert.deepEqual(window.slice(at - beforePieces.length, at), beforePieces);
    if (what >= 0) assert.deepEqual(window.slice(at + 1, at + q.length - what), q.slice(what + 1));
    assert.ok(beforePieces.length <= (reach?.before ?? 3) && (what < 0 || q.length - what - 1 <= (reach?.after ?? 2)));
  }
});

test("cloze questions come from one sentence of the window, whose answer the context holds", () => {
  const rng = new Rng(3);
  let made = 0;
  let entities = 0;
  for (let i = 0; i < 400; i++) {
    const c = clozeTask(rng, docs, 300);
    if (!c) continue;
    made++;
    assert.ok(c.context.includes(c.answer), c.answer);
    assert.ok(c.context.length <= 300);
    assert.ok(c.question.endsWith("?"));
    assert.match(c.question, /\b(who|what|which|when|how many)\b/i);
    if (/^[A-Z0-9]/.test(c.answer)) entities++;
    const e = qaExample(tok, compactQaPrompt, c.question, c.context, c.answer, 320);
    if (e) assert.deepEqual(e.ids.slice(e.lossFrom), [...tok.encodeContinuation(` ${c.answer}`), tok.eosId]);
  }
  assert.ok(made > 350, `${made} of 400 draws made a question`);
  assert.ok(entities / made > 0.6, `${entities} of ${made} answers are entities, dates or numbers`);
  assert.deepEqual(answerCandidates("In 1999 the band moved to New York City with Sarah Knauss.").map((a) => a.text), ["1999", "New York City", "Sarah Knauss"]);
});

test("tasks are functions of their generator: the same seed draws the same examples", () => {
  const draw = (seed: number) => {
    const rng = new Rng(seed);
    return [lookupTask(rng, t, 16, 0), repeatTask(rng, t, 8, 0), clozeTask(rng, docs, 400), realQaTask(rng, data.qaTrain, 600), lmTask(rng, new Int32Array(1000).map((_, i) => i), 64)];
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});

test("a lookup-shaped cloze keeps the sentence and puts the wh-word where the answer was", () => {
  const rng = new Rng(11);
  const sentence = "The longest human lifespan which is undisputed is that of Sarah Knauss of the United States.";
  for (let i = 0; i < 50; i++) {
    const q = clozeQuestion(rng, sentence, { front: 0, drop: 0 })!;
    assert.ok(sentence.includes(q.answer));
    const asked = ["who", "what", "which", "when", "how many"].map((wh) => sentence.replace(/\.$/, "").replace(q.answer, wh) + "?");
    assert.ok(asked.includes(q.question), q.question);
  }
  const varied = Array.from({ length: 200 }, () => clozeQuestion(rng, sentence, { front: 1, drop: 0.5 })!);
  assert.ok(varied.every((q) => /^(Who|What|Which|When|How many) /.test(q.question)));
  assert.ok(varied.some((q) => q.question.split(" ").length < sentence.split(" ").length - 3));
});
