import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { initBackend, tf } from "../src/model/backend.ts";
import { TfLlama, crossEntropy } from "../src/model/llama-tf.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { dataPath } from "../src/util/paths.ts";
import type { LlamaModelData } from "../src/model/types.ts";
import { testEngines } from "./helpers/engines.ts";

interface Reference {
  ids: number[];
  positions: { logits: number[] }[];
  mean_nll_over_targets: number;
}
const reference = JSON.parse(readFileSync(dataPath("models/stories260K/reference/teacher_forced_once_upon_a_time_lily_park.json"), "utf8")) as Reference;
const model = loadLlama2c(dataPath("models/stories260K/stories260K.bin"));

/** The same weights in Hugging Face's rotate-half layout: permute wq/wk rows per head (as convert_llama_weights_to_hf does). */
function toRotateHalf(data: LlamaModelData): LlamaModelData {
  const c = data.config;
  const hs = c.dim / c.nHeads;
  const permute = (w: Float32Array, heads: number): Float32Array => {
    const out = new Float32Array(w.length);
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < hs / 2; i++)
        for (let two = 0; two < 2; two++) {
          const src = h * hs + 2 * i + two;
          const dst = h * hs + two * (hs / 2) + i;
          out.set(w.subarray(src * c.dim, (src + 1) * c.dim), dst * c.dim);
        }
    return out;
  };
  return {
    config: { ...c, ropeStyle: "rotate-half" },
    weights: { ...data.weights, layers: data.weights.layers.map((l) => ({ ...l, wq: permute(l.wq, c.nHeads), wk: permute(l.wk, c.nKvHeads) })) },
  };
}

function maxDiff(logits: Float32Array, vocab: number): number {
  let worst = 0;
  reference.positions.forEach((p, t) => p.logits.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - logits[t * vocab + j]!)))));
  return worst;
}

const nativeSkip = testEngines().find((e) => e.engine === "native")?.skip ?? "KTU_TEST_ENGINES leaves native out";
for (const backend of ["wasm", "cpu", "native"] as const) {
  test(`TF.js Llama matches llama2.c logits on stories260K (${backend})`, { skip: backend === "native" ? nativeSkip : false }, async () => {
    await initBackend(backend);
    const ids = Int32Array.from(reference.ids);
    const tfModel = new TfLlama(model);
    const logits = tfModel.logits(ids, 1, ids.length);
    const diff = maxDiff(logits, model.config.vocabSize);
    console.log(`  ${backend}: max |dlogit| interleaved ${diff.toExponential(2)}`);
    assert.ok(diff < 1e-4, `max |dlogit| ${diff}`);
    // The loss path (custom cross-entropy) gives run.c's teacher-forced NLL.
    const nll = tf.tidy(() => crossEntropy(tfModel.forward(ids.subarray(0, -1), 1, ids.length - 1), ids.subarray(1), 1 / (ids.length - 1)).dataSync()[0]!);
    assert.ok(Math.abs(nll - reference.mean_nll_over_targets) < 1e-5, `nll ${nll}`);
    tfModel.dispose();
    const rotated = new TfLlama(toRotateHalf(model));
    const diff2 = maxDiff(rotated.logits(ids, 1, ids.length), model.config.vocabSize);
    console.log(`  ${backend}: max |dlogit| rotate-half ${diff2.toExponential(2)}`);
    assert.ok(diff2 < 1e-4, `rotate-half max |dlogit| ${diff2}`);
    rotated.dispose();
  });
}

test("a batch of two sequences gives each one's own logits", async () => {
  await initBackend("wasm");
  const tfModel = new TfLlama(model);
  const a = Int32Array.from(reference.ids.slice(0, 12));
  const b = Int32Array.from(reference.ids.slice(12, 24));
  const both = tfModel.logits(Int32Array.from([...a, ...b]), 2, 12);
  const onlyB = tfModel.logits(b, 1, 12);
  let worst = 0;
  for (let i = 0; i < onlyB.length; i++) worst = Math.max(worst, Math.abs(onlyB[i]! - both[onlyB.length + i]!));
  assert.ok(worst < 1e-5, `batch row differs by ${worst}`);
  tfModel.dispose();
});

test("the fused typed-array attention gives the graph attention's logits and LoRA gradients", async () => {
  await initBackend("wasm");
  const { LoraAdapter } = await import("../src/train/lora.ts");
  const { Rng } = await import("../src/util/rng.ts");
  const adapter = LoraAdapter.create(model.config, { rank: 4, alpha: 8, dropout: 0, targets: ["wq", "wk", "wv", "wo"] }, new Rng(5));
  const rng = new Rng(9);
  for (const p of adapter.parameters) if (p.kind === "B") p.values.forEach((_, i) => (p.values[i] = rng.normal() * 0.05));
  adapter.sync();
  const ids = Int32Array.from(reference.ids.slice(0, 24));
  const targets = Int32Array.from(reference.ids.slice(1, 25));
  const run = (attention: "js" | "graph") => {
    const m = new TfLlama(model, { attention });
    const out = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(m.forward(ids, 2, 12, { adapter }), targets, 1 / 24), adapter.parameters.map((p) => p.variable));
      return { loss: value.dataSync()[0]!, grads: adapter.parameters.map((p) => Float32Array.from(grads[p.variable.name]!.dataSync())) };
    });
    m.dispose();
    return out;
  };
  const js = run("js");
  const graph = run("graph");
  assert.ok(Math.abs(js.loss - graph.loss) < 1e-5, `${js.loss} vs ${graph.loss}`);
  let worst = 0;
  let scale = 0;
  js.grads.forEach((g, i) => g.forEach((v, j) => {
    worst = Math.max(worst, Math.abs(v - graph.grads[i]![j]!));
    scale = Math.max(scale, Math.abs(v));
  }));
  assert.ok(worst < 1e-4 * Math.max(1, scale), `max |dgrad| ${worst} (largest grad ${scale})`);
  adapter.dispose();
});
