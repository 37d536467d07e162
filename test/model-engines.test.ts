/**
 * Model-level parity of the two engines that run the one Llama implementation: wasm (TF.js ops) and
 * native (the addon's fused ops on the cpu backend). Per-op gradient checks live with the addon; here
 * whole models: LoRA losses and gradients on stories260K (GQA), full-parameter training of a GQA
 * model with an untied head, checkpoint/resume on native, and 200 training steps of the 1.33M
 * reader-base shape giving the same loss curve on both engines.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { initBackend, tf } from "../src/model/backend.ts";
import { Decoder } from "../src/model/decode.ts";
import { TfLlama } from "../src/model/llama-tf.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import type { LlamaConfig } from "../src/model/types.ts";
import { LoraAdapter } from "../src/train/lora.ts";
import { FullTrainer, initLlama, makeLmBatch } from "../src/train/pretrain.ts";
import { dataPath } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { testEngines } from "./helpers/engines.ts";

const native = testEngines().find((e) => e.engine === "native");
const skip = native?.skip ?? "KTU_TEST_ENGINES leaves native out";
const dir = mkdtempSync(join(tmpdir(), "ktu-engines-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return worst / Math.max(scale, 1e-30);
};

test("LoRA on all seven projections (GQA stories260K, rows subset): native loss and gradients equal wasm's", { skip }, async () => {
  const model = loadLlama2c(dataPath("models/stories260K/stories260K.bin"));
  const rng = new Rng(4);
  const ids = Int32Array.from({ length: 3 * 17 }, () => rng.int(3, 511));
  const rows = Int32Array.from([0, 5, 16, 17, 20, 33, 40, 50]);
  const targets = Int32Array.from(rows, (r) => (r * 7) % 512);
  const run = async (engine: "wasm" | "native") => {
    await initBackend(engine);
    const adapter = LoraAdapter.create(model.config, { rank: 4, alpha: 8, dropout: 0, targets: ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] }, new Rng(5));
    const r = new Rng(9);
    for (const p of adapter.parameters) if (p.kind === "B") p.values.forEach((_, i) => (p.values[i] = r.normal() * 0.05));
    adapter.sync();
    const m = new TfLlama(model);
    assert.equal(m.native, engine === "native");
    let loss = 0;
    let grads: Float32Array[] = [];
    tf.tidy(() => {
      const out = tf.variableGrads(() => m.loss(ids, 3, 17, rows, targets, 1 / rows.length, adapter), adapter.parameters.map((p) => p.variable));
      loss = out.value.dataSync()[0]!;
      grads = adapter.parameters.map((p) => Float32Array.from(out.grads[p.variable.name]!.dataSync() as Float32Array));
    });
    const logits = m.logits(ids, 3, 17, adapter);
    m.dispose();
    adapter.dispose();
    return { loss, grads, logits };
  };
  const w = await run("wasm");
  const n = await run("native");
  assert.ok(Math.abs(w.loss - n.loss) < 1e-5 * Math.abs(w.loss), `loss wasm ${w.loss} native ${n.loss}`);
  assert.ok(maxRel(w.logits, n.logits) < 1e-5, `logits differ by ${maxRel(w.logits, n.logits)} relative`);
  let worst = 0;
  w.grads.forEach((g, i) => (worst = Math.max(worst, maxRel(g, n.grads[i]!))));
  console.log(`  loss ${w.loss.toFixed(6)} vs ${n.loss.toFixed(6)}; worst gradient difference ${worst.toExponential(2)} of the largest`);
  assert.ok(worst < 1e-4, `gradients differ by ${worst} relative`);
});

const gqa: LlamaConfig = { arch: "llama", dim: 48, hiddenDim: 96, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 70, seqLen: 20, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "rotate-half", tiedEmbeddings: false };
const gqaBatch = (step: number) => {
  const rng = new Rng(100 + (step % 2));
  return makeLmBatch(Array.from({ length: 4 }, () => ({ ids: Array.from({ length: 20 }, () => rng.int(1, 69)), lossFrom: 3 })));
};

test("full-parameter training of a GQA model with an untied head: native steps equal wasm's; exports decode alike", { skip }, async () => {
  const run = async (engine: "wasm" | "native") => {
    await initBackend(engine);
    const t = new FullTrainer(initLlama(gqa, 3), { warmupSteps: 1, totalSteps: 6, learningRate: 3e-3 });
    const losses = Array.from({ length: 6 }, (_, s) => t.trainStep(gqaBatch(s)).loss);
    const data = t.toModelData();
    const probe = [1, 5, 9, 12, 3, 5, 9];
    const logits = tf.tidy(() => t.forward(Int32Array.from(probe), 1, probe.length).dataSync() as Float32Array);
    t.dispose();
    return { losses, data, logits, decoded: new Decoder(data, { kernel: "js" }).forwardAll(probe) };
  };
  const w = await run("wasm");
  const n = await run("native");
  n.losses.forEach((l, i) => assert.ok(Math.abs(l - w.losses[i]!) < 1e-4, `step ${i + 1}: wasm ${w.losses[i]} native ${l}`));
  assert.ok(n.losses.at(-1)! < n.losses[0]!, "the loss falls");
  assert.notEqual(n.data.weights.lmHead, n.data.weights.tokenEmbedding, "the head stays untied");
  assert.ok(maxRel(w.data.weights.lmHead, n.data.weights.lmHead) < 1e-3, "trained heads agree");
  assert.ok(maxRel(n.logits, n.decoded) < 1e-5, `native forward vs typed-array decoder: ${maxRel(n.logits, n.decoded)}`);
});

test("native: stopping, saving and resuming a FullTrainer gives exactly the uninterrupted weights", { skip }, async () => {
  await initBackend("native");
  const optim = { learningRate: 5e-3, warmupSteps: 2, totalSteps: 8 };
  // Interleaved RoPE: checkpoints are llama2.c files, which store rotate-half models permuted to
  // interleaved, and the permuted model sums head dimensions in another order (not bit-identical).
  const config: LlamaConfig = { ...gqa, ropeStyle: "interleaved" };
  const straight = new FullTrainer(initLlama(config, 11), optim);
  for (let s = 0; s < 8; s++) straight.trainStep(gqaBatch(s));
  const a = straight.parameterValues();
  straight.dispose();
  const first = new FullTrainer(initLlama(config, 11), optim);
  for (let s = 0; s < 5; s++) first.trainStep(gqaBatch(s));
  first.save(join(dir, "ckpt"));
  first.dispose();
  const { trainer } = FullTrainer.load(join(dir, "ckpt"));
  assert.equal(trainer.model.native, true);
  for (let s = trainer.step; s < 8; s++) trainer.trainStep(gqaBatch(s));
  const b = trainer.parameterValues();
  trainer.dispose();
  a.forEach((w, i) => assert.deepEqual(b[i], w, `parameter ${i}`));
});

test("200 training steps of the 1.33M reader-base shape: the same loss curve on native and wasm", { skip }, async () => {
  // d128 L4 H4 ffn352 V4096 (the bench's 1.33M model) at batch 2 x 8 to keep wasm's 200 steps short.
  const config: LlamaConfig = { arch: "llama", dim: 128, hiddenDim: 352, nLayers: 4, nHeads: 4, nKvHeads: 4, vocabSize: 4096, seqLen: 9, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
  const steps = 200;
  const batches = Array.from({ length: steps }, (_, s) => {
    // A learnable stream: token t+1 = (3 t + 1) mod 97 + 3 after a random start, so the loss falls far.
    const rng = new Rng(7000 + s);
    return makeLmBatch(Array.from({ length: 2 }, () => {
      let t = rng.int(3, 99);
      return { ids: Array.from({ length: 9 }, () => (t = ((3 * t + 1) % 97) + 3)), lossFrom: 0 };
    }));
  });
  const curve = async (engine: "wasm" | "native") => {
    await initBackend(engine);
    const t = new FullTrainer(initLlama(config, 1), { learningRate: 2e-3, warmupSteps: 20, totalSteps: steps });
    const t0 = performance.now();
    const losses = batches.map((b) => t.trainStep(b).loss);
    const ms = (performance.now() - t0) / steps;
    t.dispose();
    return { losses, ms };
  };
  const w = await curve("wasm");
  const n = await curve("native");
  let worst = 0;
  n.losses.forEach((l, i) => (worst = Math.max(worst, Math.abs(l - w.losses[i]!))));
  console.log(`  loss ${w.losses[0]!.toFixed(4)} -> ${w.losses.at(-1)!.toFixed(4)} (wasm, ${w.ms.toFixed(0)} ms/step), native ${n.losses.at(-1)!.toFixed(4)} (${n.ms.toFixed(0)} ms/step); worst step difference ${worst.toExponential(2)}`);
  assert.ok(w.losses.at(-1)! < w.losses[0]! / 2, "the model learns");
  assert.ok(worst < 2e-3, `loss curves differ by up to ${worst}`);
});
