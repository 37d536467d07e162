import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadReaderData, type ReaderData } from "../src/data/reader-data.ts";
import { BpeTokenizer, charsPerToken, saveBpe, serializeBpe, trainBpe } from "../src/model/bpe.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { dataPath } from "../src/util/paths.ts";

let data: ReaderData;
let dir: string;
before(async () => {
  data = await loadReaderData();
  dir = mkdtempSync(join(tmpdir(), "ktu-reader-bpe-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("the shipped reader tokenizer reaches about 3 characters per token on the held-apart ASQA passages", () => {
  const tok = BpeTokenizer.load(dataPath("models", "reader", "tokenizer.bin"), 4096);
  const passages = data.benchmarkTest.map((r) => r.context);
  const cpt = charsPerToken(tok, passages);
  assert.ok(cpt > 3.0, `chars/token ${cpt}`);
  // The stories260K tokenizer, for scale: 1.6 characters per token on the same passages.
  assert.ok(cpt > 1.5 * charsPerToken(Llama2cTokenizer.load(dataPath("models", "stories260K", "tok512.bin")), passages));
});

test("training is deterministic, and the file round-trips through the llama2.c loader", () => {
  const docs = data.corpus.slice(0, 800);
  const a = trainBpe(docs, { vocabSize: 700 });
  const b = trainBpe(docs, { vocabSize: 700 });
  assert.deepEqual(serializeBpe(a), serializeBpe(b));
  assert.equal(a.pieces.length, 700);
  saveBpe(join(dir, "tok.bin"), a);
  assert.deepEqual(new Uint8Array(readFileSync(join(dir, "tok.bin"))), serializeBpe(a));
  const loaded = BpeTokenizer.load(join(dir, "tok.bin"), 700);
  const text = data.benchmarkTest[0]!.context;
  assert.deepEqual(loaded.encode(text), BpeTokenizer.fromVocab(a).encode(text));
});

test("chunked encoding equals run.c's algorithm, and decode inverts encode (byte fallback included)", () => {
  const tok = BpeTokenizer.load(dataPath("models", "reader", "tokenizer.bin"), 4096);
  const texts = [
    ...data.benchmarkTest.slice(0, 40).map((r) => r.context),
    ...data.qaTest.slice(0, 40).map((q) => `${q.question}\n${q.context}`),
    "Партия социалистов-революционеров (ПСР) 1917 — «quotes» \t tabs  and  double spaces\n\n",
    " leading space",
    "",
  ];
  for (const t of texts) {
    const ids = tok.encode(t, { bos: true, eos: true });
    assert.deepEqual(ids, tok.reference.encode(t, { bos: true, eos: true }), `encode of ${JSON.stringify(t.slice(0, 40))}`);
    assert.equal(tok.decode(ids), t);
  }
  assert.deepEqual(tok.encodeContinuation(" Paris"), tok.encode(" Paris", { bos: false }).slice(1));
});
