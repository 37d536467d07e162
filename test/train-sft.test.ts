import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend, tf } from "../src/model/backend.ts";
import { Decoder } from "../src/model/decode.ts";
import { encodeChatTurns } from "../src/model/chat-templates.ts";
import { encodeSftRows, inferSeqlen, IGNORE_INDEX, rowMessages } from "../src/train/dataset.ts";
import { SftTrainer, TrainingError } from "../src/train/sft.ts";
import { tinyRows, tinySetup } from "./helpers/tiny-sft.ts";

const { model, tokenizer, template, encoded } = tinySetup();

/** log P(answer + EOS | prompt) under a model, from the typed-array decoder. */
function answerLogProb(weights: typeof model, instruction: string, answer: string): number {
  const [[prompt, response]] = encodeChatTurns(template, tokenizer, rowMessages({ instruction, output: answer })) as [[number[], number[]]];
  const ids = [...prompt, ...response];
  const logits = new Decoder(weights).forwardAll(ids);
  const V = weights.config.vocabSize;
  let total = 0;
  for (let t = prompt.length - 1; t < ids.length - 1; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    total += row[ids[t + 1]!]! - lse;
  }
  return total;
}

test("prompt masked, response + EOS trained, as LLaMA-Factory's supervised processor", () => {
  const e = encoded.examples[0]!;
  assert.equal(e.inputIds[0], tokenizer.bosId);
  assert.equal(e.inputIds.at(-1), tokenizer.eosId);
  const firstLabel = e.labels.findIndex((l) => l !== IGNORE_INDEX);
  assert.deepEqual([...e.labels.subarray(firstLabel)], [...e.inputIds.subarray(firstLabel)]);
  assert.deepEqual([...e.inputIds.subarray(firstLabel, -1)], tokenizer.encode("Sufficient", { bos: false }));
  assert.ok(e.labels.subarray(0, firstLabel).every((l) => l === IGNORE_INDEX));
  // infer_seqlen cases from LLaMA-Factory's tests: (source, target, cutoff) -> kept lengths.
  assert.deepEqual(inferSeqlen(3000, 2000, 1000), [600, 400]);
  assert.deepEqual(inferSeqlen(2000, 3000, 1000), [400, 600]);
  assert.deepEqual(inferSeqlen(1000, 100, 1000), [900, 100]);
  assert.deepEqual(inferSeqlen(100, 1000, 1000), [100, 900]);
  assert.deepEqual(inferSeqlen(100, 500, 1000), [100, 500]);
  // A row longer than cutoff_len is truncated, kept and reported.
  const long = encodeSftRows([{ instruction: "Once upon a time ".repeat(20), output: "The end." }, tinyRows[0]!], template, tokenizer, 40);
  assert.deepEqual(long.truncated.map((t) => t.row), [0]);
  assert.ok(long.truncated[0]!.fullLength > 40);
  assert.equal(long.examples[0]!.inputIds.length, 40);
  assert.equal(long.examples.length, 2);
});

