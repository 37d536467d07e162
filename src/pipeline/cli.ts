import { resolve } from "node:path";
import { formatBuildSummary } from "../data/build-all.ts";
import { describeBackend, initBackend } from "../model/backend.ts";
import { describeModel } from "../model/describe.ts";
import { openModel } from "../model/open.ts";
import { parseLoraTargets } from "../train/lora.ts";
import { defineCommand, optionalChoice, optionalNumber, type Command, type OptionValues } from "../util/command.ts";
import { UsageError } from "../util/errors.ts";
import { writePipelineReport } from "./report.ts";
import { PIPELINE_ARMS, pipelineDefaults, pipelinePrompts, runPipeline, type PipelineArmId, type PipelineEvent, type PipelineOptions } from "./run.ts";
import { PIPELINE_SOURCES, type PipelineSource } from "./sources.ts";
import { formatCi, formatMeanCi } from "./summary.ts";

const positiveInt = (values: OptionValues, name: string): number | undefined => {
  const n = optionalNumber(values, name, "start");
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new UsageError(`ktu start: --${name} must be a whole number >= 0, got ${n}`);
  return n;
};

/** Options over the defaults (pipelineDefaults, or its quick variant). */
export function startOptions(values: OptionValues): PipelineOptions {
  const str = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  // The model first: its declared prompt format (prompt.json) sets the length defaults.
  const o = pipelineDefaults(values.quick === true, str("model") ? resolve(str("model")!) : undefined);
  if (str("out")) o.out = str("out")!;
  if (str("tokenizer")) o.tokenizer = resolve(str("tokenizer")!);
  if (str("asqa")) o.asqaFile = resolve(str("asqa")!);
  if (str("hotpot")) o.hotpotFiles = str("hotpot")!.split(",").map((f) => resolve(f));
  o.benchmark = optionalChoice(values, "benchmark", ["paper", "corrected"] as const, "start") ?? o.benchmark;
  const source = optionalChoice(values, "source", [...PIPELINE_SOURCES, "all"] as const, "start");
  if (source !== undefined) o.sources = source === "all" ? [...PIPELINE_SOURCES] : [source as PipelineSource];
  if (str("arms")) {
    const ids = PIPELINE_ARMS.map((a) => a.id) as string[];
    const arms = str("arms")!.split(",").map((a) => a.trim());
    const bad = arms.filter((a) => !ids.includes(a));
    if (bad.length || arms.length === 0) throw new UsageError(`ktu start: --arms takes a list of ${ids.join(", ")}; got ${JSON.stringify(str("arms"))}`);
    o.arms = arms as PipelineArmId[];
  }
  if (str("seeds")) {
    const seeds = str("seeds")!.split(",").map(Number);
    if (seeds.some((s) => !Number.isInteger(s))) throw new UsageError(`ktu start: --seeds must be whole numbers separated by commas, got ${JSON.stringify(str("seeds"))}`);
    o.seeds = seeds;
  }
  const set = <K extends keyof PipelineOptions>(key: K, name: string, read: (v: OptionValues, n: string) => number | undefined = positiveInt) => {
    const v = read(values, name);
    if (v !== undefined) (o[key] as unknown) = v;
  };
  set("splitSeed", "seed");
  set("babiTask", "babi-task");
  if (o.babiTask < 1 || o.babiTask > 20) throw new UsageError(`ktu start: --babi-task must be a task number from 1 to 20, got ${o.babiTask}`);
  set("maxLen", "max-len");
  set("maxNewTokens", "max-new-tokens");
  set("trainRows", "train-rows");
  set("testRows", "test-rows");
  set("epochs", "epochs", (v, n) => optionalNumber(v, n, "start"));
  set("maxSteps", "steps");
  set("learningRate", "lr", (v, n) => optionalNumber(v, n, "start"));
  set("batchSize", "batch");
  set("loraRank", "lora-rank");
  set("draws", "draws");
  set("jobs", "jobs");
  if (o.jobs < 1) throw new UsageError("ktu start: --jobs must be at least 1");
  if (str("lora-target")) o.loraTargets = parseLoraTargets(str("lora-target")!);
  if (o.maxLen < 32) throw new UsageError(`ktu start: --max-len must be at least 32, got ${o.maxLen}`);
  if (o.batchSize < 1) throw new UsageError("ktu start: --batch must be at least 1");
  return o;
}

/** Progress lines: one per step start/finish, training every ~10% of its steps, evaluation every quarter. */
export function progressPrinter(print: (line: string) => void = (l) => process.stdout.write(l + "\n")): (e: PipelineEvent) => void {
  const started = new Map<string, number>();
  return (e) => {
    if (e.kind === "step") {
      if (e.state === "skipped") print(`= ${e.step}: already done (${(e.seconds ?? 0).toFixed(1)} s last time), skipped`);
      else if (e.state === "started") {
        started.set(e.step, performance.now());
        print(`> ${e.step}${e.detail ? `: ${e.detail}` : ""}`);
      } else print(`✓ ${e.step} (${(e.seconds ?? 0).toFixed(1)} s)`);
    } else if (e.kind === "train") {
      const r = e.result;
      const every = Math.max(1, Math.round(r.totalSteps / 10));
      if (r.step % every === 0 || r.step === r.totalSteps || r.step === 1) {
        const eta = ((r.totalSteps - r.step) * r.ms) / 1000;
        const bar = "#".repeat(Math.round((20 * r.step) / r.totalSteps)).padEnd(20, ".");
        print(`  [${bar}] ${e.step} step ${r.step}/${r.totalSteps} loss ${r.loss.toFixed(4)} ${(r.ms / 1000).toFixed(2)} s/step, about ${eta.toFixed(0)} s left`);
      }
    } else {
      const quarter = Math.max(1, Math.ceil(e.total / 4));
      if (e.done % quarter === 0 || e.done === e.total) print(`  ${e.step}: evaluated ${e.done}/${e.total} test rows`);
    }
  };
}

