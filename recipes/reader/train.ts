/**
 * Trains the reader base from scratch: tokenizer, then the staged curriculum of config.ts, with a
 * checkpoint every `checkpointEvery` steps. Re-running the same command resumes from the out folder's
 * checkpoint and draws the same batches (each is a function of seed and step), so an interrupted run
 * ends where an uninterrupted one would.
 *
 *   nice -n 10 node --import tsx recipes/reader/train.ts --out out/reader [--max-minutes 60] [--steps N] [--threads 2]
 *
 * Writes: out/tokenizer.bin, out/checkpoint/ (model.bin, optimizer.bin, state.json), out/log.jsonl
 * (one row per step), out/eval.jsonl (curriculum exact match per task), out/final/ (model.bin +
 * tokenizer.bin) when all steps are done.
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { describeBackend, initBackend } from "../../src/model/backend.ts";
import { saveLlama2c } from "../../src/model/llama2c.ts";
import type { LlamaConfig } from "../../src/model/types.ts";
import { FullTrainer, initLlama } from "../../src/train/pretrain.ts";
import { GradientPool } from "../../src/train/pretrain-parallel.ts";
import { writeFileAtomicSync } from "../../src/util/fs.ts";
import { batchAt, checkpointDir, curriculumAccuracy, evalSets, readerContext, stageAt, totalSteps } from "./common.ts";
import { readerRecipe as recipe } from "./config.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string", default: "out/reader" },
    "max-minutes": { type: "string" },
    steps: { type: "string", description: "stop after this global step (default: all)" },
    threads: { type: "string", default: "1", description: "threads computing each batch's gradient (2 on an idle 2-core machine); resume with the same number for bit-identical runs" },
  },
});
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });
const deadline = values["max-minutes"] ? Date.now() + Number(values["max-minutes"]) * 60_000 : Infinity;
const total = totalSteps(recipe);
const stopAt = values.steps ? Math.min(total, Number(values.steps)) : total;

const backend = await initBackend();
const t0 = Date.now();
const ctx = await readerContext(recipe, join(out, "tokenizer.bin"));
console.log(`${describeBackend(backend)}; data ${ctx.data.corpus.length} docs, ${ctx.stream.length} tokens; qa train ${ctx.data.qaTrain.length}, held-out ${ctx.data.qaTest.length}; ${((Date.now() - t0) / 1000).toFixed(1)} s`);

const config: LlamaConfig = { arch: "llama", ...recipe.model, nKvHeads: recipe.model.nHeads, vocabSize: recipe.tokenizer.vocabSize, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
const optim = { ...recipe.optim, totalSteps: total };
const ckpt = checkpointDir(out);
const resumed = existsSync(join(ckpt, "state.json"));
const trainer = resumed ? FullTrainer.load(ckpt, optim).trainer : new FullTrainer(initLlama(config, recipe.seed), optim);
const threads = Number(values.threads);
// The native engine threads each op over all cores; gradient worker threads are for the one-thread wasm engine.
const pool = threads > 1 && !trainer.model.native ? new GradientPool(trainer.toModelData(), threads - 1) : undefined;
if (threads > 1 && trainer.model.native) console.log(`--threads ${threads}: the native engine uses all cores itself (KTU_NATIVE_THREADS sets how many); no gradient workers`);
const logPath = join(out, "log.jsonl");
const evalPath = join(out, "eval.jsonl");
// Rows written after the checkpoint by a killed run are dropped, so the logs read as one run.
for (const path of [logPath, evalPath]) {
  if (!existsSync(path)) continue;
  const kept = readFileSync(path, "utf8").split("\n").filter((l) => l && (JSON.parse(l) as { step: number }).step <= trainer.step);
  writeFileAtomicSync(path, kept.map((l) => l + "\n").join(""));
}
console.log(`${resumed ? `resumed at step ${trainer.step}` : "new model"}: ${trainer.parameterCount} parameters, ${total} steps planned, stopping at ${stopAt}`);

const sets = evalSets(recipe, ctx);
const evaluate = (): void => {
  const te = Date.now();
  const acc = curriculumAccuracy(trainer.toModelData(), ctx.tok, sets);
  appendFileSync(evalPath, JSON.stringify({ step: trainer.step, ...acc, seconds: (Date.now() - te) / 1000 }) + "\n");
  console.log(`eval @${trainer.step}: ${Object.entries(acc).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ")}`);
};

let stop = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => (stop = true));
const save = (): void => trainer.save(ckpt, { seed: recipe.seed });
if (!resumed) evaluate();
while (trainer.step < stopAt && !stop && Date.now() < deadline) {
  const step = trainer.step;
  const { task, batch } = batchAt(recipe, ctx, step);
  const r = pool ? await pool.trainStep(trainer, batch) : trainer.trainStep(batch);
  appendFileSync(logPath, JSON.stringify({ step: r.step, stage: stageAt(recipe, step).name, task, loss: +r.loss.toFixed(4), lr: +r.lr.toExponential(3), gradNorm: +r.gradNorm.toFixed(3), tokens: r.tokens, ms: Math.round(r.ms) }) + "\n");
  if (r.step % 10 === 0) console.log(`step ${r.step}/${total} ${task} loss ${r.loss.toFixed(3)} ${Math.round(r.ms)} ms ${Math.round((r.tokens * 1000) / r.ms)} tok/s`);
  if (r.step % recipe.checkpointEvery === 0) save();
  if (r.step % recipe.evalEvery === 0) evaluate();
  // Lets a signal handler run between steps.
  await new Promise((done) => setImmediate(done));
}
save();
await pool?.close();
if (trainer.step >= total) {
  const final = join(out, "final");
  saveLlama2c(join(final, "model.bin"), trainer.toModelData());
  copyFileSync(join(out, "tokenizer.bin"), join(final, "tokenizer.bin"));
  console.log(`done: ${final}`);
} else console.log(`stopped at step ${trainer.step} of ${total}; run the same command again to continue`);
