/**
 * Exports the reader's train and test text as token ids (the shipped BPE 4096 tokenizer) to JSONL, so a
 * throwaway PyTorch prototype (prototype/proto.py) trains on exactly what the TS recipe would: the same
 * split (src/data/reader-data.ts: nothing of the held-apart ASQA rows or HotpotQA file), the same compact
 * TASK_QA prompt and the same crops as recipes/reader/evaluate.ts. A measurement tool, not the recipe.
 *
 *   node --import tsx recipes/reader/prototype/export.ts --out /work/reader-proto/data [--crops 4]
 *
 * Writes vocab.json (pieces), template.json (prompt pieces as ids), corpus.jsonl (train-side documents as
 * the ids they have after "CONTEXT:"), qa_train.jsonl (question/context/answer ids, several random crops
 * each), hotpot_test.jsonl and bench_{train,test}.jsonl (full prompt ids, gold lists for the 2024-08 and
 * strict metrics, sample_id for cluster bootstraps).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadReaderData } from "../../../src/data/reader-data.ts";
import { cropWindow } from "../../../src/data/synthetic.ts";
import type { BenchmarkRow } from "../../../src/data/benchmark.ts";
import { goldAnswers } from "../../../src/eval/scoring.ts";
import { BpeTokenizer } from "../../../src/model/bpe.ts";
import { compactQaPrompt } from "../../../src/pipeline/compact.ts";
import { dataPath } from "../../../src/util/paths.ts";
import { Rng } from "../../../src/util/rng.ts";
import { readerRecipe as recipe } from "../config.ts";

const { values } = parseArgs({ options: { out: { type: "string", default: "/work/reader-proto/data" }, crops: { type: "string", default: "4" } } });
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });
const tok = BpeTokenizer.load(dataPath("models", "reader", "tokenizer.bin"), recipe.tokenizer.vocabSize);
const data = await loadReaderData();
const cont = (s: string): number[] => tok.encodeContinuation(s);
const prefix = tok.encode("Trustworthy QA Task, else Not Provided.\nQUESTION:", { bos: true });
const mid = cont("\nCONTEXT:");
const suffix = cont("\nANSWER:");
const build = (q: string, c: string): number[] => [...prefix, ...cont(" " + q), ...mid, ...cont(" " + c), ...suffix];
// The pieces concatenate to exactly the ids of the real prompt (the chunk rule never merges across a space).
for (const q of data.qaTrain.slice(0, 50)) {
  const c = cropWindow(q.context, q.answer, recipe.maxContextChars);
  const a = build(q.question, c).join(",");
  const b = tok.encode(compactQaPrompt(q.question, c), { bos: true }).join(",");
  if (a !== b) throw new Error(`prompt pieces differ from the real encoding for ${q.question}`);
}
const jsonl = (name: string, rows: unknown[]): void => writeFileSync(join(out, name), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
writeFileSync(join(out, "vocab.json"), JSON.stringify(Array.from({ length: tok.vocabSize }, (_, i) => tok.piece(i))));
writeFileSync(join(out, "template.json"), JSON.stringify({ prefix, mid, suffix, eos: tok.eosId, bos: tok.bosId, newline: cont("\n")[0] }));
jsonl("corpus.jsonl", data.corpus.map((d) => ({ ids: cont(" " + d) })));
const rng = new Rng(7);
const crops = Number(values.crops);
jsonl("qa_train.jsonl", data.qaTrain.map((q) => ({
  source: q.source,
  q: cont(" " + q.question),
  a: cont(" " + q.answer),
  ctx: Array.from({ length: crops }, (_, i) => cont(" " + cropWindow(q.context, q.answer, recipe.maxContextChars, i === 0 ? undefined : rng))),
})));
jsonl("hotpot_test.jsonl", data.qaTest.map((q) => ({ group: q.group, prompt: build(q.question, cropWindow(q.context, q.answer, recipe.maxContextChars)), answer: q.answer })));
// evaluate.ts's crop: the passage around the first gold answer it holds (the same window for both questions).
const crop = (r: BenchmarkRow): string => cropWindow(r.context, r.pos_answer.find((a) => r.context.includes(a)) ?? "", recipe.maxContextChars);
const bench = (rows: readonly BenchmarkRow[]) => rows.map((r) => ({
  sample_id: r.sample_id,
  known: build(r.pos_query, crop(r)),
  unknown: build(r.neg_query, crop(r)),
  gold08: goldAnswers(r.pos_answer, "2024-08"),
  pos_answer: r.pos_answer,
  context: crop(r),
}));
jsonl("bench_train.jsonl", bench(data.benchmarkTrain));
jsonl("bench_test.jsonl", bench(data.benchmarkTest));
console.log(`corpus ${data.corpus.length}, qa train ${data.qaTrain.length} (${data.qaTrain.filter((q) => q.source === "asqa").length} asqa), hotpot test ${data.qaTest.length}, bench train ${data.benchmarkTrain.length}, test ${data.benchmarkTest.length}`);
