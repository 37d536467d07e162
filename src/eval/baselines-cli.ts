/** `ktu eval baseline` (sampling, self-validation) and `ktu eval stage1-check`. */
import { join } from "node:path";
import { getChatTemplate, renderChat } from "../model/chat-templates.ts";
import { defineCommand, optionalChoice, optionalNumber, requireString, type Command } from "../util/command.ts";
import { writeJsonAtomic, writeJsonlAtomic } from "../util/fs.ts";
import { scoreCognitionCheck, scoreSamplingRow, scoreValidationRow } from "./baselines.ts";
import { AnswerCache } from "./cache.ts";
import { SEED_DECODE } from "./generator.ts";
import { readBenchmark } from "./io.ts";
import { roundPy } from "./python.ts";
import { cutPromptsNote, optionalCount, sourceFromOptions, sourceHelp, sourceOptions } from "./run-cli.ts";
import { runCognitionCheck, runSamplingBaseline, runValidationBaseline, type RunError } from "./runner.ts";
import { DEFAULT_METRIC, harmonicMean, METRIC_VARIANTS } from "./scoring.ts";

const finish = (errors: RunError[], kept: number, out: string): void => {
  if (errors.length) throw new Error(`${errors.length} answer(s) failed; first: id ${JSON.stringify(errors[0]!.id)}, field ${errors[0]!.field}: ${errors[0]!.message}. ${kept} finished rows kept in ${out}; rerun to resume`);
};

const baseline = defineCommand({
  name: "eval baseline",
  summary: "the post-generation baselines of paper.md 3.2: sampling (3 at T=0.6, vote >= 1.5) or self-validation",
  help: `  --kind NAME         sampling or validation
  --benchmark FILE    benchmark.jsonl (or the authors' layout)
${sourceHelp}
  --out DIR           predictions.jsonl (with the samples or drafts) and scores.json
  --limit N           only the first N rows
  --metric NAME       ${METRIC_VARIANTS.join(", ")} (default ${DEFAULT_METRIC})
  --seed-bugs         reproduce the seed: sampling counts every gold string / refusal word found in a
                      sample as a vote; validation asks the unknown row's second pass with pos_query;
                      neither counts an empty answer as a refusal nor expands gold answers into words
  --k N               samples per question (default 3); --seed N first sampling seed (default 1)
  --max-tokens N      answer length (default 200, as the seed)`,
  options: { kind: { type: "string" }, benchmark: { type: "string" }, out: { type: "string" }, limit: { type: "string" }, metric: { type: "string" }, "seed-bugs": { type: "boolean" }, k: { type: "string" }, seed: { type: "string" }, "max-tokens": { type: "string" }, ...sourceOptions },
  async run(values) {
    const name = "eval baseline";
    const kind = optionalChoice(values, "kind", ["sampling", "validation"] as const, name) ?? "sampling";
    const benchmarkPath = requireString(values, "benchmark", name);
    const out = requireString(values, "out", name);
    const metric = optionalChoice(values, "metric", METRIC_VARIANTS, name) ?? DEFAULT_METRIC;
    const seedBugs = values["seed-bugs"] === true;
    const rows = readBenchmark(benchmarkPath);
    const byId = new Map(rows.map((r) => [String(r.id), r]));
    const source = await sourceFromOptions(values, name);
    const cache = AnswerCache.open(join(out, "answers.cache.jsonl"));
    const opts = { limit: optionalCount(values, "limit", name), cache, decode: { ...SEED_DECODE, maxNewTokens: optionalCount(values, "max-tokens", name) ?? SEED_DECODE.maxNewTokens } };
    try {
      let scored: { id: string | number; known_correct: boolean; unknown_correct: boolean; [k: string]: unknown }[];
      let errors: RunError[];
      if (kind === "sampling") {
        const r = await runSamplingBaseline(rows, source, { ...opts, k: optionalCount(values, "k", name), seed: optionalNumber(values, "seed", name) });
        errors = r.errors;
        scored = r.samples.map((s) => ({ ...s, ...scoreSamplingRow(s.pos_samples, s.neg_samples, byId.get(String(s.id))!.pos_answer, { metric, seedBugs }) }));
      } else {
        const r = await runValidationBaseline(rows, source, { ...opts, seedBugs });
        errors = r.errors;
        scored = r.predictions.map((p) => ({ ...p, ...scoreValidationRow(p.pos_prediction, p.neg_prediction, byId.get(String(p.id))!.pos_answer, { metric, seedBugs }) }));
      }
      const n = scored.length;
      const known = n ? (100 * scored.filter((s) => s.known_correct).length) / n : 0;
      const unknown = n ? (100 * scored.filter((s) => s.unknown_correct).length) / n : 0;
      const summary = { n, known_acc: roundPy(known), unknown_acc: roundPy(unknown), overall: roundPy(harmonicMean(known, unknown)), kind, metric, seed_bugs: seedBugs, errors: errors.length };
      await writeJsonlAtomic(join(out, "predictions.jsonl"), scored);
      await writeJsonAtomic(join(out, "scores.json"), { ...summary, source: source.id, ...cutPromptsNote(source) });
      process.stdout.write(JSON.stringify(summary) + "\n");
      finish(errors, n, out);
    } finally {
      cache.close();
      await source.close?.();
    }
  },
});

const stage1Check = defineCommand({
  name: "eval stage1-check",
  summary: "the stage-1 classifier check: TASK_COGNITION on every 10th row, Sufficient vs Insufficient accuracy",
  help: `  --benchmark FILE    benchmark.jsonl (or the authors' layout)
${sourceHelp}
  --out DIR           replies.jsonl and scores.json
  --template NAME     chat template stage 1 was trained with (default: none, as the seed)
  --step N            every Nth row (default 10); --limit N at most N of those rows
  --max-tokens N      reply length (default 200)`,
  options: { benchmark: { type: "string" }, out: { type: "string" }, template: { type: "string" }, step: { type: "string" }, limit: { type: "string" }, "max-tokens": { type: "string" }, ...sourceOptions },
  async run(values) {
    const name = "eval stage1-check";
    const out = requireString(values, "out", name);
    const rows = readBenchmark(requireString(values, "benchmark", name));
    const template = typeof values.template === "string" && values.template !== "none" ? getChatTemplate(values.template) : undefined;
    const source = await sourceFromOptions(values, name);
    const cache = AnswerCache.open(join(out, "answers.cache.jsonl"));
    try {
      const r = await runCognitionCheck(rows, source, {
        cache,
        step: optionalCount(values, "step", name),
        limit: optionalCount(values, "limit", name),
        decode: { ...SEED_DECODE, maxNewTokens: optionalCount(values, "max-tokens", name) ?? SEED_DECODE.maxNewTokens },
        wrap: template ? (p) => renderChat(template, [{ role: "user", content: p }], { bos: "", eos: "" }) : undefined,
      });
      const s = scoreCognitionCheck(r.replies.map((x) => ({ ...x, id: String(x.id) })));
      const summary = { n: s.n, skipped: s.skipped, pos_acc: roundPy(s.pos_acc), neg_acc: roundPy(s.neg_acc), errors: r.errors.length };
      await writeJsonlAtomic(join(out, "replies.jsonl"), r.replies);
      await writeJsonAtomic(join(out, "scores.json"), { ...summary, source: source.id, ...cutPromptsNote(source) });
      process.stdout.write(JSON.stringify(summary) + "\n");
      finish(r.errors, r.replies.length, out);
    } finally {
      cache.close();
      await source.close?.();
    }
  },
});

export const baselineCommands: Command[] = [baseline, stage1Check];