test("a tiny LoRA SFT run lowers the loss, and the merged model then prefers the trained answers", async () => {
  await initBackend("wasm");
  const outputDir = mkdtempSync(join(tmpdir(), "ktu-sft-"));
  const trainer = new SftTrainer({
    model,
    train: encoded.examples,
    val: encoded.examples.slice(0, 2),
    outputDir,
    config: { learningRate: 1e-2, numTrainEpochs: 12, batchSize: 4, lrSchedulerType: "cosine", warmupRatio: 0.1, loggingSteps: 4, saveSteps: 1000 },
  });
  assert.equal(trainer.totalSteps, 24);
  const before = trainer.evaluate(encoded.examples);
  const first = [];
  let tensorsAfterStep2 = 0;
  for await (const s of trainer.steps(10)) {
    first.push(s);
    if (s.step === 2) tensorsAfterStep2 = tf.memory().numTensors;
  }
  assert.equal(first.length, 10);
  assert.equal(tf.memory().numTensors, tensorsAfterStep2, "no tensors leak from step to step");
  // A notebook cell changes the learning rate between cells; the next step uses it.
  trainer.config.learningRate = 5e-3;
  assert.ok(Math.abs(trainer.learningRateAt(10) - 5e-3 * 0.5 * (1 + Math.cos((Math.PI * (10 - 3)) / 21))) < 1e-12);
  const rest = await trainer.train();
  assert.equal(rest.length, 24);
  const after = trainer.evaluate(encoded.examples);
  console.log(`  loss ${before.toFixed(3)} -> ${after.toFixed(3)}; last step ${rest.at(-1)!.ms.toFixed(0)} ms`);
  assert.ok(after < before * 0.5, `loss ${before} -> ${after}`);
  assert.ok(rest.at(-1)!.evalLoss !== undefined);
  const merged = trainer.merged();
  for (const row of tinyRows) {
    const other = row.output === "Sufficient" ? "Insufficient" : "Sufficient";
    assert.ok(answerLogProb(merged, row.instruction, row.output) > answerLogProb(merged, row.instruction, other), row.instruction);
  }
  // trainer_log.jsonl: LLaMA-Factory's keys and order.
  const lines = readFileSync(join(outputDir, "trainer_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(lines[0]), ["current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time", "remaining_time"]);
  assert.deepEqual(lines.filter((l) => "loss" in l).map((l) => l.current_steps), [4, 8, 12, 16, 20, 24]);
  assert.ok(lines.some((l) => "eval_loss" in l));
  assert.match(lines[0].elapsed_time, /^\d+:\d\d:\d\d$/);
  assert.equal(lines.at(-1).percentage, 100);
  assert.ok(readFileSync(join(outputDir, "adapter_config.json"), "utf8").includes('"LORA"'));
  trainer.dispose();
});

test("a NaN loss stops with the step and a suggestion, leaving the adapter as it was", async () => {
  await initBackend("wasm");
  const trainer = new SftTrainer({ model, train: encoded.examples, config: { learningRate: Infinity, numTrainEpochs: 3, batchSize: 4 } });
  const steps = [];
  await assert.rejects(
    (async () => {
      for await (const s of trainer.steps()) steps.push(s);
    })(),
    (error: unknown) => error instanceof TrainingError && /step \d+: the loss is (NaN|Infinity)/.test(error.message) && /lower learning rate/.test(error.message),
  );
  assert.ok(steps.length >= 1);
  assert.equal(trainer.step, steps.length);
  trainer.dispose();
});

test("two gradient threads (data parallel) give the single-thread losses and gradient norms", async () => {
  await initBackend("wasm");
  const run = async (workers: number) => {
    const trainer = new SftTrainer({ model, train: encoded.examples, config: { learningRate: 1e-2, maxSteps: 3, batchSize: 4, gradientAccumulationSteps: 2, workers } });
    const out = [];
    for await (const s of trainer.steps()) out.push(s);
    trainer.dispose();
    return out;
  };
  const serial = await run(1);
  const parallel = await run(2);
  serial.forEach((s, i) => {
    assert.ok(Math.abs(s.loss - parallel[i]!.loss) < 1e-5, `step ${s.step}: ${s.loss} vs ${parallel[i]!.loss}`);
    assert.ok(Math.abs(s.gradNorm - parallel[i]!.gradNorm) < 1e-4 * Math.max(1, s.gradNorm));
  });
});

test("resuming from a damaged or foreign checkpoint fails naming the file", async () => {
  await initBackend("wasm");
  const { writeFileSync, readFileSync: read } = await import("node:fs");
  const outputDir = mkdtempSync(join(tmpdir(), "ktu-ckpt-"));
  const trainer = new SftTrainer({ model, train: encoded.examples, outputDir, config: { maxSteps: 2, batchSize: 4, saveSteps: 1 } });
  for await (const _ of trainer.steps()) void _;
  trainer.dispose();
  const ckpt = join(outputDir, "checkpoint-2");
  const adapterFile = join(ckpt, "adapter_model.safetensors");
  const bytes = read(adapterFile);
  writeFileSync(adapterFile, bytes.subarray(0, bytes.length - 100));
  assert.throws(() => new SftTrainer({ model, train: encoded.examples, outputDir, resumeFrom: true, config: { maxSteps: 4, batchSize: 4 } }), /checkpoint-2\/adapter_model\.safetensors.*truncated/);
  writeFileSync(adapterFile, bytes);
  // Other data (here: fewer rows) cannot continue this run.
  assert.throws(() => new SftTrainer({ model, train: encoded.examples.slice(1), outputDir, resumeFrom: ckpt, config: { maxSteps: 4, batchSize: 4 } }), /checkpoint-2: the checkpoint was taken on different training data/);
  assert.throws(() => new SftTrainer({ model, train: encoded.examples, outputDir, resumeFrom: join(outputDir, "nope"), config: { batchSize: 4 } }), /nope\/trainer_state\.json: not a ktu checkpoint/);
});
