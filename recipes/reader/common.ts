/**
 * Pieces the reader recipe's training and evaluation scripts share: the tokenizer, example encoding,
 * seeded batches as a function of (seed, step), and greedy answers with the typed-array decoder.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadReaderData, type ReaderData } from "../../src/data/reader-data.ts";
import { BpeTokenizer, saveBpe, trainBpe } from "../../src/model/bpe.ts";
import { Decoder } from "../../src/model/decode.ts";
import { argmax } from "../../src/model/sampler.ts";
import type { LlamaModelData } from "../../src/model/types.ts";
import type { LmExample } from "../../src/train/pretrain.ts";
import { Rng } from "../../src/util/rng.ts";
import type { ReaderRecipe } from "./config.ts";

export interface ReaderContext {
  data: ReaderData;
  tok: BpeTokenizer;
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
  return { data, tok, stream };
}

/** Prompt with BOS, then answer and EOS; loss on the answer and EOS. Undefined when it does not fit. */
/** A prompt and its target continuation (with its leading space). */
export interface PromptAnswer {
  prompt: string;
  answer: string;
}

export function encodeExample(tok: BpeTokenizer, ex: PromptAnswer, maxLen: number): LmExample | undefined {
  const prompt = tok.encode(ex.prompt, { bos: true });
  const ids = [...prompt, ...tok.encodeContinuation(ex.answer), tok.eosId];
  return ids.length <= maxLen ? { ids, lossFrom: prompt.length } : undefined;
}

/** A per-step generator, independent of every other step, so a resumed run draws the same batches. */
export const stepRng = (seed: number, step: number): Rng => new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);

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

export const checkpointDir = (out: string): string => join(out, "checkpoint");
