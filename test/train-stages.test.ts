import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend } from "../src/model/backend.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { armStages, createStageTrainer, finishStage, paperDefaults, runUsTuning, stageSettings } from "../src/train/stages.ts";
import { tinyRows, tinySetup } from "./helpers/tiny-sft.ts";

const { model, tokenizer } = tinySetup();
const qaRows = [
  { instruction: "Where did Lily play?", input: "Lily played in the park.", output: "the park" },
  { instruction: "Who was the king of the moon?", input: "Tom had a red ball.", output: "Not Provided" },
  { instruction: "What did Tom have?", input: "Tom had a red ball.", output: "a red ball" },
  { instruction: "Where is the dragon?", input: "Lily played in the park.", output: "Not Provided" },
];
const fast = { learningRate: 1e-2, batchSize: 4, gradientAccumulationSteps: 1, valSize: 0, cutoffLen: 64, warmupRatio: 0, stage1: { numTrainEpochs: 2 }, stage2: { numTrainEpochs: 2 } };

test("paper hyperparameters are the defaults; every value overridable; unknown keys throw", () => {
  const s1 = stageSettings("stage1");
  assert.equal(s1.learningRate, 4e-5);
  assert.equal(s1.numTrainEpochs, 1);
  assert.equal(s1.batchSize * s1.gradientAccumulationSteps, 16);
  assert.deepEqual([s1.lrSchedulerType, s1.warmupRatio, s1.cutoffLen, s1.maxSamples, s1.valSize], ["cosine", 0.1, 1024, 1000, 0.1]);
  assert.deepEqual([s1.loraRank, s1.loraAlpha, s1.loraDropout, [...s1.loraTargets]], [8, 16, 0, ["wq", "wv"]]);
  assert.deepEqual([stageSettings("stage2").learningRate, stageSettings("stage2").numTrainEpochs], [5e-5, 5]);
  assert.equal(stageSettings("stage2Only").numTrainEpochs, 10);
  assert.equal(stageSettings("stage2", { learningRate: 1e-4, stage2: { numTrainEpochs: 2 } }).learningRate, 1e-4);
  assert.equal(stageSettings("stage2", { stage2: { numTrainEpochs: 2 } }).numTrainEpochs, 2);
  assert.equal(stageSettings("stage1", { stage2: { numTrainEpochs: 2 } }).numTrainEpochs, 1);
  assert.throws(() => stageSettings("stage1", { learningrate: 1 } as never), /unknown stage setting learningrate/);
  assert.throws(() => stageSettings("stage1", { stage1: { epochs: 1 } } as never), /unknown stage setting stage1\.epochs/);
  assert.ok(Object.isFrozen(paperDefaults) && Object.isFrozen(paperDefaults.common));
  assert.deepEqual(armStages("us-tuning").map((s) => s.stage), ["stage1", "stage2"]);
  assert.deepEqual(armStages("stage1-qa").map((s) => s.stage), ["stage1", "stage1Qa"]);
});

test("US-Tuning in one call: stage 1, merge, stage 2 on the merge; files for each stage", async () => {
  await initBackend("wasm");
  const out = mkdtempSync(join(tmpdir(), "ktu-stages-"));
  const seen: string[] = [];
  const result = await runUsTuning(model, tokenizer, { stage1: tinyRows, stage2: qaRows }, { overrides: fast, outputDir: out, onStep: (stage, s) => seen.push(`${stage}:${s.step}`) });
  assert.deepEqual(result.stages.map((s) => s.stage), ["stage1", "stage2"]);
  assert.deepEqual(seen, ["stage1:1", "stage1:2", "stage1:3", "stage1:4", "stage2:1", "stage2:2"]);
  const [s1, s2] = result.stages as [typeof result.stages[0], typeof result.stages[0]];
  // Stage 2 trained on the stage-1 merge: its merge differs from stage 1's only where its adapter sits.
  assert.notDeepEqual(s1.merged.weights.layers[0]!.wq, model.weights.layers[0]!.wq);
  assert.notDeepEqual(s2.merged.weights.layers[0]!.wq, s1.merged.weights.layers[0]!.wq);
  assert.equal(s2.merged.weights.layers[0]!.w1, model.weights.layers[0]!.w1);
  assert.equal(result.final, s2.merged);
  for (const stage of ["stage1", "stage2"]) {
    assert.ok(existsSync(join(out, "us-tuning", stage, "adapter_model.safetensors")));
    assert.ok(existsSync(join(out, "us-tuning", stage, "trainer_log.jsonl")));
  }
  const reloaded = loadLlama2c(join(out, "us-tuning", "stage2", "merged.bin"));
  assert.deepEqual(reloaded.weights.layers[3]!.wv, s2.merged.weights.layers[3]!.wv);
});

test("a stage stepped cell by cell, changing the learning rate in between", async () => {
  await initBackend("wasm");
  const st = createStageTrainer("qaOnly", model, tokenizer, [qaRows], { ...fast, qaOnly: { numTrainEpochs: 3 } });
  const first = [];
  for await (const s of st.trainer.steps(1)) first.push(s);
  st.trainer.config.learningRate = 1e-3;
  const rest = [];
  for await (const s of st.trainer.steps()) rest.push(s);
  assert.equal(first.length + rest.length, 3);
  assert.ok(rest[0]!.lr < 1e-3 + 1e-12 && rest[0]!.lr > 0);
  const result = await finishStage(st);
  assert.equal(result.history.length, 3);
  assert.ok(Number.isFinite(result.finalLoss));
});
