import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { defineCommand, optionalChoice, optionalNumber, requireString, type Command, type OptionValues } from "../util/command.ts";
import { InputError, UsageError } from "../util/errors.ts";
import { writeJsonAtomic, writeJsonlAtomic } from "../util/fs.ts";
import { readAsqa } from "./asqa.ts";
import { babiTrainFile } from "./babi.ts";
import { DEFAULT_BABI_BENCHMARK_SEED } from "./babi-benchmark.ts";
import { BENCHMARK_SIDES, babiBenchmarkSides, pickSide, squadBenchmarkSides, STAGE_SOURCES } from "./sources.ts";
import { SQUAD_FILE } from "./squad.ts";
import { BENCHMARK_FILTERS, buildBenchmark, parseBenchmarkJsonl, type BenchmarkRow } from "./benchmark.ts";
import { buildAllDatasets, buildSourceDatasets, formatBuildSummary, formatSourceBuildSummary } from "./build-all.ts";
import { exportLlamaFactory } from "./export.ts";
import { readHotpot, type HotpotSample } from "./hotpot.ts";
import { buildStage2WithClient } from "./openai-client.ts";
import { DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, splitBenchmark } from "./split.ts";
import { buildStage1 } from "./stage1.ts";
import { buildCognitionPsqa, buildQaAblation, buildStage2, DEFAULT_STAGE2_LIMIT } from "./stage2.ts";
import { decodeUtf8 } from "./text-input.ts";

const print = (text: string): void => void process.stdout.write(text.endsWith("\n") ? text : text + "\n");

async function readBenchmarkFile(file: string): Promise<BenchmarkRow[]> {
  const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(file, undefined, undefined, error.code === "ENOENT" ? "no such file" : error.message);
  });
  return parseBenchmarkJsonl(decodeUtf8(bytes, file), file);
}

const hotpotFiles = (values: OptionValues, command: string): string[] => {
  const files = (values.hotpot as string[] | undefined) ?? [];
  if (files.length === 0) throw new UsageError(`ktu ${command}: --hotpot is required`);
  return files;
};

/** Reads HotpotQA files in order, streamed, until `limit` samples; counts skipped records. */
async function readHotpotFiles(files: string[], options: { limit?: number; skipBad?: boolean }): Promise<{ samples: HotpotSample[]; skipped: number }> {
  const samples: HotpotSample[] = [];
  let skipped = 0;
  for (const file of files) {
    const left = (options.limit ?? Infinity) - samples.length;
    if (left <= 0) break;
    const onSkip = (): void => void skipped++;
    for await (const s of readHotpot(file, { limit: left, skipBad: options.skipBad ?? false, onSkip })) samples.push(s);
  }
  return { samples, skipped };
}

const outDir = (values: OptionValues, command: string): string => resolve(requireString(values, "out", command));

