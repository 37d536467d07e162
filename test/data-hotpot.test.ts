import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { hotpotContext, readHotpot, readHotpotAll, type HotpotSample } from "../src/data/hotpot.ts";
import { splitJsonArray } from "../src/data/json-stream.ts";
import { InputError } from "../src/util/errors.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";

const fixture = (name: string): string => join(repoRoot, "test", "fixtures", "data", name);

async function* chunked(bytes: Uint8Array, sizes: () => number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; ) {
    const n = Math.max(1, sizes());
    yield bytes.subarray(i, i + n);
    i += n;
  }
}

async function records(bytes: Uint8Array, sizes: () => number): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const r of splitJsonArray(chunked(bytes, sizes), "mem.json")) out.push(JSON.parse(r.text));
  return out;
}

const core = (s: HotpotSample) => ({ id: s.id, question: s.question, answer: s.answer, context: s.context, supporting_facts: s.supporting_facts });

test("both HotpotQA layouts normalise to the same samples; the context string is the seed's join", async () => {
  const original = await readHotpotAll(fixture("hotpot_small.json"));
  const hf = await readHotpotAll(fixture("hotpot_small_hf.jsonl"));
  assert.deepEqual(hf.map(core), original.map(core));
  assert.equal(hotpotContext(original[0]!), 'Sentence {a} 0. Second \\" [x].\nOther.');
  assert.equal(original[0]!.question, 'Which [race] "0"?');
});

test("golden: the shipped HotpotQA files stream to the same records as a whole-file parse", async () => {
  const file = dataPath("hotpotqa", "hipporag_hotpot_train_100.json");
  const whole = JSON.parse(readFileSync(file, "utf8")) as { _id: string; context: [string, string[]][] }[];
  const streamed = await readHotpotAll(file, { chunkSize: 997 });
  assert.equal(streamed.length, 100);
  assert.deepEqual(streamed.map((s) => s.id), whole.map((w) => w._id));
  assert.deepEqual(streamed.map(hotpotContext), whole.map((w) => w.context.map(([, s]) => s.join("")).join("\n")));
  const train = await readHotpotAll(dataPath("hotpotqa", "rpt_hf_distractor_validation_train.jsonl"));
  const dev = await readHotpotAll(dataPath("hotpotqa", "rpt_hf_distractor_validation_dev.jsonl"));
  assert.deepEqual([train.length, dev.length], [300, 300]);
  assert.equal(new Set([...train, ...dev].map((s) => s.id)).size, 600);
  assert.ok(train.every((s) => s.supporting_facts.every(([t]) => s.context.some(([c]) => c === t))));
  assert.deepEqual((await readHotpotAll(file, { limit: 5 })).map((s) => s.id), whole.slice(0, 5).map((w) => w._id));
});

test("the splitter finds record boundaries that fall mid-chunk and inside strings with escapes and brackets", async () => {
  const tricky = [
    { a: 'quote " inside', b: "backslash \\", c: "both \\\" and [ ] { }", d: [[1, [2]], { e: "}" }] },
    { u: "été 北京 🙂", brackets: "]]]}}}", empty: "" },
    { s: "\\\\\\\"", n: null, t: true, nested: { deeper: { deepest: ["[", "{", "\\"] } } },
  ];
  const text = " \n[\n" + tricky.map((t) => JSON.stringify(t)).join(" ,\n ") + "\n]\n";
  const bytes = new TextEncoder().encode(text);
  for (const size of [1, 2, 3, 5, 7, 64]) assert.deepEqual(await records(bytes, () => size), tricky, `chunk size ${size}`);
  const rng = new Rng(7);
  const real = readFileSync(dataPath("hotpotqa", "hipporag_hotpot_train_100.json"));
  const expected = JSON.parse(real.toString("utf8")) as unknown[];
  assert.deepEqual(await records(real, () => rng.int(1, 5000)), expected);
});

test("the splitter reports what is wrong with a malformed array and where", async () => {
  const cases: [string, RegExp][] = [
    ["[1, 2]", /record 1 is not a JSON object/],
    ["[{} {}]", /missing ',' before record 2/],
    ["[{}] x", /after the closing/],
    ['[{"a": 1},', /before the closing '\]'/],
    ['[{"a": "}', /record 1 .*truncated/],
    ["{}", /expected a JSON array/],
    ["[,{}]", /unexpected ','/],
    ["   ", /file is empty/],
  ];
  for (const [text, message] of cases) {
    await assert.rejects(records(new TextEncoder().encode(text), () => 3), (error: unknown) => error instanceof InputError && message.test(error.message), text);
  }
  const badUtf8 = Uint8Array.from([...new TextEncoder().encode('[{"a": "x'), 0xc3, 0x28, ...new TextEncoder().encode('"}]')]);
  await assert.rejects(records(badUtf8, () => 4), /not valid UTF-8/);
});

test("readHotpot streams: taking a few samples does not read the whole file", async () => {
  let chunks = 0;
  const bytes = readFileSync(dataPath("hotpotqa", "hipporag_hotpot_train_100.json"));
  async function* counting(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.length; i += 4096) {
      chunks++;
      yield bytes.subarray(i, i + 4096);
    }
  }
  const got: string[] = [];
  for await (const s of readHotpot("mem.json", { limit: 2 }, counting())) got.push(s.id);
  assert.equal(got.length, 2);
  assert.ok(chunks < bytes.length / 4096 / 4, `read ${chunks} chunks`);
});
