/**
 * Trains the reader from random weights through the levels of config.ts, checkpointing as it goes.
 * Re-running the same command resumes from the out folder's checkpoint and draws the same batches
 * (each is a function of seed and step; the level is part of the checkpoint), so an interrupted run ends
 * where an uninterrupted one would.
 *
 *   KTU_NATIVE_THREADS=1 nice -n 5 node --import tsx recipes/reader/train.ts --out out/reader [--max-minutes 60]
 *       [--curriculum default] [--levels repeat-512,repeat-all,natural-200,...] [--from-level NAME]
 *
 * Writes: OUT/tokenizer.bin, OUT/checkpoint/ (model.bin, optimizer.bin, state.json), OUT/log.jsonl (one
 * row per step), OUT/eval.jsonl (gate exact match every `gateEvery` steps; greedy validation QA every
 * `validateEvery`), OUT/final/ (model.bin + tokenizer.bin) when the last level is done.
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { goldAnswers, isKnownCorrect } from "../../src/eval/scoring.ts";
import { squadExactMatch } from "../../src/eval/squad-metric.ts";
import { describeBackend, initBackend } from "../../src/model/backend.ts";
import { saveLlama2c } from "../../src/model/llama2c.ts";
import type { LlamaConfig } from "../../src/model/types.ts";
import { renderTemplate } from "../../src/model/prompt-format.ts";
import { compactQaPrompt } from "../../src/pipeline/compact.ts";
import { cropAroundAnswers } from "../../src/data/synthetic.ts";
import { keepLogRowsUpTo } from "../../src/train/jsonl-log.ts";
import { FullTrainer, initLlama, makeLmBatch, recoverCheckpoint, type LmExample } from "../../src/train/pretrain.ts";
import { Rng } from "../../src/util/rng.ts";
import { babiItem, checkpointDir, greedyAnswers, readerContext, stepRng } from "./common.ts";
import { CONTEXT_FIRST_QA, readerCurricula, readerRecipe as recipe, type ReaderLevel, type ReaderTask } from "./config.ts";
import { babiAllPersonsTask, clozeTask, inductionTask, lmTask, lookupTask, multiClozeTask, multiLookupTask, multiTurnExample, qaExample, realQaTask, repeatTask, splitDocs, templateIds, templateRepeatTask } from "./tasks.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string", default: "out/reader" },
    "max-minutes": { type: "string" },
    steps: { type: "string", description: "stop after this global step (a later run resumes from it)" },
    levels: { type: "string", description: "comma-separated level names of the curriculum to run, in order (default: all)" },
    seed: { type: "string", description: `default ${recipe.seed}` },
    "from-level": { type: "string", description: "on resume, leave the current level for this one now (recorded in the checkpoint's promotions)" },
    curriculum: { type: "string", default: "default", description: `one of config.ts's readerCurricula (${Object.keys(readerCurricula).join(", ")})` },
  },
});
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });
const deadline = values["max-minutes"] ? Date.now() + Number(values["max-minutes"]) * 60_000 : Infinity;
const stopAt = values.steps ? Number(values.steps) : Infinity;
const seed = values.seed ? Number(values.seed) : recipe.seed;
const curriculumName = values.curriculum!;
const curriculum = readerCurricula[curriculumName];
if (!curriculum) throw new Error(`--curriculum: no curriculum ${curriculumName} in config.ts (${Object.keys(readerCurricula).join(", ")})`);
const levels: ReaderLevel[] = values.levels
  ? values.levels.split(",").map((name) => curriculum.levels.find((l) => l.name === name) ?? (() => { throw new Error(`--levels: no level ${name} in curriculum ${curriculumName} (${curriculum.levels.map((l) => l.name).join(", ")})`); })())
  : [...curriculum.levels];

const backend = await initBackend();
const t0 = Date.now();
const ctx = await readerContext(recipe, join(out, "tokenizer.bin"));
const tok = ctx.tok;
const promptOrder = curriculum.prompt;
const qaPrompt = promptOrder === "context-first" ? (question: string, context: string): string => renderTemplate(CONTEXT_FIRST_QA, { question, context }) : compactQaPrompt;
const t = templateIds(tok, qaPrompt);
const docs = splitDocs(ctx.data.corpus);
// Validation: a share of the train side's QA groups, never trained on (the test side stays untouched).
const isValidation = (group: string): boolean => new Rng([...group].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261)).next() < recipe.validationShare;
const qaTrain = ctx.data.qaTrain.filter((q) => !isValidation(q.group));
const qaValidation = ctx.data.qaTrain.filter((q) => isValidation(q.group));
const maxLen = recipe.model.seqLen;
console.log(`${describeBackend(backend)}; ${docs.length} docs, ${ctx.stream.length} tokens; qa train ${qaTrain.length}, validation ${qaValidation.length}; ${((Date.now() - t0) / 1000).toFixed(1)} s`);

/** One example of `task` at `level`, or undefined when a draw does not fit (the caller draws again). */
function exampleOf(task: ReaderTask, level: ReaderLevel, rng: Rng, babiTask: number): LmExample | undefined {
  switch (task) {
    case "repeat": return repeatTask(rng, t, rng.pick(level.repeatLengths), level.pool);
    case "induct": return inductionTask(rng, t, rng.pick(level.repeatLengths), level.pool);
    case "trepeat": return templateRepeatTask(rng, t, rng.pick(level.repeatLengths), level.pool);
    case "lookup": return lookupTask(rng, t, level.window, level.pool, level.reach);
    case "mlookup": return multiLookupTask(rng, t, level.window, level.pool, level.turns);
    case "mcloze": {
      const c = multiClozeTask(rng, docs, level.chars, level.turns, level.cloze);
      return c && multiTurnExample(tok, qaPrompt, c.context, c.qa, maxLen);
    }
    case "lm": return lmTask(rng, ctx.stream, recipe.lmTokens);
    case "cloze": {
      const c = clozeTask(rng, docs, level.chars, level.cloze);
      return c && qaExample(tok, qaPrompt, c.question, c.context, c.answer, maxLen);
    }
    case "qa": {
      const q = realQaTask(rng, qaTrain, level.chars);
      return qaExample(tok, qaPrompt, q.question, q.context, q.answer, maxLen);
    }
    case "squad": {
      const q = realQaTask(rng, ctx.reading.squadTrain, level.chars || recipe.maxContextChars);
      return qaExample(tok, qaPrompt, q.question, q.context, q.answer, maxLen);
    }
    case "mbabi1":
    case "bind":
    case "bind2": {
      const c = babiAllPersonsTask(rng, ctx.reading.babiTrain.get(1)!, task !== "mbabi1", task === "bind2" ? 2 : Infinity, ctx.reading.isBabiHeldOut);
      return c && multiTurnExample(tok, qaPrompt, c.context, c.qa, maxLen);
    }
    case "babi1":
    case "babi": {
      const q = babiItem(rng.pick(ctx.reading.babiTrain.get(task === "babi1" ? 1 : babiTask)!));
      return qaExample(tok, qaPrompt, q.question, q.context, q.answer, maxLen);
    }
  }
}