/** `ktu start`: the main job on the embedded default. */
const start = defineCommand({
  name: "start",
  summary: "the main job: datasets, stage 1, merge, stage 2, ablations, evaluation and calibration over seeds, report in OUT/report",
  help: `  --quick              a short run (one seed, few rows, two steps per training; a few minutes)
  --out DIR            output root (default out): DIR/data, DIR/report (index.html, results.json, runs/)
  --model PATH         llama2.c .bin or Hugging Face folder (default data/models/reader/reader.bin if present,
                       else stories260K); a prompt.json beside it declares its prompts and length defaults
  --tokenizer PATH     tokenizer for a .bin model (default tok<vocab>.bin beside it)
  --asqa FILE          ASQA input (default data/asqa/asqa_dev_first400.jsonl)
  --hotpot F1,F2       HotpotQA inputs (default the shipped ones)
  --source babi|squad|asqa|all  the benchmarks, each with its own six arms over the seeds (default all):
                       bAbI (one task: test rows from the validation stories, stage sets from the train
                       side), SQuAD v1.1 (validation articles; train articles), ASQA (test side of the
                       split; stage 1 from its train side, QA and stage 2 from HotpotQA as in the paper)
  --babi-task N        the bAbI task, 1-20 (default 1)
  --arms LIST          only these arms, e.g. base,stage1,stage1_stage2 (default all six)
  --benchmark paper|corrected   ASQA's benchmark filter for stage 1 and the test side (default paper)
  --seeds 1,2,3        training seeds (default 1,2,3; quick: 1)
  --seed N             seed of the train/test split (default 42)
  --max-len N          prompt + answer tokens; passages are cropped around the answer to fit (default the
                       model's prompt.json max_len, else 256; quick at most 192)
  --max-new-tokens N   answer length at evaluation (default prompt.json's max_new_tokens, else 12; bAbI at most 8)
  --train-rows N       at most N examples per training set, the first ones (default 256; quick 32)
  --test-rows N        at most N test rows per benchmark (default 100; quick 16); bAbI and SQuAD draw them
                       (seeded) across stories and articles, ASQA takes the first ones
  --epochs X           epochs per training (default 1)
  --steps N            optimizer steps per training instead of epochs (quick: 2)
  --lr X               learning rate (default 2e-3)
  --batch N            batch size (default 16)
  --lora-rank N        LoRA rank, alpha = 2 * rank (default 8)
  --lora-target LIST   projections, e.g. q_proj,v_proj or all (default all seven)
  --draws N            bootstrap draws (default 1000; quick 200)
  --jobs N             trainings at once, one process each (default: the number of cores, at most 4)
Re-running continues: finished steps are skipped, a killed training resumes from its checkpoint.`,
  options: {
    quick: { type: "boolean" },
    out: { type: "string" },
    model: { type: "string" },
    tokenizer: { type: "string" },
    asqa: { type: "string" },
    source: { type: "string" },
    "babi-task": { type: "string" },
    arms: { type: "string" },
    hotpot: { type: "string" },
    benchmark: { type: "string" },
    seeds: { type: "string" },
    seed: { type: "string" },
    "max-len": { type: "string" },
    "max-new-tokens": { type: "string" },
    "train-rows": { type: "string" },
    "test-rows": { type: "string" },
    epochs: { type: "string" },
    steps: { type: "string" },
    lr: { type: "string" },
    batch: { type: "string" },
    "lora-rank": { type: "string" },
    "lora-target": { type: "string" },
    draws: { type: "string" },
    jobs: { type: "string" },
  },
  async run(values) {
    const options = startOptions(values);
    const print = (l: string) => process.stdout.write(l + "\n");
    print(`ktu start${options.quick ? " --quick" : ""}: model ${options.model}, benchmarks ${options.sources.join(",")}, seeds ${options.seeds.join(",")}, max length ${options.maxLen}`);
    // The engine line (what runs, what was skipped), as the README promises; results.json records it as "engine".
    print(describeBackend(await initBackend()));
    // The model line: what the model is (name, size, where it came from) and its prompts.
    const prompts = pipelinePrompts(options.model);
    print(`model: ${describeModel(options.model, openModel(options.model, options.tokenizer).model.config).line}; prompts: ${prompts.format}${prompts.file ? ` (${prompts.file})` : ""}`);
    const result = await runPipeline(options, progressPrinter(print));
    const summary = await writePipelineReport(result);
    print("");
    if (result.build) print(formatBuildSummary(result.build));
    for (const bench of Object.values(summary.benchmarks)) {
      print(`${bench.title}: ${bench.test_rows} test rows; seed means with 95% intervals (strict)`);
      print("arm                               known %              unknown %            overall %            collapsed");
      for (const a of bench.arms) {
        if (a.seeds.length === 0) continue;
        print(`${a.label.padEnd(34)}${formatMeanCi(a, "known").padEnd(21)}${formatMeanCi(a, "unknown").padEnd(21)}${formatMeanCi(a, "overall").padEnd(21)}${a.collapsed_seeds}/${a.seeds.length}`);
      }
      for (const b of bench.baselines) print(`${b.label.slice(0, 33).padEnd(34)}${formatCi(b.known).padEnd(21)}${formatCi(b.unknown).padEnd(21)}${formatCi(b.overall).padEnd(21)}`);
      print(bench.statement);
      print(bench.pattern.verdict);
      print("");
    }
    print(`\nReport: ${resolve(result.reportDir, "index.html")} (results.json beside it); ${summary.seconds.toFixed(0)} s`);
  },
});

export const commands: Command[] = [start];
