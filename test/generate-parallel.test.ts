import assert from "node:assert/strict";
import { test } from "node:test";
import { generate } from "../src/model/generate.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { generateParallel } from "../src/model/parallel.ts";
import { dataPath } from "../src/util/paths.ts";

const files = { model: dataPath("models", "stories260K", "stories260K.bin"), tokenizer: dataPath("models", "stories260K", "tok512.bin") };

test("generateParallel over worker threads returns generate()'s answers in prompt order", async () => {
  const prompts = Array.from({ length: 13 }, (_, i) => ["Once upon a time", "Tom", "Lily saw", "The sun"][i % 4]! + "!".repeat(i % 3));
  const options = { maxNewTokens: 30, temperature: 1, topP: 0.9, seed: 5, stop: ["."] };
  const results = await generateParallel(files, prompts, options, { workers: 2, batch: 3 });
  const model = loadLlama2c(files.model);
  const tok = Llama2cTokenizer.load(files.tokenizer, 512);
  assert.equal(results.length, prompts.length);
  results.forEach((r, i) => assert.deepEqual(r, generate(model, tok, prompts[i]!, options)));
  await assert.rejects(generateParallel(files, ["word ".repeat(600)], {}, { workers: 1 }), /context is 512 positions/);
});