const benchmark = defineCommand({
  name: "data benchmark",
  summary: "build a contextual-QA benchmark (ASQA as paper.md 1.1, or bAbI / SQuAD) into DIR/benchmark.jsonl",
  help: `  --source asqa|babi|squad  where the rows come from (default asqa)
  --out DIR          writes DIR/benchmark.jsonl (and, for asqa, DIR/benchmark_uncleaned.jsonl)
 ASQA (the paper's rule, src/data/benchmark.ts):
  --asqa FILE        ASQA.json (original layout) or Hugging Face JSON Lines (required)
  --split train|dev  split of an original ASQA.json (default train, as the paper)
  --filter paper|corrected  the literal filter (default) or the corrected one
  --skip-bad         skip bad records and count them instead of failing
 bAbI and SQuAD (src/data/README.md; the unknown question asks about what the context lacks):
  --babi FILE        a bAbI train file, plain or .gz (default: the shipped file of --task)
  --task N           bAbI task 1-20 (default 1; with --babi, only that task's questions, or
                     all of them when the file name does not say its task, qaN_...)
  --squad FILE       SQuAD v1.1 JSON, plain or .gz (default: the shipped data/squad/dev-v1.1-40-articles.json.gz)
  --side train|validation|all  which side of the split by bAbI story / SQuAD article (default validation;
                     validation rows whose (context, question) also occurs on the train side are dropped)
  --seed N           seed of the unknown-question draws (default ${DEFAULT_BABI_BENCHMARK_SEED})`,
  options: {
    source: { type: "string" },
    asqa: { type: "string" },
    split: { type: "string" },
    filter: { type: "string" },
    out: { type: "string" },
    "skip-bad": { type: "boolean" },
    babi: { type: "string" },
    task: { type: "string" },
    squad: { type: "string" },
    side: { type: "string" },
    seed: { type: "string" },
  },
  async run(values) {
    const name = "data benchmark";
    const source = optionalChoice(values, "source", ["asqa", "babi", "squad"] as const, name) ?? "asqa";
    const only = (allowed: string[]): void => {
      const all = ["asqa", "split", "filter", "skip-bad", "babi", "task", "squad", "side", "seed"];
      for (const o of all) if (values[o] !== undefined && !allowed.includes(o)) throw new UsageError(`ktu ${name}: --${o} does not apply to --source ${source}`);
    };
    if (source !== "asqa") {
      only(source === "babi" ? ["babi", "task", "side", "seed"] : ["squad", "side", "seed"]);
      const dir = outDir(values, name);
      const side = optionalChoice(values, "side", BENCHMARK_SIDES, name) ?? "validation";
      const seed = optionalNumber(values, "seed", name);
      let rows: BenchmarkRow[];
      if (source === "babi") {
        const task = optionalNumber(values, "task", name);
        if (task !== undefined && !(Number.isInteger(task) && task >= 1 && task <= 20)) throw new UsageError(`ktu ${name}: --task must be a bAbI task, 1 to 20`);
        const file = typeof values.babi === "string" ? values.babi : babiTrainFile(task ?? 1);
        const sided = babiBenchmarkSides({ file, ...(task !== undefined ? { task } : {}), ...(seed !== undefined ? { seed } : {}) });
        rows = pickSide(sided, side);
        print(`source: babi, file: ${file}${task !== undefined ? `, task: ${task}` : ""}, side: ${side}`);
        for (const s of side === "all" ? (["train", "validation"] as const) : [side]) {
          const c = sided[s].counts;
          print(`${s}: questions: ${c.questions}, rows: ${c.rows}, skipped (no replaceable entity): ${c.skippedNoEntity}, skipped (no unmentioned substitute): ${c.skippedNoSubstitute}, dropped (on the train side): ${c.droppedExcluded}`);
        }
      } else {
        const file = typeof values.squad === "string" ? values.squad : SQUAD_FILE;
        const sided = squadBenchmarkSides({ file, ...(seed !== undefined ? { seed } : {}) });
        rows = pickSide(sided, side);
        print(`source: squad, file: ${file}, side: ${side}`);
        for (const s of side === "all" ? (["train", "validation"] as const) : [side]) {
          const c = sided[s].counts;
          print(`${s}: articles: ${c.articles}, questions: ${c.questions}, rows: ${c.rows}, skipped (no unknown question): ${c.skippedNoUnknown}, dropped (on the train side): ${c.droppedExcluded}`);
        }
      }
      await writeJsonlAtomic(join(dir, "benchmark.jsonl"), rows);
      print(`rows: ${rows.length}`);
      print(`wrote ${join(dir, "benchmark.jsonl")}`);
      return;
    }
    only(["asqa", "split", "filter", "skip-bad"]);
    const file = requireString(values, "asqa", name);
    const split = optionalChoice(values, "split", ["train", "dev"] as const, name);
    const filter = optionalChoice(values, "filter", BENCHMARK_FILTERS, name) ?? "paper";
    const dir = outDir(values, name);
    const asqa = await readAsqa(file, { ...(split ? { split } : {}), skipBad: values["skip-bad"] === true });
    const result = buildBenchmark(asqa.items, { filter });
    await writeJsonlAtomic(join(dir, "benchmark.jsonl"), result.rows);
    await writeJsonlAtomic(join(dir, "benchmark_uncleaned.jsonl"), result.uncleaned);
    const c = result.counts;
    print(`layout: ${asqa.layout}, split: ${asqa.split}, filter: ${filter}`);
    print(`items: ${c.items} (used: ${c.itemsUsed}, skipped bad: ${asqa.skipped.length})`);
    print(`pairs before filter: ${c.pairsBefore}`);
    print(`pairs after filter: ${c.pairsAfter}`);
    print(`wrote ${join(dir, "benchmark.jsonl")}`);
  },
});