function examplesOf(task: ReaderTask, level: ReaderLevel, rng: Rng, n: number): LmExample[] {
  const out: LmExample[] = [];
  // One bAbI task per batch: its rows are of like length, so little of the batch is padding.
  const babiTask = task === "babi" ? rng.int(1, 20) : 1;
  for (let tries = 0; out.length < n; tries++) {
    if (tries > n * 50) throw new Error(`level ${level.name}: task ${task} drew ${out.length} of ${n} examples in ${tries} tries`);
    const e = exampleOf(task, level, rng, babiTask);
    if (e) out.push(e);
  }
  return out;
}

function batchAt(level: ReaderLevel, step: number): { task: ReaderTask; examples: LmExample[] } {
  const rng = stepRng(seed, step);
  const names = Object.keys(level.mix) as ReaderTask[];
  let r = rng.next() * names.reduce((n, k) => n + level.mix[k]!, 0);
  const task = names.find((k) => (r -= level.mix[k]!) < 0) ?? names[names.length - 1]!;
  return { task, examples: examplesOf(task, level, rng, level.batch) };
}

/** Share of examples whose every scored token is the argmax (teacher forcing). */
function exactShare(trainer: FullTrainer, examples: readonly LmExample[]): number {
  let exact = 0;
  for (let at = 0; at < examples.length; at += 32) {
    const part = examples.slice(at, at + 32);
    const b = makeLmBatch(part);
    const logits = trainer.forward(b.ids, b.batch, b.seq, b.rows);
    const values = logits.dataSync();
    logits.dispose();
    const V = recipe.tokenizer.vocabSize;
    let row = 0;
    for (const e of part) {
      const scored = e.scored ? e.scored.reduce((n, [a, z]) => n + z - a, 0) : e.ids.length - 1 - Math.max(0, e.lossFrom - 1);
      let ok = true;
      for (let k = 0; k < scored; k++, row++) {
        let best = 0;
        for (let v = 1; v < V; v++) if (values[row * V + v]! > values[row * V + best]!) best = v;
        if (best !== b.targets[row]) ok = false;
      }
      if (ok) exact++;
    }
  }
  return exact / examples.length;
}

