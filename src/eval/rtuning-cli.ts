/** `ktu eval rtuning` and `ktu eval ap`: R-Tuning's hallucination benchmarks and their AP metric. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand, optionalChoice, optionalNumber, requireString, type Command } from "../util/command.ts";
import { InputError } from "../util/errors.ts";
import { writeJsonAtomic } from "../util/fs.ts";
import { AnswerCache } from "./cache.ts";
import { cutPromptsNote, optionalCount, sourceFromOptions, sourceHelp, sourceOptions } from "./run-cli.ts";
import { loadRTuningItems, rtuningAveragePrecision, runRTuning, RTUNING_TASKS, type RTuningResult } from "./rtuning.ts";

const rtuning = defineCommand({
  name: "eval rtuning",
  summary: "R-Tuning's MMLU / ParaRel / HaluEval-QA evaluation: (correct, predict_conf, sure_prob) and average precision",
  help: `  --task NAME         ${RTUNING_TASKS.join(", ")}
  --domain ID|OOD     R-Tuning's split (default ID; MMLU's OOD test set is not shipped)
${sourceHelp}
  --out DIR           results.json (R-Tuning's [[correct, conf, sure], ...]), outputs.jsonl, ap.json
  --limit N           only the first N questions
  --seed-bugs         MMLU: R-Tuning's check (option A's text in the predicted letter)
The last line of stdout is {"task", "n", "accuracy", "average_precision"}.`,
  options: { task: { type: "string" }, domain: { type: "string" }, out: { type: "string" }, limit: { type: "string" }, "seed-bugs": { type: "boolean" }, cache: { type: "string" }, ...sourceOptions },
  async run(values) {
    const name = "eval rtuning";
    const task = optionalChoice(values, "task", RTUNING_TASKS, name);
    if (!task) throw new InputError("(command line)", undefined, "--task", `required: one of ${RTUNING_TASKS.join(", ")}`);
    const domain = optionalChoice(values, "domain", ["ID", "OOD"] as const, name) ?? "ID";
    const out = requireString(values, "out", name);
    const items = loadRTuningItems(task, domain);
    const source = await sourceFromOptions(values, name);
    const cache = AnswerCache.open(typeof values.cache === "string" ? values.cache : join(out, "answers.cache.jsonl"));
    try {
      const r = await runRTuning(task, items, source, { limit: optionalCount(values, "limit", name), seedBugs: values["seed-bugs"] === true, cache });
      await writeJsonAtomic(join(out, "results.json"), r.results);
      await writeJsonAtomic(join(out, "outputs.json"), r.outputs);
      const summary = { task, domain, n: r.n, accuracy: r.accuracy, average_precision: r.average_precision, source: source.id, seed_bugs: values["seed-bugs"] === true, errors: r.errors.length };
      await writeJsonAtomic(join(out, "ap.json"), { ...summary, ...cutPromptsNote(source), error_list: r.errors });
      process.stdout.write(JSON.stringify(summary) + "\n");
      if (r.errors.length) throw new Error(`${r.errors.length} question(s) failed; first: id ${r.errors[0]!.id}: ${r.errors[0]!.message}`);
    } finally {
      cache.close();
      await source.close?.();
    }
  },
});

const ap = defineCommand({
  name: "eval ap",
  summary: "average precision of an R-Tuning results file ([[correct, predict_conf, sure_prob], ...]), as calculate_ap.py",
  help: `  --results FILE      R-Tuning's results JSON (theirs or 'ktu eval rtuning' output)
The last line of stdout is {"n", "average_precision", "prevalence"}.`,
  options: { results: { type: "string" } },
  run(values) {
    const path = requireString(values, "results", "eval ap");
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(path, "utf8"));
    } catch (error) {
      throw new InputError(path, undefined, undefined, (error as Error).message);
    }
    if (!Array.isArray(data)) throw new InputError(path, undefined, undefined, "expected a JSON array of [correct, predict_conf, sure_prob]");
    data.forEach((r, i) => {
      if (!Array.isArray(r) || r.length < 3 || !r.slice(0, 3).every((v) => typeof v === "number" && Number.isFinite(v))) throw new InputError(path, `item ${i}`, undefined, `expected [correct, predict_conf, sure_prob], got ${JSON.stringify(r)}`);
      if (r[0] !== 0 && r[0] !== 1) throw new InputError(path, `item ${i}`, "correct", `expected 0 or 1, got ${r[0]}`);
    });
    const results = data as RTuningResult[];
    const positives = results.filter((r) => r[0] === 1).length;
    process.stdout.write(JSON.stringify({ n: results.length, average_precision: rtuningAveragePrecision(results), prevalence: results.length ? positives / results.length : null }) + "\n");
  },
});

export const rtuningCommands: Command[] = [rtuning, ap];