const split = defineCommand({
  name: "data split",
  summary: "split a benchmark by ASQA ambiguous question (no question on both sides)",
  help: `  --benchmark FILE      benchmark.jsonl from 'ktu data benchmark'
  --out DIR             writes DIR/train.jsonl, DIR/test.jsonl, DIR/split.json
  --seed N              seed of the question shuffle (default ${DEFAULT_SPLIT_SEED})
  --test-fraction F     share of questions held apart for evaluation (default ${DEFAULT_TEST_FRACTION})`,
  options: { benchmark: { type: "string" }, out: { type: "string" }, seed: { type: "string" }, "test-fraction": { type: "string" } },
  async run(values) {
    const name = "data split";
    const rows = await readBenchmarkFile(requireString(values, "benchmark", name));
    const dir = outDir(values, name);
    const seed = optionalNumber(values, "seed", name) ?? DEFAULT_SPLIT_SEED;
    const testFraction = optionalNumber(values, "test-fraction", name) ?? DEFAULT_TEST_FRACTION;
    if (testFraction < 0 || testFraction > 1) throw new UsageError(`ktu ${name}: --test-fraction must be between 0 and 1`);
    const s = splitBenchmark(rows, { seed, testFraction });
    await writeJsonlAtomic(join(dir, "train.jsonl"), s.train);
    await writeJsonlAtomic(join(dir, "test.jsonl"), s.test);
    await writeJsonAtomic(join(dir, "split.json"), { seed, testFraction, questions: Object.fromEntries(s.assignment) });
    const questions = (side: BenchmarkRow[]): number => new Set(side.map((r) => r.sample_id)).size;
    print(`train: ${s.train.length} rows (${questions(s.train)} questions)`);
    print(`test: ${s.test.length} rows (${questions(s.test)} questions)`);
  },
});

const stage1 = defineCommand({
  name: "data stage1",
  summary: "stage-1 Sufficient/Insufficient Alpaca set from a benchmark (paper.md 1.2)",
  help: `  --benchmark FILE   benchmark rows (use the train side of 'ktu data split')
  --out DIR          writes DIR/stage1.jsonl and the Alpaca JSON for LLaMA-Factory
  --with-qa          interleave a HotpotQA TASK_QA sample after each pair (Cognition_QA)
  --hotpot FILE      HotpotQA file for --with-qa (repeatable)
  --limit N          use only the first N benchmark rows`,
  options: { benchmark: { type: "string" }, out: { type: "string" }, "with-qa": { type: "boolean" }, hotpot: { type: "string", multiple: true }, limit: { type: "string" } },
  async run(values) {
    const name = "data stage1";
    let rows = await readBenchmarkFile(requireString(values, "benchmark", name));
    const limit = optionalNumber(values, "limit", name);
    if (limit !== undefined) rows = rows.slice(0, limit);
    const dir = outDir(values, name);
    const withQa = values["with-qa"] === true ? (await readHotpotFiles(hotpotFiles(values, name), { limit: rows.length })).samples : undefined;
    const out = buildStage1(rows, withQa ? { withQa } : {});
    const dataset = withQa ? "cognitionQa" : "cognition";
    await writeJsonlAtomic(join(dir, "stage1.jsonl"), out);
    const exported = await exportLlamaFactory(dir, { [dataset]: out });
    print(`benchmark rows: ${rows.length}`);
    print(`stage-1 rows: ${out.length}`);
    print(`wrote ${join(dir, "stage1.jsonl")} and ${Object.values(exported.datasets)[0]!.file}`);
  },
});

