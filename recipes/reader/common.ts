/**
 * Pieces the reader recipe's training and evaluation scripts share: the tokenizer, example encoding,
 * seeded batches as a function of (seed, step), and greedy answers with the typed-array decoder.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { babiContext, readBabiSplit, type BabiQuestion } from "../../src/data/babi.ts";
import { loadReaderData, type ReaderData, type SpanQa } from "../../src/data/reader-data.ts";
import { babiBenchmarkSides } from "../../src/data/sources.ts";
import { readSquadSplit, type SquadArticle } from "../../src/data/squad.ts";
import { BpeTokenizer, saveBpe, trainBpe } from "../../src/model/bpe.ts";
import { Decoder } from "../../src/model/decode.ts";
import { argmax } from "../../src/model/sampler.ts";
import type { LlamaModelData } from "../../src/model/types.ts";
import type { LmExample } from "../../src/train/pretrain.ts";
import { Rng } from "../../src/util/rng.ts";
import type { ReaderRecipe } from "./config.ts";

/** Reading supervision from the real benchmarks' train sides (validation sides kept apart, never trained on). */
export interface ReadingData {
  /** bAbI train side by task (1-20; every tenth story is the validation side). */
  babiTrain: Map<number, BabiQuestion[]>;
  babiValidation: Map<number, BabiQuestion[]>;
  /** SQuAD questions of the train articles (first answer), and of the validation articles (all answers). */
  squadTrain: SpanQa[];
  squadValidation: (SpanQa & { answers: string[]; id: string })[];
  /** Train-article paragraphs (LM corpus, cloze passages). */
  squadParagraphs: string[];
  /** Whether a (passage, question) pair is one of bAbI task 1's validation benchmark rows (known or unknown). */
  isBabiHeldOut: (context: string, question: string) => boolean;
}

export function loadReadingData(): ReadingData {
  const babiTrain = new Map<number, BabiQuestion[]>();
  const babiValidation = new Map<number, BabiQuestion[]>();
  for (let task = 1; task <= 20; task++) {
    const { train, validation } = readBabiSplit(task);
    babiTrain.set(task, train);
    babiValidation.set(task, validation);
  }
  const { train, validation } = readSquadSplit();
  const spans = (articles: SquadArticle[]) =>
    articles.flatMap((a) => a.paragraphs.flatMap((p, i) => p.qas.map((q) => ({ question: q.question, context: p.context, answer: q.answers[0]!.text, answers: q.answers.map((x) => x.text), id: q.id, source: "squad" as const, group: `${a.title}#${i}` }))));
  const heldOut = new Set(babiBenchmarkSides({ task: 1 }).validation.rows.flatMap((r) => [`${r.context}\u0000${r.pos_query}`, `${r.context}\u0000${r.neg_query}`]));
  const isBabiHeldOut = (context: string, question: string): boolean => heldOut.has(`${context}\u0000${question}`);
  return { babiTrain, babiValidation, squadTrain: spans(train), squadValidation: spans(validation), squadParagraphs: train.flatMap((a) => a.paragraphs.map((p) => p.context)), isBabiHeldOut };
}

/** A bAbI question as the reader sees it: the statements before it as the passage. */
export const babiItem = (q: BabiQuestion): { question: string; context: string; answer: string } => ({ question: q.question, context: babiContext(q), answer: q.answer });

export interface ReaderContext {
  data: ReaderData;
  reading: ReadingData;
  tok: BpeTokenizer;
  /** The corpus as one token stream, documents separated by BOS. */
  stream: Int32Array;
}

/** Loads the data and the tokenizer (training and saving it to `tokenizerPath` the first time). */
export async function readerContext(recipe: ReaderRecipe, tokenizerPath: string): Promise<ReaderContext> {
  const data = await loadReaderData();
  const reading = loadReadingData();
  // The corpus (LM rows, cloze passages, the tokenizer) gains SQuAD's train articles and a sample of
  // bAbI stories, so that their words are whole pieces.
  const babiSample = [...reading.babiTrain.values()].flatMap((qs) => qs.filter((_, i) => i % 50 === 0).map((q) => babiContext(q)));
  data.corpus.push(...reading.squadParagraphs, ...babiSample);
  if (!existsSync(tokenizerPath)) saveBpe(tokenizerPath, trainBpe(data.corpus, recipe.tokenizer));
  const tok = BpeTokenizer.load(tokenizerPath, recipe.tokenizer.vocabSize);
  const parts = data.corpus.map((d) => tok.encode(d, { bos: true }));
  const stream = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    stream.set(p, at);
    at += p.length;
  }
  return { data, reading, tok, stream };
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

/**
 * The prompt.json a reader ships with (src/model/prompt-format.ts): the pipeline's compact prompts,
 * question first (ktu-compact-v1) or passage first (ktu-compact-cf-v1, CONTEXT_FIRST_QA's order for
 * every template), as the curriculum trained it.
 */
export function readerPromptFormat(order: "question-first" | "context-first"): Record<string, unknown> {
  const slots = (task: string, query: string): string => (order === "context-first" ? `${task}\nCONTEXT: {context}\n${query}: {question}\nANSWER:` : `${task}\n${query}: {question}\nCONTEXT: {context}\nANSWER:`);
  return {
    format: order === "context-first" ? "ktu-compact-cf-v1" : "ktu-compact-v1",
    templates: {
      qa: slots("Trustworthy QA Task, else Not Provided.", "QUESTION"),
      cognition: slots("Cognition Assessment Task.", "QUERY"),
      prompt_sensitive: slots("Trustworthy QA Task, else Not Provided. {instruction}", "QUESTION"),
      checking_target: " {answer}\nCHECKING: task<{task}> instruction<{instruction}>",
    },
    labels: { sufficient: " Sufficient", insufficient: " Insufficient", refusal: " Not Provided" },
    context_chars: 600,
    max_len: 320,
    max_new_tokens: 24,
    stop: ["\n"],
    model: { name: "reader", origin: "trained from scratch by recipes/reader", card: "MODEL_CARD.md" },
  };
}
