/**
 * The acceptance checks of a reader base (issue 9), on held-apart data only:
 * 1. extractive QA exact match on the held-apart HotpotQA file (Wilson 95% interval);
 * 2. per seed, stage 1 (full fine-tune on the benchmark's train rows, compact cognition prompt): test
 *    classification AUROC of log P(Sufficient) - log P(Insufficient), against the word-overlap score on
 *    the same rows; then the QA arms base / stage 1 / stage 1 -> stage 2 with known and unknown accuracy.
 * Every number comes with a 95% cluster-bootstrap interval over ASQA ambiguous questions and with
 * collapse diagnostics (share of the majority output; AUROC against 0.5).
 * Stage 2 here is the compact QA variant (HotpotQA span answers under the compact TASK_QA prompt), not
 * the paper's prompt-sensitive data with CHECKING, which does not fit a 320-token model.
 *
 *   nice -n 10 node --import tsx recipes/reader/evaluate.ts --model DIR/model.bin --tokenizer DIR/tokenizer.bin
 *        [--seeds 1,2,3] [--epochs 4] [--out out/reader-eval.json]
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { BenchmarkRow } from "../../src/data/benchmark.ts";
import { cropWindow } from "../../src/data/synthetic.ts";
import { COMPACT_LABELS, compactCognitionPrompt, compactQaPrompt } from "../../src/pipeline/compact.ts";
import { auroc } from "../../src/eval/calibration.ts";
import { ACCEPTANCE_SCHEMA, checkAcceptance } from "../../src/pipeline/acceptance.ts";
import { goldAnswers, isKnownCorrect, isRefusal } from "../../src/eval/scoring.ts";
import { initBackend } from "../../src/model/backend.ts";
import { BpeTokenizer } from "../../src/model/bpe.ts";
import { Decoder } from "../../src/model/decode.ts";
import { loadLlama2c } from "../../src/model/llama2c.ts";
import type { LlamaModelData } from "../../src/model/types.ts";
import { FullTrainer, makeLmBatch, type LmExample } from "../../src/train/pretrain.ts";
import { writeJsonAtomic } from "../../src/util/fs.ts";
import { Rng } from "../../src/util/rng.ts";
import { encodeExample, greedyAnswers, readerContext, type PromptAnswer } from "./common.ts";
import { readerRecipe as recipe } from "./config.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    tokenizer: { type: "string" },
    seeds: { type: "string", default: "1,2,3" },
    epochs: { type: "string", default: "4" },
    lr: { type: "string", default: "1e-3" },
    "qa-limit": { type: "string", description: "held-apart QA questions to score (default all)" },
    out: { type: "string", default: "out/reader-eval.json" },
    acceptance: { type: "string", description: "also write the report's acceptance.json (schema ktu-reader-acceptance/1) here, e.g. data/models/reader/acceptance.json" },
  },
});
if (!values.model || !values.tokenizer) throw new Error("--model and --tokenizer are required");
await initBackend();
const base = loadLlama2c(resolve(values.model));
const ctx = await readerContext(recipe, resolve(values.tokenizer));
const tok: BpeTokenizer = ctx.tok;
const maxLen = base.config.seqLen;
const seeds = values.seeds!.split(",").map(Number);
const epochs = Number(values.epochs);

const wilson = (k: number, n: number): [number, number] => {
  const z = 1.96;
  const p = k / n;
  const centre = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
};

/** 95% percentile interval of `stat` over resampled groups (2,000 draws, seeded). */
function clusterCi<T>(items: readonly T[], group: (t: T) => string, stat: (ts: T[]) => number | null): [number, number] {
  const groups = new Map<string, T[]>();
  for (const t of items) groups.set(group(t), [...(groups.get(group(t)) ?? []), t]);
  const keys = [...groups.keys()];
  const rng = new Rng(12345);
  const draws: number[] = [];
  for (let d = 0; d < 2000; d++) {
    const sample = Array.from({ length: keys.length }, () => groups.get(keys[rng.int(0, keys.length - 1)]!)!).flat();
    const v = stat(sample);
    if (v !== null && Number.isFinite(v)) draws.push(v);
  }
  draws.sort((a, b) => a - b);
  return [draws[Math.floor(0.025 * draws.length)]!, draws[Math.floor(0.975 * draws.length)]!];
}

