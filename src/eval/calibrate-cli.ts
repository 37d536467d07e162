/** `ktu eval calibrate`: confidences from the model, calibration metrics with bootstrap intervals, plots. */
import { join } from "node:path";
import { TASK_ASSIGNMENT } from "../data/prompts.ts";
import { getChatTemplate, renderChat } from "../model/chat-templates.ts";
import { defineCommand, optionalChoice, optionalNumber, requireString } from "../util/command.ts";
import { UsageError } from "../util/errors.ts";
import { writeJsonAtomic } from "../util/fs.ts";
import { calibrationReport, type CalibrationReport } from "./bootstrap.ts";
import { AnswerCache } from "./cache.ts";
import { answerLogprobConfidences, answerProbabilityConfidences, sufficiencyConfidences, type CalibrateOptions, type ConfidenceRun } from "./calibrate.ts";
import { readBenchmark } from "./io.ts";
import { cutPromptsNote, declaredDecode, optionalCount, promptFromOptions, sourceFromOptions, sourceHelp, sourceOptions } from "./run-cli.ts";
import { METRIC_VARIANTS } from "./scoring.ts";
// The CLI is glue: it writes the plots that src/viz draws from these results.
import { saveCalibrationFigures } from "../viz/save.ts";

export const CONFIDENCE_SOURCES = ["p_sufficient", "p_answer", "answer_logprob"] as const;
type SourceName = (typeof CONFIDENCE_SOURCES)[number];

const DESCRIPTIONS: Record<SourceName, string> = {
  p_sufficient: "P(Sufficient) after TASK_COGNITION vs answerable, positive-class",
  p_answer: "1 - P('Not Provided') after the evaluation prompt vs answerable, positive-class",
  answer_logprob: "exp(mean token log-prob) of the greedy answer vs correct, positive-class",
};

export interface CalibrationResult {
  run: Omit<ConfidenceRun, "items"> & { n_items: number };
  report: CalibrationReport | null;
  reason?: string;
  items: ConfidenceRun["items"];
}

