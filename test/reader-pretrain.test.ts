import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { initBackend, tf } from "../src/model/backend.ts";
import { Decoder } from "../src/model/decode.ts";
import type { LlamaConfig } from "../src/model/types.ts";
import { FullTrainer, initLlama, makeLmBatch, type LmExample } from "../src/train/pretrain.ts";
import { Rng } from "../src/util/rng.ts";

const config: LlamaConfig = { arch: "llama", dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 2, nKvHeads: 2, vocabSize: 40, seqLen: 24, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
let dir: string;
before(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), "ktu-reader-pretrain-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A copy task: 6 random tokens, a separator, the same 6 again; loss on the copy only. */
function copyBatch(step: number): ReturnType<typeof makeLmBatch> {
  const rng = new Rng(1000 + step);
  const examples: LmExample[] = Array.from({ length: 16 }, () => {
    const w = Array.from({ length: 6 }, () => rng.int(4, config.vocabSize - 1));
    return { ids: [1, ...w, 3, ...w], lossFrom: 8 };
  });
  return makeLmBatch(examples);
}

test("makeLmBatch scores targets from lossFrom on and pads the rest", () => {
  const b = makeLmBatch([{ ids: [1, 5, 6, 7], lossFrom: 2 }, { ids: [1, 9], lossFrom: 0 }], 0);
  assert.equal(b.seq, 3);
  assert.deepEqual([...b.ids], [1, 5, 6, 1, 0, 0]);
  assert.deepEqual([...b.rows], [1, 2, 3]);
  assert.deepEqual([...b.targets], [6, 7, 9]);
});

test("full-parameter training learns a copy task (loss falls well below chance)", () => {
  const trainer = new FullTrainer(initLlama(config, 7), { learningRate: 1e-2, warmupSteps: 5, totalSteps: 120, weightDecay: 0 });
  const first = trainer.loss(copyBatch(-1));
  for (let s = 0; s < 120; s++) trainer.trainStep(copyBatch(s));
  const last = trainer.loss(copyBatch(-1));
  trainer.dispose();
  assert.ok(first > Math.log(config.vocabSize) - 0.5, `initial loss ${first} should be near ln V`);
  assert.ok(last < first / 2, `loss went from ${first} to ${last}`);
});

test("the exported weights give the same logits in the typed-array decoder", () => {
  const trainer = new FullTrainer(initLlama(config, 3), { warmupSteps: 1, totalSteps: 3 });
  for (let s = 0; s < 3; s++) trainer.trainStep(copyBatch(s));
  const ids = [1, 5, 9, 12, 3, 5, 9];
  const ours = tf.tidy(() => trainer.forward(Int32Array.from(ids), 1, ids.length).dataSync() as Float32Array);
  const theirs = new Decoder(trainer.toModelData(), { kernel: "js" }).forwardAll(ids);
  trainer.dispose();
  let maxDiff = 0;
  for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - theirs[i]!));
  assert.ok(maxDiff < 1e-4, `max |logit difference| ${maxDiff}`);
});

test("stopping, saving and resuming gives exactly the uninterrupted weights", () => {
  const optim = { learningRate: 5e-3, warmupSteps: 2, totalSteps: 8 };
  const straight = new FullTrainer(initLlama(config, 11), optim);
  for (let s = 0; s < 8; s++) straight.trainStep(copyBatch(s));
  const a = straight.toModelData();
  straight.dispose();

  const first = new FullTrainer(initLlama(config, 11), optim);
  for (let s = 0; s < 5; s++) first.trainStep(copyBatch(s));
  first.save(join(dir, "ckpt"), { note: "x" });
  first.dispose();
  const { trainer: resumed, state } = FullTrainer.load(join(dir, "ckpt"));
  assert.equal(resumed.step, 5);
  assert.equal(state.note, "x");
  for (let s = resumed.step; s < 8; s++) resumed.trainStep(copyBatch(s));
  const b = resumed.toModelData();
  resumed.dispose();
  assert.deepEqual(b.weights.tokenEmbedding, a.weights.tokenEmbedding);
  a.weights.layers.forEach((l, i) => {
    for (const k of ["wq", "wk", "wv", "wo", "w1", "w2", "w3", "attnNorm", "ffnNorm"] as const) assert.deepEqual(b.weights.layers[i]![k], l[k], `layer ${i} ${k}`);
  });
});

test("two threads give the single-thread step up to float rounding", async () => {
  const { GradientPool } = await import("../src/train/pretrain-parallel.ts");
  const model = initLlama(config, 5);
  const single = new FullTrainer(model, { warmupSteps: 1, totalSteps: 4 });
  const parallel = new FullTrainer(model, { warmupSteps: 1, totalSteps: 4 });
  const pool = new GradientPool(model, 1);
  try {
    for (let s = 0; s < 3; s++) {
      const a = single.trainStep(copyBatch(s));
      const b = await pool.trainStep(parallel, copyBatch(s));
      assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `loss ${a.loss} vs ${b.loss}`);
    }
    const wa = single.parameterValues();
    const wb = parallel.parameterValues();
    let maxDiff = 0;
    wa.forEach((w, i) => w.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - wb[i]![j]!)))));
    assert.ok(maxDiff < 1e-5, `max |weight difference| ${maxDiff}`);
  } finally {
    await pool.close();
    single.dispose();
    parallel.dispose();
  }
});

test("training steps do not grow TF.js memory", () => {
  const trainer = new FullTrainer(initLlama(config, 2), { warmupSteps: 1, totalSteps: 10 });
  trainer.trainStep(copyBatch(0));
  const before = tf.memory();
  for (let s = 1; s < 6; s++) trainer.trainStep(copyBatch(s));
  trainer.setParameterValues(trainer.parameterValues());
  const after = tf.memory();
  trainer.dispose();
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numBytes, before.numBytes);
});