const aurocOf = (rows: { label: number; score: number }[]): number | null => auroc(rows.map((r) => r.label), rows.map((r) => r.score)).value;
const majorityShare = (outputs: readonly string[]): number => {
  const counts = new Map<string, number>();
  for (const o of outputs) counts.set(o.trim(), (counts.get(o.trim()) ?? 0) + 1);
  return Math.max(...counts.values()) / outputs.length;
};

// 1. Extractive QA on held-apart passages.
const qaItems = ctx.data.qaTest.slice(0, values["qa-limit"] ? Number(values["qa-limit"]) : undefined);
const qaAnswers = greedyAnswers(base, tok, qaItems.map((q) => compactQaPrompt(q.question, cropWindow(q.context, q.answer, recipe.maxContextChars))));
const em = qaItems.filter((q, i) => qaAnswers[i]!.trim() === q.answer.trim()).length;
const extractive = { n: qaItems.length, exactMatch: em / qaItems.length, wilson95: wilson(em, qaItems.length), majorityShare: majorityShare(qaAnswers), examples: qaItems.slice(0, 5).map((q, i) => ({ question: q.question, gold: q.answer, output: qaAnswers[i] })) };
console.log(`extractive QA (held-apart HotpotQA, n=${em}/${qaItems.length}): EM ${extractive.exactMatch.toFixed(3)} [${extractive.wilson95.map((x) => x.toFixed(3)).join(", ")}], majority output share ${extractive.majorityShare.toFixed(2)}`);

// The benchmark rows, cropped around the known answer (the same window for both questions of a row).
const crop = (r: BenchmarkRow): string => cropWindow(r.context, r.pos_answer.find((a) => r.context.includes(a)) ?? "", recipe.maxContextChars);
const cognitionRows = (rows: readonly BenchmarkRow[]) => rows.flatMap((r) => [
  { row: r, label: 1, prompt: compactCognitionPrompt(r.pos_query, crop(r)), answer: COMPACT_LABELS.sufficient },
  { row: r, label: 0, prompt: compactCognitionPrompt(r.neg_query, crop(r)), answer: COMPACT_LABELS.insufficient },
]);

// Word overlap: the share of a question's words (3+ letters) found in the passage.
const words = (s: string): string[] => s.toLowerCase().match(/[a-z0-9]{3,}/g) ?? [];
const overlapRows = cognitionRows(ctx.data.benchmarkTest).map((c) => {
  const passage = new Set(words(crop(c.row)));
  const q = words(c.label ? c.row.pos_query : c.row.neg_query);
  return { row: c.row, label: c.label, score: q.length ? q.filter((w) => passage.has(w)).length / q.length : 0 };
});
const overlap = { auroc: aurocOf(overlapRows), ci95: clusterCi(overlapRows, (r) => r.row.sample_id, aurocOf) };
console.log(`word-overlap AUROC on the same ${overlapRows.length} test classifications: ${overlap.auroc?.toFixed(3)} [${overlap.ci95.map((x) => x.toFixed(3)).join(", ")}]`);

function fineTune(model: LlamaModelData, examples: PromptAnswer[], seed: number): LlamaModelData {
  const encoded = examples.map((e) => encodeExample(tok, e, maxLen)).filter((e): e is LmExample => e !== undefined);
  const batch = 16;
  const perEpoch = Math.ceil(encoded.length / batch);
  const total = Math.max(1, Math.round(perEpoch * epochs));
  const trainer = new FullTrainer(model, { learningRate: Number(values.lr), warmupSteps: Math.max(1, Math.round(0.05 * total)), totalSteps: total, minLrRatio: 0.1, weightDecay: 0 });
  const rng = new Rng(seed);
  let order: number[] = [];
  for (let s = 0; s < total; s++) {
    if (s % perEpoch === 0) order = rng.shuffle(encoded.map((_, i) => i));
    const at = (s % perEpoch) * batch;
    trainer.trainStep(makeLmBatch(order.slice(at, at + batch).map((i) => encoded[i]!)));
  }
  const out = trainer.toModelData();
  trainer.dispose();
  return out;
}

