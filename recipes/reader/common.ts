/**
 * Pieces the reader recipe's training and evaluation scripts share: the tokenizer, example encoding,
 * seeded batches as a function of (seed, step), and greedy answers with the typed-array decoder.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadReaderData, type ReaderData } from "../../src/data/reader-data.ts";
import { drawTask, wordPools, type MixtureSource, type TaskExample, type TaskName, type WordPools } from "../../src/data/synthetic.ts";
import { BpeTokenizer, saveBpe, trainBpe } from "../../src/model/bpe.ts";
import { Decoder } from "../../src/model/decode.ts";
import { argmax } from "../../src/model/sampler.ts";
import type { LlamaModelData } from "../../src/model/types.ts";
import { makeLmBatch, type LmBatch, type LmExample } from "../../src/train/pretrain.ts";
import { compactQaPrompt } from "../../src/pipeline/compact.ts";
import { Rng } from "../../src/util/rng.ts";
import type { ReaderRecipe, ReaderStage } from "./config.ts";

export interface ReaderContext {
  data: ReaderData;
  tok: BpeTokenizer;
  pools: WordPools;
  /** The corpus as one token stream, documents separated by BOS. */
  stream: Int32Array;
}

/** Loads the data and the tokenizer (training and saving it to `tokenizerPath` the first time). */
export async function readerContext(recipe: ReaderRecipe, tokenizerPath: string): Promise<ReaderContext> {
  const data = await loadReaderData();
  if (!existsSync(tokenizerPath)) saveBpe(tokenizerPath, trainBpe(data.corpus, recipe.tokenizer));
  const tok = BpeTokenizer.load(tokenizerPath, recipe.tokenizer.vocabSize);
  const parts = data.corpus.map((d) => tok.encode(d, { bos: true }));
  const stream = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    stream.set(p, at);
    at += p.length;
  }
  return { data, tok, pools: wordPools(data.corpus), stream };
}

/** Prompt with BOS, then answer and EOS; loss on the answer and EOS. Undefined when it does not fit. */
export function encodeExample(tok: BpeTokenizer, ex: TaskExample, maxLen: number): LmExample | undefined {
  const prompt = tok.encode(ex.prompt, { bos: true });
  const ids = [...prompt, ...tok.encodeContinuation(ex.answer), tok.eosId];
  return ids.length <= maxLen ? { ids, lossFrom: prompt.length } : undefined;
}

/** A per-step generator, independent of every other step, so a resumed run draws the same batches. */
export const stepRng = (seed: number, step: number): Rng => new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);

export function stageAt(recipe: ReaderRecipe, step: number): ReaderStage {
  let end = 0;
  for (const s of recipe.stages) if (step < (end += s.steps)) return s;
  return recipe.stages[recipe.stages.length - 1]!;
}

export const totalSteps = (recipe: ReaderRecipe): number => recipe.stages.reduce((n, s) => n + s.steps, 0);

export function mixtureSource(recipe: ReaderRecipe, ctx: ReaderContext): MixtureSource {
  return { pools: ctx.pools, qa: ctx.data.qaTrain, maxContextChars: recipe.maxContextChars, qaPrompt: compactQaPrompt };
}

/** The batch of global step `step`: one task drawn by the stage's weights, then B examples of it. */
export function batchAt(recipe: ReaderRecipe, ctx: ReaderContext, step: number): { task: string; batch: LmBatch } {
  const rng = stepRng(recipe.seed, step);
  const mixture = stageAt(recipe, step).mixture;
  const names = Object.keys(mixture) as (TaskName | "lm")[];
  const total = names.reduce((n, k) => n + (mixture[k] ?? 0), 0);
  let r = rng.next() * total;
  const task = names.find((k) => (r -= mixture[k] ?? 0) < 0) ?? names[names.length - 1]!;
  const size = recipe.batchSize[task];
  const examples: LmExample[] = [];
  if (task === "lm") {
    const n = recipe.lmWindow + 1;
    for (let i = 0; i < size; i++) {
      const start = rng.int(0, ctx.stream.length - n);
      examples.push({ ids: Array.from(ctx.stream.subarray(start, start + n)), lossFrom: 0 });
    }
  } else {
    const source = mixtureSource(recipe, ctx);
    while (examples.length < size) {
      const e = encodeExample(ctx.tok, drawTask(rng, { [task]: 1 }, source), recipe.model.seqLen);
      if (e) examples.push(e);
    }
  }
  return { task, batch: makeLmBatch(examples) };
}

/** Greedy continuation of each prompt (stops at EOS or newline), as text. */
export function greedyAnswers(model: LlamaModelData, tok: BpeTokenizer, prompts: readonly string[], maxNew = 24): string[] {
  const dec = new Decoder(model);
  const newline = tok.encodeContinuation("\n")[0];
  return prompts.map((p) => {
    const ids = tok.encode(p, { bos: true }).slice(-(model.config.seqLen - maxNew));
    const cache = dec.newCache(Math.min(model.config.seqLen, ids.length + maxNew));
    let logits = dec.prefill(cache, ids);
    const out: number[] = [];
    for (let i = 0; i < maxNew && cache.length < cache.capacity; i++) {
      const id = argmax(logits);
      if (id === tok.eosId || id === newline) break;
      out.push(id);
      logits = dec.step(cache, id);
    }
    cache.release();
    return tok.decode(out, ids[ids.length - 1]!);
  });
}

/** Fixed curriculum evaluation sets: synthetic tasks from seed + 1000, span QA on the held-apart file. */
export function evalSets(recipe: ReaderRecipe, ctx: ReaderContext): Record<string, TaskExample[]> {
  const rng = new Rng(recipe.seed + 1000);
  const source = mixtureSource(recipe, ctx);
  const sets: Record<string, TaskExample[]> = {};
  for (const task of ["copy", "recall", "member"] as const) sets[task] = Array.from({ length: recipe.evalSize }, () => drawTask(rng, { [task]: 1 }, source));
  const heldOut: MixtureSource = { ...source, qa: ctx.data.qaTest };
  sets["span-heldout"] = Array.from({ length: recipe.evalSize * 2 }, () => drawTask(rng, { span: 1 }, heldOut));
  sets["span-train"] = Array.from({ length: recipe.evalSize }, () => drawTask(rng, { span: 1 }, source));
  return sets;
}

/** Exact match (trimmed) of greedy answers per evaluation set. */
export function curriculumAccuracy(model: LlamaModelData, tok: BpeTokenizer, sets: Record<string, TaskExample[]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, examples] of Object.entries(sets)) {
    const answers = greedyAnswers(model, tok, examples.map((e) => e.prompt));
    out[name] = examples.filter((e, i) => answers[i]!.trim() === e.answer.trim()).length / examples.length;
  }
  return out;
}

export const checkpointDir = (out: string): string => join(out, "checkpoint");