const stage2 = defineCommand({
  name: "data stage2",
  summary: "stage-2 prompt-sensitive set from HotpotQA, offline with verified instructions (paper.md 1.3)",
  help: `  --hotpot FILE      HotpotQA, original JSON array or HF JSON Lines (repeatable; streamed)
  --out DIR          writes DIR/stage2.jsonl, DIR/qa.jsonl and the Alpaca JSONs
  --seed N           seed of the instruction and slot draws (default 42)
  --limit N          HotpotQA samples to use (default ${DEFAULT_STAGE2_LIMIT}, as the seed)
  --revise           show a failing draft and its correction when the gold answer breaks the instruction
  --benchmark FILE   also build the Cognition_PSQA mixture from these benchmark rows
  --base-url URL     ask an OpenAI-compatible endpoint instead (the seed's way), e.g. https://api.openai.com/v1
  --model NAME       model for --base-url (the seed: gpt-4-1106-preview)
  --api-key-env VAR  environment variable holding the API key (default OPENAI_API_KEY)
  --skip-bad         skip bad HotpotQA records and count them`,
  options: {
    hotpot: { type: "string", multiple: true },
    out: { type: "string" },
    seed: { type: "string" },
    limit: { type: "string" },
    revise: { type: "boolean" },
    benchmark: { type: "string" },
    "base-url": { type: "string" },
    model: { type: "string" },
    "api-key-env": { type: "string" },
    "skip-bad": { type: "boolean" },
  },
  async run(values) {
    const name = "data stage2";
    const files = hotpotFiles(values, name);
    const dir = outDir(values, name);
    const seed = optionalNumber(values, "seed", name) ?? 42;
    const limit = optionalNumber(values, "limit", name) ?? DEFAULT_STAGE2_LIMIT;
    const benchmarkRows = typeof values.benchmark === "string" ? await readBenchmarkFile(values.benchmark) : undefined;
    if (typeof values["base-url"] === "string") {
      const model = requireString(values, "model", name);
      const keyVar = typeof values["api-key-env"] === "string" ? values["api-key-env"] : "OPENAI_API_KEY";
      const apiKey = process.env[keyVar];
      const { samples, skipped } = await readHotpotFiles(files, { limit, skipBad: values["skip-bad"] === true });
      const r = await buildStage2WithClient(samples, { baseUrl: values["base-url"], model, ...(apiKey ? { apiKey } : {}) }, { seed, limit });
      await writeJsonlAtomic(join(dir, "stage2.jsonl"), r.rows);
      await exportLlamaFactory(dir, { promptSensitive: r.rows, ...(benchmarkRows ? { cognitionPsqa: buildCognitionPsqa(benchmarkRows, r.rows) } : {}) });
      await writeJsonAtomic(join(dir, "TrustworthyLLM_GPT_Finetuning_Dataset.json"), r.direct);
      print(`asked: ${samples.length} (skipped bad: ${skipped}); kept with CHECKING: ${r.rows.length}; rejected: ${r.rejected}`);
      print(`verified by the instruction checker: ${r.rows.filter((x) => x.verified).length}`);
      return;
    }
    // Read a few extra samples so that skipped ones (empty context) do not shrink the set.
    const { samples, skipped } = await readHotpotFiles(files, { limit: limit + 50, skipBad: values["skip-bad"] === true });
    const result = buildStage2(samples, { seed, limit, revise: values.revise === true });
    const used = new Set(result.rows.map((r) => r.source_id));
    const qa = buildQaAblation(samples.filter((s) => used.has(s.id)));
    await writeJsonlAtomic(join(dir, "stage2.jsonl"), result.rows);
    await writeJsonlAtomic(join(dir, "qa.jsonl"), qa);
    await exportLlamaFactory(dir, { promptSensitive: result.rows, qa, ...(benchmarkRows ? { cognitionPsqa: buildCognitionPsqa(benchmarkRows, result.rows) } : {}) });
    print(`HotpotQA samples read: ${samples.length} (skipped bad: ${skipped})`);
    print(`stage-2 rows: ${result.rows.length} (instruction redraws: ${result.redraws}, samples skipped: ${result.skipped})`);
    print(`QA ablation rows: ${qa.length}`);
  },
});