export const calibrateCommand = defineCommand({
  name: "eval calibrate",
  summary: "confidences from the model, calibration metrics (ECE, MCE, Brier, AUROC, AURC) with bootstrap intervals, and plots",
  help: `  --benchmark FILE    benchmark.jsonl (or the authors' layout as .csv/.json)
${sourceHelp}
  --tokenizer FILE    default: tokenizer.bin or the one tok*.bin next to --model
  --out DIR           calibration.json, calibration.html, one PNG per figure (when Chromium exists)
  --sources LIST      comma-separated of ${CONFIDENCE_SOURCES.join(", ")} (default: all)
  --limit N           only the first N rows (two questions each)
  --template NAME     chat template stage 1 was trained with, around TASK_COGNITION (default: none)
  --prompt NAME       evaluation prompt for p_answer and answer_logprob (default: the model's own
                      format when a prompt.json sits beside --model, then its cognition and QA
                      templates and labels serve all three sources; else llama2_chat)
  --task-assignment   prepend the US-Tuning task assignment (paper prompts only)
  --metric NAME       scoring rule for answer_logprob's correctness labels (default strict)
  --max-tokens N      answer length for answer_logprob (default prompt.json's max_new_tokens, else 200)
  --seed N            bootstrap seed (default 0); --draws N bootstrap draws (default 1000)
  --no-png            HTML only
Rows resample by ASQA ambiguous question (sample_id) when the benchmark has it, else by row.`,
  options: {
    benchmark: { type: "string" },
    out: { type: "string" },
    sources: { type: "string" },
    limit: { type: "string" },
    template: { type: "string" },
    prompt: { type: "string" },
    "task-assignment": { type: "boolean" },
    metric: { type: "string" },
    "max-tokens": { type: "string" },
    seed: { type: "string" },
    draws: { type: "string" },
    cache: { type: "string" },
    "no-png": { type: "boolean" },
    ...sourceOptions,
  },
  async run(values) {
    const name = "eval calibrate";
    const benchmarkPath = requireString(values, "benchmark", name);
    const out = requireString(values, "out", name);
    const wanted = (typeof values.sources === "string" ? values.sources.split(",").map((s) => s.trim()) : [...CONFIDENCE_SOURCES]) as SourceName[];
    for (const s of wanted) if (!CONFIDENCE_SOURCES.includes(s)) throw new UsageError(`ktu ${name}: --sources: unknown source ${JSON.stringify(s)}; one of ${CONFIDENCE_SOURCES.join(", ")}`);
    const seed = optionalNumber(values, "seed", name) ?? 0;
    const draws = optionalCount(values, "draws", name) ?? 1000;
    const template = typeof values.template === "string" && values.template !== "none" ? getChatTemplate(values.template) : undefined;
    const { prompt, format, label } = promptFromOptions(values, name);
    if (format && template) throw new UsageError(`ktu ${name}: --template wraps the paper's TASK_COGNITION; the model's declared format (${label}) has its own cognition prompt; give --prompt NAME to use the paper's prompts`);
    const rows = readBenchmark(benchmarkPath);
    const source = await sourceFromOptions(values, name);
    const cache = AnswerCache.open(typeof values.cache === "string" ? values.cache : join(out, "answers.cache.jsonl"));
    let lastShown = 0;
    const options: CalibrateOptions = {
      limit: optionalCount(values, "limit", name),
      cache,
      wrap: template ? (p) => renderChat(template, [{ role: "user", content: p }], { bos: "", eos: "" }) : undefined,
      prompt,
      ...(format ? { format } : {}),
      taskAssignment: values["task-assignment"] ? TASK_ASSIGNMENT : "",
      decode: declaredDecode(format, optionalCount(values, "max-tokens", name)),
      metric: optionalChoice(values, "metric", METRIC_VARIANTS, name) ?? "strict",
      onProgress: (done, total) => {
        const now = Date.now();
        if (now - lastShown > 2000 || done === total) {
          lastShown = now;
          process.stderr.write(`  ${done}/${total} questions\n`);
        }
      },
    };
    const results: CalibrationResult[] = [];
    try {
      for (const which of wanted) {
        process.stderr.write(`confidence source ${which} ...\n`);
        const run =
          which === "p_sufficient" ? await sufficiencyConfidences(rows, source, options)
          : which === "p_answer" ? await answerProbabilityConfidences(rows, source, options)
          : await answerLogprobConfidences(rows, source, options);
        const { items, ...meta } = run;
        const base = { run: { ...meta, n_items: items.length }, items };
        if (items.length === 0) {
          results.push({ ...base, report: null, reason: run.errors[0]?.message ?? "no items scored" });
          continue;
        }
        const report = calibrationReport(
          items.map((i) => i.label),
          items.map((i) => i.confidence),
          {
            groups: items.map((i) => i.group),
            seed,
            draws,
            provenance: { source: which, target: run.target, scoring_rule: run.scoring_rule, convention: "positive-class", positive_class: run.target === "answerability" ? "known question" : "correct answer" },
          },
        );
        results.push({ ...base, report });
      }
    } finally {
      cache.close();
      await source.close?.();
    }
    await writeJsonAtomic(join(out, "calibration.json"), {
      benchmark: benchmarkPath,
      source: source.id,
      prompt: label,
      seed,
      draws,
      resampling_unit: "ASQA sample_id when present, else benchmark row",
      ...cutPromptsNote(source),
      results: results.map(({ run, report, reason }) => ({ ...run, report, ...(reason ? { reason } : {}) })),
    });
    await writeJsonAtomic(join(out, "confidences.json"), Object.fromEntries(results.map((r) => [r.run.source, r.items])));
    const saved = await saveCalibrationFigures(out, results.flatMap((r) => (r.report ? [{ name: r.run.source, description: DESCRIPTIONS[r.run.source as SourceName], report: r.report, items: r.items }] : [])), { png: values["no-png"] !== true });
    for (const line of saved.notes) process.stderr.write(line + "\n");
    const summary = Object.fromEntries(
      results.map((r) => [
        r.run.source,
        r.report
          ? { n: r.report.n, base_rate: r.report.base_rate, ece: r.report.ece_equal_width_15, ece_ci: r.report.bootstrap?.ci.ece_equal_width_15 ?? null, brier: r.report.brier, auroc: r.report.auroc, aurc: r.report.aurc, errors: r.run.errors.length }
          : { n: 0, reason: r.reason, errors: r.run.errors.length },
      ]),
    );
    process.stdout.write(JSON.stringify({ ...summary, files: saved.files }) + "\n");
  },
});
