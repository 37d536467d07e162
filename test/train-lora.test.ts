import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend, tf } from "../src/model/backend.ts";
import { Decoder } from "../src/model/decode.ts";
import { TfLlama } from "../src/model/llama-tf.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { parseSafetensors, readSafetensors, serializeSafetensors, tensorToFloat32 } from "../src/model/safetensors.ts";
import { LoraAdapter, mergeLora, parseLoraTargets } from "../src/train/lora.ts";
import { dataPath } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { testEngines } from "./helpers/engines.ts";

const model = loadLlama2c(dataPath("models/stories260K/stories260K.bin"));
const ids = Int32Array.from([1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 285, 300]);
const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

for (const { engine, skip } of testEngines()) test(`a fresh LoRA (B = 0) gives exactly the base logits; merging equals the adapter forward (${engine})`, { skip }, async () => {
  await initBackend(engine);
  const tfModel = new TfLlama(model);
  const adapter = LoraAdapter.create(model.config, { rank: 8, alpha: 16, dropout: 0, targets: ["wq", "wv", "w2"] }, new Rng(7));
  const base = tfModel.logits(ids, 1, ids.length);
  assert.deepEqual(tfModel.logits(ids, 1, ids.length, adapter), base);
  // Give B values so the adapter matters.
  const rng = new Rng(3);
  for (const p of adapter.parameters) if (p.kind === "B") p.values.forEach((_, i) => (p.values[i] = rng.normal() * 0.01));
  adapter.sync();
  const withAdapter = tfModel.logits(ids, 1, ids.length, adapter);
  assert.ok(maxAbsDiff(withAdapter, base) > 1e-2, "the adapter changes the logits");
  const wqBefore = Float32Array.from(model.weights.layers[0]!.wq);
  const merged = mergeLora(model, adapter);
  assert.deepEqual(model.weights.layers[0]!.wq, wqBefore, "the base is untouched");
  assert.notEqual(merged.weights.layers[0]!.wq, model.weights.layers[0]!.wq);
  assert.equal(merged.weights.layers[0]!.wk, model.weights.layers[0]!.wk, "unadapted matrices are shared");
  const mergedModel = new TfLlama(merged);
  const mergedDiff = maxAbsDiff(mergedModel.logits(ids, 1, ids.length), withAdapter);
  console.log(`  max |dlogit| merged vs adapter ${mergedDiff.toExponential(2)}, decoder(merged) vs adapter ${maxAbsDiff(new Decoder(merged).forwardAll([...ids]), withAdapter).toExponential(2)}, adapter effect ${maxAbsDiff(withAdapter, base).toFixed(3)}`);
  // fp32 sums in another order: logits reach ~17 here, so 1e-4 is a relative 6e-6 (the TF.js graph
  // itself differs from llama2.c by 1.5e-5 on the base model; runs measured 2.4e-5 to 5.2e-5).
  assert.ok(mergedDiff < 1e-4, `merged vs adapter: ${mergedDiff}`);
  // The typed-array decoder runs the merged weights (the shared weight contract) to the same logits.
  const decoderDiff = maxAbsDiff(new Decoder(merged).forwardAll([...ids]), withAdapter);
  assert.ok(decoderDiff < 1e-4, `decoder vs TF.js adapter: ${decoderDiff}`);
  tfModel.dispose();
  mergedModel.dispose();
  adapter.dispose();
});

test("PEFT adapter files: layout, names and a save/load round trip", async () => {
  await initBackend("wasm");
  const adapter = LoraAdapter.create(model.config, { rank: 4, alpha: 8, dropout: 0, targets: parseLoraTargets("q_proj,v_proj") }, new Rng(1));
  adapter.parameters.forEach((p, k) => p.values.forEach((_, i) => (p.values[i] = Math.sin(k * 1000 + i))));
  const dir = mkdtempSync(join(tmpdir(), "ktu-peft-"));
  await adapter.save(dir, "stories260K");
  const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
  assert.equal(config.peft_type, "LORA");
  assert.equal(config.task_type, "CAUSAL_LM");
  assert.equal(config.r, 4);
  assert.equal(config.lora_alpha, 8);
  assert.equal(config.bias, "none");
  assert.deepEqual(config.target_modules, ["q_proj", "v_proj"]);
  const file = readSafetensors(join(dir, "adapter_model.safetensors"));
  assert.deepEqual(file.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")!.shape, [4, 64]);
  assert.deepEqual(file.tensors.get("base_model.model.model.layers.4.self_attn.v_proj.lora_B.weight")!.shape, [32, 4]);
  assert.equal(file.tensors.size, 5 * 2 * 2);
  const loaded = LoraAdapter.load(dir, model.config);
  assert.equal(loaded.scale, 2);
  loaded.parameters.forEach((p, i) => assert.deepEqual(p.values, adapter.parameters[i]!.values));
  // A wrong-size tensor names the file and the tensor.
  const bad = serializeSafetensors({ ...adapter.peftTensors(), "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": { data: new Float32Array(4 * 63), shape: [4, 63] } });
  writeFileSync(join(dir, "adapter_model.safetensors"), bad);
  assert.throws(() => LoraAdapter.load(dir, model.config), /adapter_model\.safetensors.*q_proj\.lora_A\.weight.*shape.*\[4,64\]/);
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ ...config, target_modules: ["q_proj", "mlp_in"] }));
  assert.throws(() => LoraAdapter.load(dir, model.config), /adapter_config\.json.*target_modules.*mlp_in/);
  adapter.dispose();
  loaded.dispose();
});

