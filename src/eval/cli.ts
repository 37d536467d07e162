import { defineCommand, optionalChoice, requireString, type Command } from "../util/command.ts";
import { roundPy } from "./python.ts";
import { rescoreAuthorsRecords, scoreFiles, scoreSummary } from "./score.ts";
import { METRIC_VARIANTS, DEFAULT_METRIC } from "./scoring.ts";
import { runCommand } from "./run-cli.ts";
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
  --partial           score only the benchmark rows that have a prediction
  --rows              also print one JSON line per row before the summary
The last line of stdout is one JSON object: {"n", "known_acc", "unknown_acc", "overall", ...},
percentages rounded to two decimals.`,
  options: {
    benchmark: { type: "string" },
    predictions: { type: "string" },
    metric: { type: "string" },
    partial: { type: "boolean" },
    rows: { type: "boolean" },
  },
  run(values) {
    const metric = optionalChoice(values, "metric", METRIC_VARIANTS, "eval score") ?? DEFAULT_METRIC;
    const report = scoreFiles(requireString(values, "benchmark", "eval score"), requireString(values, "predictions", "eval score"), {
      metric,
      partial: values.partial === true,
    });
    if (values.rows) for (const row of report.rows) process.stdout.write(JSON.stringify(row) + "\n");
    process.stdout.write(JSON.stringify(scoreSummary(report)) + "\n");
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

export const commands: Command[] = [score, rescore, runCommand, calibrateCommand, ...rtuningCommands, ...baselineCommands, ...chartCommands];