/** Sum of log-probabilities of `answer` (and EOS) after `prompt`. */
function continuationLogprob(dec: Decoder, prompt: string, answer: string): number {
  const p = tok.encode(prompt, { bos: true });
  const a = [...tok.encodeContinuation(answer), tok.eosId];
  const ids = [...p, ...a].slice(-maxLen);
  const start = ids.length - a.length;
  const logits = dec.forwardAll(ids.slice(0, -1));
  const V = base.config.vocabSize;
  let sum = 0;
  for (let t = start - 1; t < ids.length - 1; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    sum += row[ids[t + 1]!]! - max - Math.log(z);
  }
  return sum;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/**
 * Known and unknown accuracy of greedy answers on the test rows: known under the seed's 2024-08 rule
 * (the bar) and under strict (the whole gold answer in the output); unknown = refused under
 * 2024-08; also the share of known questions refused (a reader should answer them).
 */
function scoreArm(rows: readonly BenchmarkRow[], known: readonly string[], unknown: readonly string[]) {
  const scored = rows.map((r, i) => ({ row: r, known: isKnownCorrect(known[i]!, goldAnswers(r.pos_answer, "2024-08"), "2024-08") ? 1 : 0, strict: isKnownCorrect(known[i]!, goldAnswers(r.pos_answer, "strict"), "strict") ? 1 : 0, knownRefused: isRefusal(known[i]!) ? 1 : 0, unknown: isRefusal(unknown[i]!) ? 1 : 0 }));
  type S = (typeof scored)[number];
  const field = (f: "known" | "strict" | "knownRefused" | "unknown") => (ts: S[]) => mean(ts.map((t) => t[f]));
  const withCi = (f: "known" | "strict" | "knownRefused" | "unknown") => ({ value: field(f)(scored), ci95: clusterCi(scored, (t) => t.row.sample_id, field(f)) });
  return { known: withCi("known"), knownStrict: withCi("strict"), knownRefused: withCi("knownRefused"), unknown: withCi("unknown"), majorityShare: majorityShare([...known, ...unknown]), sample: rows.slice(0, 4).map((r, i) => ({ question: r.pos_query, gold: r.pos_answer, known: known[i], unknown: unknown[i] })) };
}

function qaArm(model: LlamaModelData) {
  const rows = ctx.data.benchmarkTest;
  const known = greedyAnswers(model, tok, rows.map((r) => compactQaPrompt(r.pos_query, crop(r))));
  const unknown = greedyAnswers(model, tok, rows.map((r) => compactQaPrompt(r.neg_query, crop(r))));
  return scoreArm(rows, known, unknown);
}

type Arm = ReturnType<typeof qaArm>;
const fmt = (m: { value: number; ci95: [number, number] }): string => `${m.value.toFixed(3)} [${m.ci95.map((x) => x.toFixed(2)).join(", ")}]`;
const describeArm = (a: Arm): string => `known ${fmt(a.known)} (strict ${fmt(a.knownStrict)}), known refused ${fmt(a.knownRefused)}, unknown ${fmt(a.unknown)}, majority output ${a.majorityShare.toFixed(2)}`;

// Non-reading answers on the same rows and crops: what the 2024-08 rule credits without reading.
const passageWords = (r: BenchmarkRow, n: number): string => " " + crop(r).replace(/^This is a passage about [^\n]*\n/, "").replace(/^\.\.\. /, "").split(/\s+/).slice(0, n).join(" ");
const baselines = {
  firstFiveWords: scoreArm(ctx.data.benchmarkTest, ctx.data.benchmarkTest.map((r) => passageWords(r, 5)), ctx.data.benchmarkTest.map((r) => passageWords(r, 5))),
  the: scoreArm(ctx.data.benchmarkTest, ctx.data.benchmarkTest.map(() => " the"), ctx.data.benchmarkTest.map(() => " the")),
};
console.log(`baseline "first 5 passage words": ${describeArm(baselines.firstFiveWords)}`);

const baseArm = qaArm(base);
console.log(`base: ${describeArm(baseArm)}`);
const perSeed = [];
const stage1Train = cognitionRows(ctx.data.benchmarkTrain).map((c) => ({ task: "cognition", prompt: c.prompt, answer: c.answer }));
const stage2Train = ctx.data.qaTrain.filter((q) => q.source === "hotpot").slice(0, 400).map((q) => ({ task: "qa", prompt: compactQaPrompt(q.question, cropWindow(q.context, q.answer, recipe.maxContextChars)), answer: ` ${q.answer}` }));
for (const seed of seeds) {
  const s1 = fineTune(base, stage1Train, seed);
  const dec = new Decoder(s1);
  const cls = cognitionRows(ctx.data.benchmarkTest).map((c) => {
    const diff = continuationLogprob(dec, c.prompt, COMPACT_LABELS.sufficient) - continuationLogprob(dec, c.prompt, COMPACT_LABELS.insufficient);
    return { row: c.row, label: c.label, score: 1 / (1 + Math.exp(-diff)) };
  });
  const predictedSufficient = cls.filter((c) => c.score > 0.5).length / cls.length;
  const classifier = { auroc: aurocOf(cls), ci95: clusterCi(cls, (c) => c.row.sample_id, aurocOf), accuracy: cls.filter((c) => (c.score > 0.5 ? 1 : 0) === c.label).length / cls.length, majorityShare: Math.max(predictedSufficient, 1 - predictedSufficient) };
  const stage1 = qaArm(s1);
  const stage12 = qaArm(fineTune(s1, stage2Train, seed));
  perSeed.push({ seed, classifier, stage1, stage12 });
  console.log(`seed ${seed}: stage-1 AUROC ${classifier.auroc?.toFixed(3)} [${classifier.ci95.map((x) => x.toFixed(2))}] (word overlap ${overlap.auroc?.toFixed(3)}), acc ${classifier.accuracy.toFixed(3)}, majority label share ${classifier.majorityShare.toFixed(2)}`);
  for (const [name, arm] of [["stage 1", stage1], ["stage 1->2", stage12]] as const) console.log(`  ${name}: ${describeArm(arm)}`);
}
const report = { model: values.model, modelBytes: readFileSync(resolve(values.model)).length, epochs, lr: Number(values.lr), testRows: ctx.data.benchmarkTest.length, extractive, overlap, baselines, base: baseArm, perSeed };
await writeJsonAtomic(resolve(values.out!), report);
if (values.acceptance) {
  // The report's table (src/pipeline/acceptance.ts): known under the 2024-08 rule, unknown = refused.
  const arm = (a: Arm) => ({ known: { value: a.known.value, ci: a.known.ci95 }, unknown: { value: a.unknown.value, ci: a.unknown.ci95 } });
  const acceptance = checkAcceptance({
    schema: ACCEPTANCE_SCHEMA,
    model: basename(values.model),
    model_sha256: createHash("sha256").update(readFileSync(resolve(values.model))).digest("hex"),
    generated: new Date().toISOString(),
    command: `recipes/reader/evaluate.ts --seeds ${values.seeds} --epochs ${epochs} --lr ${values.lr}`,
    test: { rows: ctx.data.benchmarkTest.length, clusters: new Set(ctx.data.benchmarkTest.map((r) => r.sample_id)).size, description: "corrected filter, split seed 42, passages cropped to 600 characters around the known answer" },
    metric: "2024-08",
    word_overlap_auroc: { value: overlap.auroc ?? 0.5, ci: overlap.ci95 },
    seeds: perSeed.map((p) => ({ seed: p.seed, base: arm(baseArm), stage1: { ...arm(p.stage1), auroc: { value: p.classifier.auroc ?? 0.5, ci: p.classifier.ci95 } }, stage1_stage2: arm(p.stage12) })),
  }, values.acceptance);
  await writeJsonAtomic(resolve(values.acceptance), acceptance);
  console.log(`wrote ${values.acceptance}`);
}
console.log(`wrote ${values.out}`);
