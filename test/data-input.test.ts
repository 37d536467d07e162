import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { readAsqa } from "../src/data/asqa.ts";
import { readHotpotAll } from "../src/data/hotpot.ts";
import { InputError } from "../src/util/errors.ts";
import { repoRoot } from "../src/util/paths.ts";

const fixture = (name: string): string => join(repoRoot, "test", "fixtures", "data", name);

/** Asserts an InputError whose message names the file, the record and (when given) the field. */
async function rejectsNaming(promise: Promise<unknown>, file: string, record: RegExp | undefined, field: RegExp | undefined): Promise<InputError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof InputError, `expected an InputError, got ${String(error)}`);
    assert.ok(error.message.startsWith(file), error.message);
    if (record) assert.match(error.message, record);
    if (field) assert.match(error.message, field);
    return error;
  }
  assert.fail("expected an InputError");
}

test("ASQA JSON Lines and original layouts give the same normalised items", async () => {
  const jsonl = await readAsqa(fixture("asqa_good.jsonl"));
  const original = await readAsqa(fixture("asqa_original.json"));
  assert.equal(jsonl.layout, "hf-jsonl");
  assert.equal(original.layout, "original");
  assert.deepEqual(original.items, jsonl.items.slice(0, 2));
  assert.deepEqual((await readAsqa(fixture("asqa_original.json"), { split: "dev" })).items.map((i) => i.sample_id), ["s3"]);
});

test("a record without qa_pairs names the line and the field; --skip-bad skips and counts it", async () => {
  const file = fixture("asqa_missing_qa_pairs.jsonl");
  await rejectsNaming(readAsqa(file), file, /line 2/, /field qa_pairs/);
  const skipped = await readAsqa(file, { skipBad: true });
  assert.equal(skipped.items.length, 2);
  assert.equal(skipped.skipped.length, 1);
  assert.equal(skipped.skipped[0]!.record, "line 2");
});

test("short_answers that is not a list names the line and the pair's field", async () => {
  const file = fixture("asqa_short_answers_string.jsonl");
  const error = await rejectsNaming(readAsqa(file), file, /line 3/, /field qa_pairs\[0\]\.short_answers/);
  assert.match(error.message, /expected a list/);
});

test("a truncated file is reported at its last line (JSON Lines) or as invalid JSON (original)", async () => {
  const file = fixture("asqa_truncated.jsonl");
  await rejectsNaming(readAsqa(file), file, /line 3/, /truncated/);
  assert.equal((await readAsqa(file, { skipBad: true })).items.length, 2);
  const original = fixture("asqa_original_truncated.json");
  await rejectsNaming(readAsqa(original), original, /line \d+/, /not valid JSON/);
});

test("a non-UTF-8 byte is reported with its line, never decoded into U+FFFD", async () => {
  const file = fixture("asqa_bad_utf8.jsonl");
  const error = await rejectsNaming(readAsqa(file), file, /line 2/, /not valid UTF-8 \(byte 0xff/);
  assert.ok(!error.message.includes("\uFFFD"));
  const skipped = await readAsqa(file, { skipBad: true });
  assert.deepEqual(skipped.items.map((i) => i.sample_id), ["s1", "s3"]);
});

test("an empty or missing file is a clear error", async () => {
  const empty = fixture("empty.jsonl");
  await rejectsNaming(readAsqa(empty), empty, undefined, /file is empty/);
  await rejectsNaming(readHotpotAll(empty), empty, undefined, /file is empty/);
  await rejectsNaming(readAsqa(fixture("nope.json")), fixture("nope.json"), undefined, /no such file/);
});

test("HotpotQA: a truncated array names the record; a record without question names line and field", async () => {
  const truncated = fixture("hotpot_truncated.json");
  await rejectsNaming(readHotpotAll(truncated), truncated, /record 3 \(byte \d+\)/, /truncated/);
  const missing = fixture("hotpot_missing_question.jsonl");
  await rejectsNaming(readHotpotAll(missing), missing, /line 2/, /field question/);
  const skipped: InputError[] = [];
  const samples = await readHotpotAll(missing, { skipBad: true, onSkip: (e) => skipped.push(e) });
  assert.deepEqual(samples.map((s) => s.id), ["h0", "h2"]);
  assert.equal(skipped.length, 1);
});
