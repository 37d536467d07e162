/**
 * Garbage files a user may get from elsewhere: each gives an InputError naming the file (and the field),
 * never a raw TypeError. Random headers and configs (seeded) stand in for a property-based search.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadHfModel, readHfConfig } from "../src/model/hf.ts";
import { parseSafetensors } from "../src/model/safetensors.ts";
import { loadCheckpoint } from "../src/train/checkpoint.ts";
import { InputError } from "../src/util/errors.ts";
import { Rng } from "../src/util/rng.ts";

const root = mkdtempSync(join(tmpdir(), "ktu-loaders-"));
const good = { architectures: ["LlamaForCausalLM"], hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 10 };

function folder(name: string, config: unknown, extra: Record<string, string | Uint8Array> = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), typeof config === "string" ? config : JSON.stringify(config));
  for (const [file, content] of Object.entries(extra)) writeFileSync(join(dir, file), content);
  return dir;
}

const inputError = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof InputError, `expected an InputError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
  assert.match(e.message, pattern);
  return true;
};

function safetensors(header: unknown, data = 0): Uint8Array {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + data);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

test("config.json of null, an array, or with heads that do not divide the width, or absurd sizes: InputError naming file and field", () => {
  for (const [name, config, pattern] of [
    ["null", "null", /config\.json: expected a JSON object, got null/],
    ["array", "[1]", /config\.json: expected a JSON object/],
    ["heads", { ...good, num_attention_heads: 3 }, /config\.json, field num_attention_heads: 3 does not divide hidden_size 8/],
    ["kv", { ...good, num_attention_heads: 4, num_key_value_heads: 3 }, /field num_key_value_heads: 3 does not divide num_attention_heads 4/],
    ["layers", { ...good, num_hidden_layers: 1e9 }, /field num_hidden_layers: 1000000000 is more than 1024/],
    ["context", { ...good, max_position_embeddings: 2 ** 40 }, /field max_position_embeddings: \d+ is more than/],
    ["odd-head", { ...good, hidden_size: 6, num_attention_heads: 2 }, /field num_attention_heads: the head size 3 .* must be even/],
  ] as const) {
    assert.throws(() => readHfConfig(folder(`cfg-${name}`, config)), inputError(pattern), name);
  }
});

test("a safetensors header of null, with null entries or null metadata fields, or absurd shapes: InputError naming the tensor and field", () => {
  const path = "/x/model.safetensors";
  for (const [header, pattern] of [
    ["null", /model\.safetensors, field header: expected a JSON object of tensors, got null/],
    [{ w: null }, /model\.safetensors, record w, field entry: expected \{dtype, shape, data_offsets\}, got null/],
    [{ w: 5 }, /record w, field entry/],
    [{ __metadata__: 7 }, /field __metadata__/],
    [{ w: { dtype: "F32", shape: null, data_offsets: [0, 4] } }, /record w, field shape/],
    [{ w: { dtype: "F32", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, /record w, field shape/],
    [{ w: { dtype: null, shape: [1], data_offsets: [0, 4] } }, /record w, field dtype/],
  ] as const) {
    assert.throws(() => parseSafetensors(safetensors(header), path), inputError(pattern), JSON.stringify(header));
  }
  // An index whose weight_map is null or names a shard outside the folder.
  const cfg = { ...good };
  assert.throws(() => loadHfModel(folder("index-null", cfg, { "model.safetensors.index.json": '{"weight_map":null}' })), inputError(/model\.safetensors\.index\.json, field weight_map: must be an object/));
  assert.throws(() => loadHfModel(folder("index-escape", cfg, { "model.safetensors.index.json": JSON.stringify({ weight_map: { "model.embed_tokens.weight": "../../etc/passwd" } }) })), inputError(/record model\.embed_tokens\.weight, field weight_map: the shard "\.\.\/\.\.\/etc\/passwd" is not a relative file name/));
});

test("trainer_state.json of null is an InputError naming it", () => {
  const dir = join(root, "ckpt-null");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "trainer_state.json"), "null");
  assert.throws(() => loadCheckpoint(dir), inputError(/trainer_state\.json: expected a JSON object, got null/));
});

test("random headers and configs (seeded): every failure is an InputError, never a TypeError or RangeError", () => {
  const rng = new Rng(21);
  const values = [null, 0, -1, 1, 2, 3, 2.5, 1e12, "x", "F32", [], [1], [2, 2], [0, 4], [0, 16], {}, true];
  const pick = () => values[Math.floor(rng.next() * values.length)];
  for (let i = 0; i < 400; i++) {
    const header: Record<string, unknown> = {};
    for (let t = 0; t < 1 + Math.floor(rng.next() * 3); t++) header[`t${t}`] = rng.next() < 0.2 ? pick() : { dtype: rng.next() < 0.6 ? "F32" : pick(), shape: rng.next() < 0.5 ? [2, 2] : pick(), data_offsets: rng.next() < 0.5 ? [0, 16] : pick() };
    if (rng.next() < 0.2) header.__metadata__ = pick();
    try {
      parseSafetensors(safetensors(header, 16), "/r/model.safetensors");
    } catch (error) {
      assert.ok(error instanceof InputError, `${JSON.stringify(header)}: ${(error as Error).name}: ${(error as Error).message}`);
    }
  }
  const keys = Object.keys(good).concat(["num_key_value_heads", "max_position_embeddings", "head_dim", "rope_scaling", "hidden_act"]);
  for (let i = 0; i < 200; i++) {
    const config: Record<string, unknown> = { ...good };
    for (let k = 0; k < 1 + Math.floor(rng.next() * 3); k++) config[keys[Math.floor(rng.next() * keys.length)]!] = pick();
    try {
      readHfConfig(folder(`rand-${i}`, config));
    } catch (error) {
      assert.ok(error instanceof InputError, `${JSON.stringify(config)}: ${(error as Error).name}: ${(error as Error).message}`);
    }
  }
});
