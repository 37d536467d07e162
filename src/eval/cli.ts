import { defineCommand, optionalChoice, optionalNumber, requireString, type Command } from "../util/command.ts";
import { accuracyBootstrap } from "./bootstrap.ts";
import { idKey, readBenchmark } from "./io.ts";
import { optionalCount } from "./run-cli.ts";
import { roundPy } from "./python.ts";
import { rescoreAuthorsRecords, scoreFiles, scoreSummary } from "./score.ts";
import { METRIC_VARIANTS, DEFAULT_METRIC } from "./scoring.ts";
import { runCommand } from "./run-cli.ts";
import { squadCommand } from "./squad-cli.ts";
import { calibrateCommand } from "./calibrate-cli.ts";
import { rtuningCommands } from "./rtuning-cli.ts";
import { baselineCommands } from "./baselines-cli.ts";
import { chartCommands } from "./chart-cli.ts";

const metricHelp = `  --metric NAME       2024-08 (default: the newest seed code: word expansion, 20 refusal words,
                      empty answer = refusal), 2024-04 (first commit: no expansion, 12 words),
                      strict (ours: SQuAD-normalised whole-token span match)`;

const score = defineCommand({
  name: "eval score",
  summary: "score predictions against a benchmark (known / unknown accuracy, their harmonic mean)",
  help: `  --benchmark FILE    benchmark.jsonl from 'ktu data benchmark', or the authors' layout as .csv/.json
  --predictions FILE  one JSON per line: {"id", "pos_prediction", "neg_prediction"}
${metricHelp}
  --partial           score only the benchmark rows that have a prediction, ignoring predictions
                      for ids not in the benchmark (both counted in the summary)
  --rows              also print one JSON line per row before the summary
  --ci                95% bootstrap intervals of the three accuracies, resampling ASQA ambiguous
                      questions (sample_id) when the benchmark has them, else rows; --draws N
                      (default 1000), --seed N (default 0)
The last line of stdout is one JSON object: {"n", "known_acc", "unknown_acc", "overall", ...},
percentages rounded to two decimals.`,
  options: {
    benchmark: { type: "string" },
    predictions: { type: "string" },
    metric: { type: "string" },
    partial: { type: "boolean" },
    rows: { type: "boolean" },
    ci: { type: "boolean" },
    draws: { type: "string" },
    seed: { type: "string" },
  },
  run(values) {
    const metric = optionalChoice(values, "metric", METRIC_VARIANTS, "eval score") ?? DEFAULT_METRIC;
    const report = scoreFiles(requireString(values, "benchmark", "eval score"), requireString(values, "predictions", "eval score"), {
      metric,
      partial: values.partial === true,
    });
    if (values.rows) for (const row of report.rows) process.stdout.write(JSON.stringify(row) + "\n");
    const summary = scoreSummary(report);
    if (values.ci) {
      const benchmark = new Map(readBenchmark(requireString(values, "benchmark", "eval score")).map((r) => [idKey(r.id), r]));
      const groups = report.rows.map((r) => {
        const sample = benchmark.get(r.id)?.sample_id;
        return typeof sample === "string" && sample !== "" ? `sample:${sample}` : `row:${r.id}`;
      });
      const ci = accuracyBootstrap(report.rows, { groups, draws: optionalCount(values, "draws", "eval score"), seed: optionalNumber(values, "seed", "eval score") });
      if (ci) {
        const round = (v: [number, number]) => v.map((x) => roundPy(x)) as [number, number];
        Object.assign(summary, { known_acc_ci: round(ci.known_acc), unknown_acc_ci: round(ci.unknown_acc), overall_ci: round(ci.overall), ci_draws: ci.draws, ci_seed: ci.seed, ci_unit: groups.some((g) => g.startsWith("sample:")) ? "sample_id" : "row" });
      }
    }
    process.stdout.write(JSON.stringify(summary) + "\n");
  },
});

const rescore = defineCommand({
  name: "eval rescore",
  summary: "rescore the authors' result records (their xlsx exported to CSV/JSON) and compare with their verdicts",
  help: `  --records FILE      'TrustworthyLLM Benchmark - {model}' exported as .csv or .json
${metricHelp}
The last line of stdout is one JSON object with our scores, theirs, and the disagreement count.`,
  options: { records: { type: "string" }, metric: { type: "string" } },
  run(values) {
    const metric = optionalChoice(values, "metric", METRIC_VARIANTS, "eval rescore") ?? DEFAULT_METRIC;
    const r = rescoreAuthorsRecords(requireString(values, "records", "eval rescore"), metric);
    for (const d of r.disagreements.slice(0, 20)) process.stdout.write(JSON.stringify(d) + "\n");
    process.stdout.write(
      JSON.stringify({
        model: r.model,
        ...scoreSummary(r.ours),
        stored_known_acc: r.theirs.known_acc === null ? null : roundPy(r.theirs.known_acc),
        stored_unknown_acc: r.theirs.unknown_acc === null ? null : roundPy(r.theirs.unknown_acc),
        disagreements: r.disagreements.length,
      }) + "\n",
    );
  },
});

export const commands: Command[] = [score, rescore, runCommand, squadCommand, calibrateCommand, ...rtuningCommands, ...baselineCommands, ...chartCommands];
