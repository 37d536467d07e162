/**
 * A training run in its own process, for the kill -9 / resume test: prints one JSON line per step.
 * argv: outputDir, resume ("resume" to continue from the latest checkpoint), delay ms between steps.
 */
import { initBackend } from "../../src/model/backend.ts";
import { SftTrainer } from "../../src/train/sft.ts";
import { tinySetup } from "./tiny-sft.ts";

const [outputDir, resume, delay] = process.argv.slice(2);
// The parent names the engine (KTU_ENGINE); wasm when it does not.
await initBackend(process.env.KTU_ENGINE ? undefined : "wasm");
const { model, encoded } = tinySetup();
const trainer = new SftTrainer({
  model,
  train: encoded.examples,
  outputDir,
  resumeFrom: resume === "resume" ? true : undefined,
  config: { learningRate: 5e-3, numTrainEpochs: 4, batchSize: 2, gradientAccumulationSteps: 2, lrSchedulerType: "cosine", warmupRatio: 0.2, saveSteps: 1, loggingSteps: 1, lora: { rank: 4, alpha: 8, dropout: 0.1, targets: ["wq", "wv"] } },
});
process.stdout.write(JSON.stringify({ started: trainer.step }) + "\n");
for await (const s of trainer.steps()) {
  process.stdout.write(JSON.stringify({ step: s.step, loss: s.loss, gradNorm: s.gradNorm, lr: s.lr }) + "\n");
  await new Promise((r) => setTimeout(r, Number(delay ?? 0)));
}
process.stdout.write(JSON.stringify({ done: true }) + "\n");