test("safetensors: round trip in F32, F16 and BF16, and clear errors for damaged files", () => {
  const values = Float32Array.from([0, 1, -2, 0.5, 1.5, 65504, -0.000061035156, 3.140625, 1e-8, -7.25]);
  const bytes = serializeSafetensors({
    a: { data: values, shape: [2, 5] },
    h: { data: values, shape: [10], dtype: "F16" },
    b: { data: values, shape: [10], dtype: "BF16" },
    d: { data: Float64Array.from([Math.PI]), shape: [1] },
  }, { format: "pt" });
  const file = parseSafetensors(bytes, "mem.safetensors");
  assert.equal(file.metadata.format, "pt");
  assert.equal((8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))) % 8, 0, "header padded to 8 bytes");
  assert.deepEqual(tensorToFloat32(file.tensors.get("a")!), values);
  const h = tensorToFloat32(file.tensors.get("h")!);
  const b = tensorToFloat32(file.tensors.get("b")!);
  // Values exactly representable in each format come back exactly; 1e-8 underflows fp16 to 0.
  assert.deepEqual([...h.subarray(0, 8)], [0, 1, -2, 0.5, 1.5, 65504, -0.000061035156, 3.140625].map(Math.fround));
  assert.equal(h[8], 0);
  assert.deepEqual([...b.subarray(0, 5)], [0, 1, -2, 0.5, 1.5]);
  assert.ok(Math.abs(b[9]! - -7.25) < 1e-6 && Math.abs(b[8]! - 1e-8) < 1e-10);
  // Known bit patterns: fp16(1.5) = 0x3e00, bf16(1.0) = 0x3f80.
  assert.equal(new DataView(file.tensors.get("h")!.bytes.buffer, file.tensors.get("h")!.bytes.byteOffset).getUint16(8, true), 0x3e00);
  assert.equal(new DataView(file.tensors.get("b")!.bytes.buffer, file.tensors.get("b")!.bytes.byteOffset).getUint16(2, true), 0x3f80);
  assert.equal(tensorToFloat32(file.tensors.get("d")!)[0], Math.fround(Math.PI));
  assert.throws(() => parseSafetensors(bytes.subarray(0, bytes.length - 3), "cut.safetensors"), /cut\.safetensors.*record d.*truncated/);
  assert.throws(() => parseSafetensors(bytes.subarray(0, 20), "short.safetensors"), /short\.safetensors.*header length/);
  const wrongDtype = serializeSafetensors({ x: { data: Int32Array.from([1, 2]), shape: [2] } });
  assert.throws(() => tensorToFloat32(parseSafetensors(wrongDtype, "i.safetensors").tensors.get("x")!, "i.safetensors", "x"), /i\.safetensors.*record x.*dtype/);
});

test("the LoRA op's hand-written gradient equals autodiff of scale * (x A^T) B^T", async () => {
  await initBackend("wasm");
  const adapter = LoraAdapter.create(model.config, { rank: 4, alpha: 8, dropout: 0, targets: ["wv"] }, new Rng(2));
  const rng = new Rng(4);
  for (const p of adapter.parameters) p.values.forEach((_, i) => (p.values[i] = rng.normal() * 0.3));
  adapter.sync();
  const [a, b] = adapter.parameters as [typeof adapter.parameters[0], typeof adapter.parameters[0]];
  const x = tf.variable(tf.tensor2d(Float32Array.from({ length: 6 * 64 }, () => rng.normal()), [6, 64]));
  const r = tf.tensor2d(Float32Array.from({ length: 6 * 32 }, () => rng.normal()), [6, 32]);
  const vars = [x, a.variable, b.variable];
  const grads = (f: () => tf.Tensor) => tf.tidy(() => {
    const { grads: g } = tf.variableGrads(() => tf.sum(tf.mul(f(), r)) as tf.Scalar, vars);
    return vars.map((v) => {
      if (!g[v.name]) throw new Error(`no gradient for ${v.name}; have ${Object.keys(g).join(",")}`);
      return Float32Array.from(g[v.name]!.dataSync());
    });
  });
  const ours = grads(() => adapter.delta(0, "wv", x as unknown as tf.Tensor2D));
  const reference = grads(() => tf.mul(tf.matMul(tf.matMul(x, a.variable, false, true), b.variable, false, true), adapter.scale));
  ours.forEach((g, i) => assert.ok(maxAbsDiff(g, reference[i]!) < 1e-4, `gradient ${i}: ${maxAbsDiff(g, reference[i]!)}`));
  adapter.dispose();
});
