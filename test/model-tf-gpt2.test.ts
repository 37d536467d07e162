import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend, tf } from "../src/model/backend.ts";
import { loadGpt2, randomGpt2, saveGpt2, TfGpt2, type Gpt2Config } from "../src/model/gpt2.ts";
import { HfTokenizer } from "../src/model/hf-tokenizer.ts";
import { Rng } from "../src/util/rng.ts";

// No small trained GPT-2 checkpoint ships with the project, so the architecture is checked for
// self-consistency on a random one with GPT-2's real tokenizer and vocabulary.
const config: Gpt2Config = { arch: "gpt2", nLayer: 2, nHead: 4, nEmbd: 32, vocabSize: 50257, nPositions: 64, layerNormEps: 1e-5 };
const tokenizer = HfTokenizer.gpt2();
const ids = Int32Array.from(tokenizer.encode("Once upon a time, there was a little girl named Lily."));
const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test("GPT-2: incremental decoding with the KV cache equals the full forward", async () => {
  await initBackend("wasm");
  const model = new TfGpt2(randomGpt2(config, new Rng(1)));
  const n = ids.length;
  const full = model.logits(ids, 1, n);
  const V = config.vocabSize;
  const cache = model.newCache();
  const prefix = 5;
  const first = model.logits(ids.subarray(0, prefix), 1, prefix, cache);
  assert.ok(maxAbsDiff(first, full.subarray(0, prefix * V)) < 1e-5);
  for (let t = prefix; t < n; t++) {
    const step = model.logits(ids.subarray(t, t + 1), 1, 1, cache);
    const diff = maxAbsDiff(step, full.subarray(t * V, (t + 1) * V));
    assert.ok(diff < 1e-4, `position ${t}: ${diff}`);
  }
  assert.equal(cache.length, n);
  TfGpt2.disposeCache(cache);
  // Two sequences in one batch give each one's own logits.
  const other = Int32Array.from(tokenizer.encode(" The dog ran to the park and played all day."));
  const m = Math.min(n, other.length);
  const both = model.logits(Int32Array.from([...ids.subarray(0, m), ...other.subarray(0, m)]), 2, m);
  assert.ok(maxAbsDiff(both.subarray(m * V), model.logits(other.subarray(0, m), 1, m)) < 1e-5);
  const before = tf.memory().numTensors;
  model.logits(ids, 1, n);
  assert.equal(tf.memory().numTensors, before, "no tensor leaks per forward");
  model.dispose();
});

test("GPT-2: save and load round trip in Hugging Face naming; bad files name file and tensor", async () => {
  await initBackend("wasm");
  const data = randomGpt2(config, new Rng(2));
  const dir = mkdtempSync(join(tmpdir(), "ktu-gpt2-"));
  await saveGpt2(dir, data);
  const loaded = loadGpt2(dir);
  assert.deepEqual(loaded.config, data.config);
  const a = new TfGpt2(data);
  const b = new TfGpt2(loaded);
  assert.deepEqual(b.logits(ids, 1, ids.length), a.logits(ids, 1, ids.length));
  a.dispose();
  b.dispose();
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, n_embd: 48 }));
  assert.throws(() => loadGpt2(dir), /model\.safetensors, record h\.0\.ln_1\.weight, field shape: expected \[48\]/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, architectures: ["OPTForCausalLM"] }));
  assert.throws(() => loadGpt2(dir), /config\.json, field architectures: expected GPT2LMHeadModel/);
});