const gateSets = new Map<string, LmExample[]>();
const gateSet = (level: ReaderLevel): LmExample[] => {
  if (!gateSets.has(level.name)) gateSets.set(level.name, examplesOf(level.gate!.task, level, new Rng(seed * 7919 + 1000 + curriculum.levels.indexOf(level)), recipe.gateSize));
  return gateSets.get(level.name)!;
};

/** Greedy answers to the validation QA pairs (cropped as the evaluation crops) and to natural cloze questions. */
function validate(trainer: FullTrainer): Record<string, number> {
  const model = trainer.toModelData();
  const rng = new Rng(seed + 2000);
  const qa = qaValidation.slice(0, 40).map((q) => realQaTask(rng, [q], recipe.maxContextChars));
  const cloze = Array.from({ length: 16 }, () => { for (;;) { const c = clozeTask(rng, docs, recipe.maxContextChars); if (c) return c; } });
  const res: Record<string, number> = {};
  const withAnswers = (q: { question: string; context: string; answer: string }) => ({ ...q, answers: [q.answer] });
  const babi1 = ctx.reading.babiValidation.get(1)!.slice(0, 150).map(babiItem).map(withAnswers);
  const babi2 = ctx.reading.babiValidation.get(2)!.slice(0, 50).map(babiItem).map(withAnswers);
  const squad = ctx.reading.squadValidation.slice(0, 60).map((q) => ({ ...q, context: cropAroundAnswers(q.context, q.answers, recipe.maxContextChars) }));
  for (const [name, items] of [["babi1", babi1], ["babi2", babi2], ["squad", squad]] as const) {
    const answers = greedyAnswers(model, tok, items.map((q) => qaPrompt(q.question, q.context)));
    res[`${name}_strict`] = items.filter((q, i) => isKnownCorrect(answers[i]!, goldAnswers(q.answers, "strict"), "strict")).length / items.length;
    res[`${name}_em`] = items.filter((q, i) => q.answers.some((a) => squadExactMatch(answers[i]!, a))).length / items.length;
    console.log(`  ${name}: ${items.slice(0, 3).map((q, i) => `${JSON.stringify(q.answer)} -> ${JSON.stringify(answers[i])}`).join("; ")}`);
  }
  for (const [name, items] of [["qa", qa], ["cloze", cloze]] as const) {
    const answers = greedyAnswers(model, tok, items.map((q) => qaPrompt(q.question, q.context)));
    res[`${name}_em`] = items.filter((q, i) => answers[i]!.trim() === q.answer).length / items.length;
    res[`${name}_strict`] = items.filter((q, i) => isKnownCorrect(answers[i]!, goldAnswers([q.answer], "strict"), "strict")).length / items.length;
    res[`${name}_2024_08`] = items.filter((q, i) => isKnownCorrect(answers[i]!, goldAnswers([q.answer], "2024-08"), "2024-08")).length / items.length;
    res[`${name}_empty`] = answers.filter((a) => !a.trim()).length / items.length;
    if (name === "qa") console.log(`  e.g. ${items.slice(0, 4).map((q, i) => `${JSON.stringify(q.answer)} -> ${JSON.stringify(answers[i])}`).join("; ")}`);
  }
  return res;
}