const exportCommand = defineCommand({
  name: "data export",
  summary: "the LLaMA-Factory folder: Alpaca JSONs, dataset_info.json, the paper's train/merge YAMLs",
  help: `  --benchmark FILE     benchmark rows for stage 1 (use the train side of 'ktu data split')
  --hotpot FILE        HotpotQA for stage 2 and the ablations (repeatable)
  --out DIR            the folder to write (dataset_dir of the configs)
  --seed N             seed of the stage-2 draws (default 42)
  --limit N            HotpotQA samples for stage 2 (default ${DEFAULT_STAGE2_LIMIT})
  --model-path PATH    base model (default meta-llama/Llama-2-7b-chat-hf)
  --output-root DIR    where adapters and merged models go (default DIR/models)
  --template NAME      LLaMA-Factory template (default llama2)
  --preset yaml|autodl the YAML configs (default) or the older autodl.txt settings
  --stage2-merge-base paper|stage1-merged  base of the final merge (default paper: vanilla)`,
  options: {
    benchmark: { type: "string" },
    hotpot: { type: "string", multiple: true },
    out: { type: "string" },
    seed: { type: "string" },
    limit: { type: "string" },
    "model-path": { type: "string" },
    "output-root": { type: "string" },
    template: { type: "string" },
    preset: { type: "string" },
    "stage2-merge-base": { type: "string" },
  },
  async run(values) {
    const name = "data export";
    const rows = await readBenchmarkFile(requireString(values, "benchmark", name));
    const files = hotpotFiles(values, name);
    const dir = outDir(values, name);
    const seed = optionalNumber(values, "seed", name) ?? 42;
    const limit = optionalNumber(values, "limit", name) ?? DEFAULT_STAGE2_LIMIT;
    const preset = optionalChoice(values, "preset", ["yaml", "autodl"] as const, name);
    const mergeBase = optionalChoice(values, "stage2-merge-base", ["paper", "stage1-merged"] as const, name);
    const { samples } = await readHotpotFiles(files, { limit: Math.max(limit + 50, rows.length) });
    const s2 = buildStage2(samples, { seed, limit });
    const used = new Set(s2.rows.map((r) => r.source_id));
    const result = await exportLlamaFactory(
      dir,
      {
        cognition: buildStage1(rows),
        promptSensitive: s2.rows,
        qa: buildQaAblation(samples.filter((s) => used.has(s.id))),
        cognitionPsqa: buildCognitionPsqa(rows, s2.rows),
        cognitionQa: buildStage1(rows, { withQa: samples }),
      },
      {
        ...(typeof values["model-path"] === "string" ? { modelPath: values["model-path"] } : {}),
        ...(typeof values["output-root"] === "string" ? { outputRoot: resolve(values["output-root"]) } : {}),
        ...(typeof values.template === "string" ? { template: values.template } : {}),
        ...(preset ? { preset } : {}),
        ...(mergeBase ? { stage2MergeBase: mergeBase } : {}),
      },
    );
    for (const [key, d] of Object.entries(result.datasets)) print(`${key}: ${d.rows} rows -> ${d.file}`);
    print(`train configs: ${Object.keys(result.trainConfigs).join(", ")}`);
    print(`merge configs: ${Object.keys(result.mergeConfigs).join(", ")}`);
  },
});

const build = defineCommand({
  name: "data build",
  summary: "every dataset from the shipped data/ files into DIR (what 'ktu start' does first)",
  help: `  --out DIR   output folder (default out/data; out/data/babi or out/data/squad with --source)
  --seed N    seed of the split and the stage-2 draws (default ${DEFAULT_SPLIT_SEED})
  --source babi|squad  instead of ASQA + HotpotQA: both sides of that benchmark, and stage 1, stage 2
              and the ablations from its train side only (src/data/README.md)
  --task N    bAbI task for --source babi (default 1)
  --file FILE the bAbI train file or SQuAD file for --source (default: the shipped one)`,
  options: { out: { type: "string" }, seed: { type: "string" }, source: { type: "string" }, task: { type: "string" }, file: { type: "string" } },
  async run(values) {
    const name = "data build";
    const seed = optionalNumber(values, "seed", name);
    const source = optionalChoice(values, "source", STAGE_SOURCES, name);
    if (!source) {
      for (const o of ["task", "file"]) if (values[o] !== undefined) throw new UsageError(`ktu ${name}: --${o} needs --source babi|squad`);
      const result = await buildAllDatasets({ outDir: typeof values.out === "string" ? values.out : "out/data", ...(seed !== undefined ? { seed } : {}) });
      print(formatBuildSummary(result));
      return;
    }
    const task = optionalNumber(values, "task", name);
    if (task !== undefined && source !== "babi") throw new UsageError(`ktu ${name}: --task applies to --source babi only`);
    const result = await buildSourceDatasets(source, {
      ...(typeof values.out === "string" ? { outDir: values.out } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(task !== undefined ? { task } : {}),
      ...(typeof values.file === "string" ? { file: values.file } : {}),
    });
    print(formatSourceBuildSummary(result));
  },
});

export const commands: Command[] = [benchmark, split, stage1, stage2, exportCommand, build];