interface CurriculumState {
  level: string;
  levelStart: number;
  passes: number;
  promotions: { level: string; step: number; reason: string }[];
}

const config: LlamaConfig = { arch: "llama", ...recipe.model, nKvHeads: recipe.model.nHeads, vocabSize: recipe.tokenizer.vocabSize, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
// The runner sets the rate of each step itself (constant within a level, cosine in a decaying one).
const optim = { ...recipe.optim, minLrRatio: 1, totalSteps: 1 };
const ckpt = checkpointDir(out);
const resumed = recoverCheckpoint(ckpt);
const loaded = resumed ? FullTrainer.load(ckpt, optim) : undefined;
const trainer = loaded?.trainer ?? new FullTrainer(initLlama(config, seed), optim);
let state: CurriculumState = (loaded?.state.curriculum as CurriculumState | undefined) ?? { level: levels[0]!.name, levelStart: 0, passes: 0, promotions: [] };
const jump = values["from-level"] ?? (levels.some((l) => l.name === state.level) ? undefined : levels[0]!.name);
if (jump && jump !== state.level) {
  if (!levels.some((l) => l.name === jump)) throw new Error(`--from-level: no level ${jump} among ${levels.map((l) => l.name).join(", ")}`);
  state.promotions.push({ level: state.level, step: trainer.step, reason: `left for ${jump} by --from-level` });
  state = { ...state, level: jump, levelStart: trainer.step, passes: 0 };
}
const logPath = join(out, "log.jsonl");
const evalPath = join(out, "eval.jsonl");
// Rows written after the checkpoint by a killed run are dropped, so the logs read as one run.
// Tokens seen so far come from the kept log rows.
let tokensSeen = 0;
for (const path of [logPath, evalPath]) {
  if (!existsSync(path)) continue;
  // A torn last line (a kill mid-write) is dropped with a warning.
  const kept = keepLogRowsUpTo(path, trainer.step);
  if (path === logPath) tokensSeen = kept.reduce((n, row) => n + Number(row.tokens), 0);
}
console.log(`curriculum ${curriculumName}, prompt ${promptOrder}`);
console.log(`${resumed ? `resumed at step ${trainer.step}, level ${state.level}` : "new model"}: ${trainer.parameterCount} parameters; levels ${levels.map((l) => l.name).join(" > ")}`);

let stop = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => (stop = true));
// A checkpoint continues only under the curriculum it was trained with (early checkpoints recorded only the prompt).
if (loaded) {
  const name = loaded.state.curriculumName as string | undefined;
  const prompt = (loaded.state.prompt as string | undefined) ?? "question-first";
  if (name ? name !== curriculumName : prompt !== promptOrder) throw new Error(`${ckpt} was trained under ${name ? `curriculum ${name}` : `the ${prompt} prompt`}, not curriculum ${curriculumName}: pass its --curriculum or a new --out`);
}
const save = (): void => trainer.save(ckpt, { seed, prompt: promptOrder, curriculumName, curriculum: state });
let done = false;
while (!stop && Date.now() < deadline && trainer.step < stopAt) {
  const index = levels.findIndex((l) => l.name === state.level);
  const level = levels[index]!;
  const inLevel = trainer.step - state.levelStart;
  if (inLevel >= level.maxSteps) {
    state.promotions.push({ level: level.name, step: trainer.step, reason: `max steps (${level.maxSteps})` });
    if (index + 1 >= levels.length) {
      done = true;
      break;
    }
    state = { ...state, level: levels[index + 1]!.name, levelStart: trainer.step, passes: 0 };
    console.log(`level ${level.name} ends at its ${level.maxSteps} steps; now ${state.level}`);
    continue;
  }
  const progress = inLevel / level.maxSteps;
  const peak = level.learningRate ?? recipe.optim.learningRate;
  trainer.optim.learningRate = level.decay ? peak * (level.decay.floor + (1 - level.decay.floor) * 0.5 * (1 + Math.cos(Math.PI * progress))) : peak;
  const { task, examples } = batchAt(level, trainer.step);
  const r = trainer.trainStep(makeLmBatch(examples));
  tokensSeen += r.tokens;
  appendFileSync(logPath, JSON.stringify({ step: r.step, level: level.name, task, loss: +r.loss.toFixed(4), lr: +r.lr.toExponential(3), gradNorm: +r.gradNorm.toFixed(3), tokens: r.tokens, ms: Math.round(r.ms) }) + "\n");
  if (r.step % 25 === 0) console.log(`step ${r.step} ${level.name} ${task} loss ${r.loss.toFixed(3)} ${Math.round(r.ms)} ms ${Math.round((r.tokens * 1000) / r.ms)} tok/s, ${(tokensSeen / 1e6).toFixed(2)}M tokens`);
  if (level.gate && r.step % recipe.gateEvery === 0) {
    const share = exactShare(trainer, gateSet(level));
    appendFileSync(evalPath, JSON.stringify({ step: r.step, tokens: tokensSeen, level: level.name, gate: level.gate.task, exact: share }) + "\n");
    console.log(`gate @${r.step} ${level.name}: ${level.gate.task} exact ${share.toFixed(3)} (needs ${level.gate.share})`);
    state.passes = share >= level.gate.share ? state.passes + 1 : 0;
    if (state.passes >= 2) {
      state.promotions.push({ level: level.name, step: r.step, reason: `gate ${share.toFixed(3)}` });
      if (index + 1 >= levels.length) done = true;
      else state = { ...state, level: levels[index + 1]!.name, levelStart: r.step, passes: 0 };
      console.log(`promoted at step ${r.step}: now ${state.level}`);
    }
  }
  if (r.step % recipe.validateEvery === 0 && (level.chars > 0 || level.mix.babi1 !== undefined || index >= levels.length - 1)) {
    const v = validate(trainer);
    appendFileSync(evalPath, JSON.stringify({ step: r.step, tokens: tokensSeen, level: level.name, validation: v }) + "\n");
    console.log(`validate @${r.step}: ${Object.entries(v).map(([k, x]) => `${k} ${x.toFixed(3)}`).join(", ")}`);
  }
  if (r.step % recipe.checkpointEvery === 0) save();
  if (done) break;
  // Lets a signal handler run between steps.
  await new Promise((resume) => setImmediate(resume));
}
save();
if (done) {
  const v = validate(trainer);
  appendFileSync(evalPath, JSON.stringify({ step: trainer.step, tokens: tokensSeen, level: "final", validation: v }) + "\n");
  const final = join(out, "final");
  mkdirSync(final, { recursive: true });
  saveLlama2c(join(final, "model.bin"), trainer.toModelData());
  copyFileSync(join(out, "tokenizer.bin"), join(final, "tokenizer.bin"));
  console.log(`done at step ${trainer.step}, ${(tokensSeen / 1e6).toFixed(2)}M tokens: ${final}`);
} else console.log(`stopped at step ${trainer.step} (level ${state.level}); run the same command again to continue`);
