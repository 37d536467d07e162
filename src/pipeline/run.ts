/**
 * The main job (`ktu start`): data, stage 1, merge, stage 2 and the paper's ablations over several
 * seeds, evaluation with collapse diagnostics and calibration, then out/report. Every step writes its
 * outputs atomically and then a completion marker holding a key of its settings; a rerun skips
 * finished steps, continues a killed training from its last checkpoint, and redoes a step whose
 * settings changed.
 */
import { fork } from "node:child_process";
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildAllDatasets, DEFAULT_ASQA_FILE, DEFAULT_HOTPOT_FILES, type BuildAllResult } from "../data/build-all.ts";
import { currentBackend, describeBackend, initBackend } from "../model/backend.ts";
import { countParams, describeModel, type ModelDescription } from "../model/describe.ts";
import { openModel, type OpenedModel } from "../model/open.ts";
import { promptFormatPath, readPromptFormat, type PromptTexts } from "../model/prompt-format.ts";
import type { LlamaModelData } from "../model/types.ts";
import { LoraAdapter, mergeLora } from "../train/lora.ts";
import { SftTrainer, type StepResult } from "../train/sft.ts";
import type { LlamaProjection } from "../model/types.ts";
import { writeJsonAtomic } from "../util/fs.ts";
import { dataPath } from "../util/paths.ts";
import { readAcceptance, type ReaderAcceptance } from "./acceptance.ts";
import { COMPACT_PROMPTS } from "./compact.ts";
import { buildPipelineData, type PipelineData, type TrainSetName } from "./datasets.ts";
import { evaluateArm, nonReadingBaselines, overlapReference, scoreOutputs, type ArmEvaluation, type MetricWithCi, type NonReadingBaseline } from "./evaluate.ts";
import type { TestItem } from "./datasets.ts";
import { buildSourceData, PIPELINE_SOURCES, sourceTitle, type PipelineSource, type SourceDataResult } from "./sources.ts";

/** The six settings of the authors' temp.py figure (paper.md 4.2), in its order. */
export const PIPELINE_ARMS = [
  { id: "base", label: "base model", paperLabel: "LLaMA2", train: [] as TrainSetName[] },
  { id: "stage1", label: "stage 1 only", paperLabel: "Cognition", train: ["stage1"] as TrainSetName[] },
  { id: "qa", label: "QA only", paperLabel: "HotpotQA", train: ["qa"] as TrainSetName[] },
  { id: "stage2", label: "stage 2 only", paperLabel: "PSQA", train: ["stage2"] as TrainSetName[] },
  { id: "stage1_qa", label: "stage 1 then QA", paperLabel: "Cognition & QA", train: ["stage1", "qa"] as TrainSetName[] },
  { id: "stage1_stage2", label: "stage 1 then stage 2 (US-Tuning)", paperLabel: "Cognition & PSQA", train: ["stage1", "stage2"] as TrainSetName[] },
] as const;
export type PipelineArmId = (typeof PIPELINE_ARMS)[number]["id"];

export interface PipelineOptions {
  out: string;
  /** The benchmarks, each with its own six arms over the seeds (default all three). */
  sources: PipelineSource[];
  /** The bAbI task (1-20) when bAbI is among the sources (default 1). */
  babiTask: number;
  /** A llama2.c .bin or a Hugging Face folder; default data/models/reader if present, else stories260K. */
  model: string;
  tokenizer?: string;
  asqaFile: string;
  hotpotFiles: string[];
  benchmark: "paper" | "corrected";
  seeds: number[];
  splitSeed: number;
  maxLen: number;
  maxNewTokens: number;
  /** Passages are first cropped to about this many characters around the answer (the model's prompt.json context_chars); then to fit maxLen. */
  contextChars?: number;
  trainRows?: number;
  /** At most this many test rows per benchmark (bAbI and SQuAD: a seeded draw spread over stories and articles; ASQA: the first ones). */
  testRows?: number;
  epochs: number;
  /** > 0: this many optimizer steps per training instead of epochs. */
  maxSteps: number;
  learningRate: number;
  batchSize: number;
  loraRank: number;
  loraTargets: LlamaProjection[];
  draws: number;
  quick: boolean;
  /** Seeds trained at once in child processes (each TF.js wasm process uses one core). */
  jobs: number;
  /** Set in a child process: train and evaluate `seeds` only (the parent did the data and the base model). */
  worker?: boolean;
  /** Only these arms (a worker's share, or `--arms`); default all. */
  arms?: PipelineArmId[];
}

/** Answer tokens on a benchmark: bAbI's answers are one or two words, so at most 8 there. */
export const sourceMaxNewTokens = (source: PipelineSource, maxNewTokens: number): number => (source === "babi" ? Math.min(maxNewTokens, 8) : maxNewTokens);

/**
 * The default model: the reader (`models/reader/reader.bin`, or a Hugging Face folder there) when it
 * is present, else stories260K. `modelsDir` is data/models; tests pass a folder of their own.
 */
export function defaultModelPath(modelsDir = dataPath("models")): string {
  const reader = join(modelsDir, "reader");
  if (existsSync(join(reader, "reader.bin"))) return join(reader, "reader.bin");
  if (existsSync(join(reader, "config.json"))) return reader;
  return join(modelsDir, "stories260K", "stories260K.bin");
}

/**
 * The main job's settings for `model` (default: defaultModelPath()). A model that declares its prompt
 * format (prompt.json beside it) sets the length, the answer length and the passage crop; otherwise
 * 256 tokens (quick: 192) and 12 answer tokens.
 */
/** Test rows per benchmark in the default run (ASQA's test side has 99 under the paper filter). */
export const DEFAULT_TEST_ROWS = 100;

export function pipelineDefaults(quick = false, model = defaultModelPath()): PipelineOptions {
  const declared = readPromptFormat(model);
  const maxLen = declared?.max_len ?? 256;
  return {
    out: "out",
    sources: [...PIPELINE_SOURCES],
    babiTask: 1,
    model,
    asqaFile: DEFAULT_ASQA_FILE,
    hotpotFiles: DEFAULT_HOTPOT_FILES,
    benchmark: "paper",
    seeds: quick ? [1] : [1, 2, 3],
    splitSeed: 42,
    maxLen: quick ? Math.min(192, maxLen) : maxLen,
    maxNewTokens: declared?.max_new_tokens ?? 12,
    ...(declared ? { contextChars: declared.context_chars } : {}),
    trainRows: quick ? 32 : 256,
    testRows: quick ? 16 : DEFAULT_TEST_ROWS,
    epochs: 1,
    maxSteps: quick ? 2 : 0,
    learningRate: 2e-3,
    batchSize: 16,
    loraRank: 8,
    loraTargets: ["wq", "wk", "wv", "wo", "w1", "w2", "w3"],
    draws: quick ? 200 : 1000,
    quick,
    jobs: Math.max(1, Math.min(availableParallelism(), 4)),
  };
}

/**
 * The prompts the main job (and the notebooks) use with `model`: its declared prompt format's texts and
 * stop strings (prompt.json beside it), else the built-in compact prompts and a line break.
 */
export function pipelinePrompts(model: string): { prompts: PromptTexts; stop: string[]; format: string; file: string | null } {
  const declared = readPromptFormat(model);
  if (!declared) return { prompts: COMPACT_PROMPTS, stop: ["\n"], format: "compact (built in, src/pipeline/compact.ts)", file: null };
  return { prompts: { templates: declared.templates, labels: declared.labels }, stop: [...declared.stop], format: declared.format, file: promptFormatPath(model) };
}

export type PipelineEvent =
  | { kind: "step"; step: string; state: "skipped" | "started" | "done"; seconds?: number; detail?: string }
  | { kind: "train"; step: string; result: StepResult }
  | { kind: "eval"; step: string; done: number; total: number };

export interface TrainedRun {
  seed: number;
  arm: PipelineArmId;
  set: TrainSetName;
  dir: string;
  steps: number;
  finalLoss: number;
  seconds: number;
  examples: number;
}

/** One benchmark's run: its data, the non-reading baselines, every training and every evaluation. */
export interface BenchmarkRun {
  source: PipelineSource;
  /** How the report names it ("bAbI task 1"). */
  title: string;
  data: { counts: unknown; sets: Record<TrainSetName, { examples: number; cropped: number; keptShare: number; preview: { prompt: string; target: string }[] }>; test: { n: number; cropped: number; keptShare: number } };
  /** The test items (passage as shown, questions, gold answers), for re-scoring. */
  test: TestItem[];
  overlapReference: MetricWithCi;
  baselines: NonReadingBaseline[];
  maxNewTokens: number;
  trained: TrainedRun[];
  evaluations: { seed: number | null; arm: PipelineArmId; dir: string; evaluation: ArmEvaluation }[];
  /** ASQA: every dataset of the paper (buildAllDatasets); bAbI and SQuAD: their files (sources.ts). */
  build: BuildAllResult | null;
  sourceData: SourceDataResult | null;
}

export interface PipelineResult {
  options: PipelineOptions;
  model: { path: string; params: number; config: LlamaModelData["config"]; description: ModelDescription };
  /** The reader's acceptance numbers (acceptance.json beside the weights), when the file is there. */
  acceptance: { file: string; acceptance: ReaderAcceptance } | null;
  /** The prompts used: the model's declared format (prompt.json) or the built-in compact ones. */
  prompt: { format: string; file: string | null; contextChars: number | null; stop: string[] };
  /** Every benchmark run, in the order of options.sources. */
  benchmarks: BenchmarkRun[];
  /** The fields below are those of the primary benchmark (ASQA when it ran, else the first), as before there were several. */
  primary: PipelineSource;
  data: BenchmarkRun["data"];
  overlapReference: MetricWithCi;
  trained: TrainedRun[];
  evaluations: BenchmarkRun["evaluations"];
  /** ASQA's datasets when ASQA ran, else null. */
  build: BuildAllResult | null;
  /** Wall time of this invocation. */
  seconds: number;
  /** All steps' own times, including those finished by earlier invocations and by parallel workers. */
  stepSeconds: number;
  reportDir: string;
  /** The engine that ran (backend.ts): name, and the line the run printed. */
  engine: { name: string; line: string };
}

/**
 * Trains in child processes (worker.ts), at most `jobs` at a time; rejects when one fails. The work of
 * a seed is cut into independent chains (stage 1 and the two arms built on it; QA only; stage 2 only),
 * longest first, so that the cores stay busy to the end.
 */
/**
 * The children run the main job's engine; on native, lanes share the cores (each addon would
 * otherwise start a thread per core), unless KTU_NATIVE_THREADS says otherwise.
 */
function workerEnv(jobs: number): NodeJS.ProcessEnv {
  const engine = currentBackend()?.name;
  const env: NodeJS.ProcessEnv = { ...process.env, ...(engine ? { KTU_ENGINE: engine } : {}) };
  if (engine === "native" && !process.env.KTU_NATIVE_THREADS) env.KTU_NATIVE_THREADS = String(Math.max(1, Math.floor(availableParallelism() / Math.max(1, jobs))));
  return env;
}

async function runSeedWorkers(options: PipelineOptions, withBase: boolean): Promise<void> {
  const worker = fileURLToPath(new URL("./worker.ts", import.meta.url));
  const wanted = (arm: PipelineArmId) => !options.arms || options.arms.includes(arm);
  const chains: PipelineArmId[][] = ([["stage1", "stage1_qa", "stage1_stage2"], ["qa"], ["stage2"]] as PipelineArmId[][]).map((c) => c.filter(wanted)).filter((c) => c.length > 0);
  // The longest chains first, over every benchmark; each benchmark's base model evaluation is a task too.
  type Task = { source: PipelineSource; seed: number; arms: PipelineArmId[] };
  const queue: Task[] = chains.flatMap((arms) => options.sources.flatMap((source) => options.seeds.map((seed) => ({ source, seed, arms }))));
  if (withBase) queue.push(...options.sources.map((source) => ({ source, seed: options.seeds[0]!, arms: ["base"] as PipelineArmId[] })));
  const runOne = (task: Task) =>
    new Promise<void>((done, fail) => {
      const child = fork(worker, [JSON.stringify({ ...options, sources: [task.source], seeds: [task.seed], arms: task.arms, worker: true, jobs: 1 })], { execArgv: ["--import", import.meta.resolve("tsx")], stdio: "inherit", env: workerEnv(options.jobs) });
      child.on("error", fail);
      child.on("exit", (code, signal) => (code === 0 ? done() : fail(new Error(`the worker for ${task.source} seed ${task.seed} (${task.arms.join(", ")}) stopped (${signal ?? `exit code ${code}`}); run again to continue`))));
    });
  const lanes = Array.from({ length: Math.min(options.jobs, queue.length) }, async () => {
    for (let task = queue.shift(); task !== undefined; task = queue.shift()) await runOne(task);
  });
  await Promise.all(lanes);
}

type StoredData = Omit<PipelineData, "sets"> & { sets: Record<TrainSetName, Omit<PipelineData["sets"][TrainSetName], "examples"> & { examples: { inputIds: number[]; labels: number[]; row: number; fullLength: number }[] }> };
const storeData = (d: PipelineData): StoredData => ({
  ...d,
  sets: Object.fromEntries(Object.entries(d.sets).map(([k, s]) => [k, { ...s, examples: s.examples.map((e) => ({ ...e, inputIds: [...e.inputIds], labels: [...e.labels] })) }])) as StoredData["sets"],
});
const loadData = (d: StoredData): PipelineData => ({
  ...d,
  sets: Object.fromEntries(Object.entries(d.sets).map(([k, s]) => [k, { ...s, examples: s.examples.map((e) => ({ ...e, inputIds: Int32Array.from(e.inputIds), labels: Int32Array.from(e.labels) })) }])) as PipelineData["sets"],
});

const keyOf = (value: unknown): string => createHash("sha1").update(JSON.stringify(value)).digest("hex").slice(0, 16);
const readJson = <T>(path: string): T | undefined => {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
};

const MARKER = "done.json";
/** Seconds of every step of this run, finished now or earlier (read from the markers), summed in runPipeline. */
let stepSeconds = 0;
/** When this invocation began: a step that a seed worker finished since then is not "already done" news. */
let invocationStart = 0;

/** Runs `work` unless `dir/done.json` holds the same key; clears a stale folder first. */
async function step<T>(dir: string, key: string, name: string, emit: (e: PipelineEvent) => void, work: () => Promise<T>, keepPartial = false): Promise<T> {
  const marker = readJson<{ key: string; value: T; seconds: number; finished?: string }>(join(dir, MARKER));
  if (marker && marker.key === key) {
    const finishedNow = marker.finished !== undefined && Date.parse(marker.finished) >= invocationStart;
    if (!finishedNow) emit({ kind: "step", step: name, state: "skipped", seconds: marker.seconds });
    stepSeconds += marker.seconds;
    return marker.value;
  }
  // A folder from other settings is removed; a partial one of the same settings (a killed training) is kept to resume.
  const partial = readJson<{ key: string }>(join(dir, "started.json"));
  if (existsSync(dir) && (!keepPartial || partial?.key !== key)) rmSync(dir, { recursive: true, force: true });
  await writeJsonAtomic(join(dir, "started.json"), { key });
  emit({ kind: "step", step: name, state: "started" });
  const t0 = performance.now();
  const value = await work();
  const seconds = (performance.now() - t0) / 1000;
  stepSeconds += seconds;
  await writeJsonAtomic(join(dir, MARKER), { key, value, seconds, finished: new Date().toISOString() });
  emit({ kind: "step", step: name, state: "done", seconds });
  return value;
}

/** A step's name, prefixed with its benchmark ("babi seed 1 stage1: train on stage1"). */
const stepName = (_options: PipelineOptions, source: PipelineSource, name: string): string => `${source} ${name}`;

export async function runPipeline(options: PipelineOptions, emit: (e: PipelineEvent) => void = () => {}): Promise<PipelineResult> {
  const t0 = performance.now();
  const out = resolve(options.out);
  const reportDir = join(out, "report");
  stepSeconds = 0;
  invocationStart = Date.now();
  const runsDir = join(reportDir, "runs");
  if (options.worker) {
    // A seed worker loads the data and prompts its parent has just made: saying "already done" again
    // would read, on a fresh run, as a rerun.
    const forward = emit;
    emit = (e) => {
      if (e.kind === "step" && e.state === "skipped" && /(^| )(data|compact prompts)$/.test(e.step)) return;
      forward(e);
    };
  }
  const engineInfo = await initBackend();
  // Read (and checked) first: a bad acceptance.json fails the run now, not after the training.
  const acceptance = options.worker ? undefined : readAcceptance(options.model);
  const sources = options.sources.length ? options.sources : [...PIPELINE_SOURCES];

  const opened: OpenedModel = openModel(options.model, options.tokenizer);
  const base = opened.model;
  const tokenizer = opened.tokenizer;
  const maxLen = Math.min(options.maxLen, base.config.seqLen);
  // The model's own prompt format when it declares one (prompt.json beside it), else the compact prompts.
  const { prompts, stop, format, file } = pipelinePrompts(options.model);
  const modelSize = readFileSync(options.model.endsWith(".bin") ? options.model : join(options.model, "config.json")).length;
  const wanted = (arm: PipelineArmId) => !options.arms || options.arms.includes(arm);

  /** Data, prompts and the baselines of one benchmark (the parent's work before any training). */
  const prepare = async (source: PipelineSource) => {
    let build: BuildAllResult | null = null;
    let sourceData: SourceDataResult | null = null;
    let dataKey: string;
    let paths: Record<string, string>;
    let compactDir: string;
    if (source === "asqa") {
      dataKey = keyOf({ asqa: options.asqaFile, hotpot: options.hotpotFiles, seed: options.splitSeed });
      build = await step(join(out, "data", ".ktu-step"), dataKey, stepName(options, source, "data"), emit, async () =>
        buildAllDatasets({ outDir: join(out, "data"), asqaFile: options.asqaFile, hotpotFiles: options.hotpotFiles, seed: options.splitSeed }),
      );
      paths = build.paths;
      compactDir = join(out, "data", "compact");
    } else {
      dataKey = keyOf({ source, seed: options.splitSeed, babiTask: source === "babi" ? options.babiTask : undefined, testRows: options.testRows, qaSamples: options.trainRows, v: 2 });
      const dir = join(out, "data", source);
      sourceData = await step(join(dir, ".ktu-step"), dataKey, stepName(options, source, "data"), emit, () =>
        buildSourceData(source, { outDir: dir, seed: options.splitSeed, babiTask: options.babiTask, testRows: options.testRows, qaSamples: options.trainRows }),
      );
      paths = sourceData.paths;
      compactDir = join(dir, "compact");
    }
    const maxNewTokens = sourceMaxNewTokens(source, options.maxNewTokens);
    const modelKey = { model: resolve(options.model), size: modelSize, maxLen, dataKey, benchmark: options.benchmark, trainRows: options.trainRows, testRows: options.testRows, prompts, contextChars: options.contextChars, stop };
    // Tokenising and cropping takes seconds; the result is kept so that seed workers and reruns load it.
    const stored = await step(compactDir, keyOf({ ...modelKey, maxNewTokens }), stepName(options, source, "compact prompts"), emit, async () =>
      storeData(
        await buildPipelineData({
          tokenizer,
          maxLen,
          maxNewTokens,
          prompts,
          contextChars: options.contextChars,
          paths,
          hotpotFiles: options.hotpotFiles,
          ...(paths.samples ? { samplesFile: paths.samples } : {}),
          benchmark: options.benchmark,
          trainRows: options.trainRows,
          testRows: options.testRows,
        }),
      ),
    );
    return { source, build, sourceData, modelKey, maxNewTokens, data: loadData(stored) };
  };

  const prepared = [];
  for (const source of sources) prepared.push(await prepare(source));
  // Seeds (and each benchmark's base evaluation) in parallel child processes; the loops below then find their steps done and only load them.
  if (!options.worker && options.jobs > 1) await runSeedWorkers({ ...options, sources }, wanted("base"));

  const benchmarks: BenchmarkRun[] = [];
  for (const { source, build, sourceData, modelKey, maxNewTokens, data } of prepared) {
    const trained: TrainedRun[] = [];
    const evaluations: BenchmarkRun["evaluations"] = [];
    const evalKeyBase = { ...modelKey, maxNewTokens, draws: options.draws, v: 1 };
    const sourceRuns = join(runsDir, source);
    const evaluate = async (model: LlamaModelData, dir: string, name: string, seed: number | null, arm: PipelineArmId, trainKey: string): Promise<void> => {
      const stored = await step(join(dir, "eval"), keyOf({ ...evalKeyBase, trainKey }), `${name}: evaluate`, emit, () =>
        evaluateArm(model, tokenizer, data.test, { maxNewTokens, prompts, stop, draws: options.draws, seed: seed ?? 0, onProgress: (done, total) => emit({ kind: "eval", step: name, done, total }) }),
      );
      // The answers are kept; the numbers are recomputed from them, so a change of scoring needs no new generation.
      const evaluation = { ...scoreOutputs(stored.items, data.test, { draws: options.draws, seed: seed ?? 0 }), seconds: stored.seconds };
      evaluations.push({ seed, arm, dir, evaluation });
    };

    if (wanted("base") && (!options.worker || options.arms?.includes("base"))) await evaluate(base, join(sourceRuns, "base"), stepName(options, source, "base"), null, "base", "base");

    for (const seed of options.seeds) {
      const seedDir = join(sourceRuns, `seed-${seed}`);
      const merged = new Map<string, { model: LlamaModelData; key: string }>();
      const trainOne = async (arm: PipelineArmId, set: TrainSetName, from: { model: LlamaModelData; key: string }, dir: string): Promise<{ model: LlamaModelData; key: string }> => {
        const examples = data.sets[set].examples;
        const sft = {
          learningRate: options.learningRate,
          numTrainEpochs: options.epochs,
          maxSteps: options.maxSteps,
          batchSize: options.batchSize,
          lrSchedulerType: "cosine" as const,
          warmupRatio: 0.05,
          seed,
          loggingSteps: 1,
          lora: { rank: options.loraRank, alpha: 2 * options.loraRank, dropout: 0, targets: options.loraTargets },
        };
        const key = keyOf({ ...modelKey, from: from.key, set, sft, examples: examples.length });
        const name = stepName(options, source, `seed ${seed} ${arm}`);
        const run = await step(
          dir,
          key,
          `${name}: train on ${set}`,
          emit,
          async () => {
            const t = performance.now();
            const trainer = new SftTrainer({ model: from.model, train: examples, config: { ...sft, saveSteps: Math.max(5, Math.ceil(examples.length / options.batchSize / 3)) }, outputDir: dir, baseModelName: options.model, padId: tokenizer.eosId, resumeFrom: true });
            if (trainer.step > 0) emit({ kind: "step", step: `${name}: train on ${set}`, state: "started", detail: `resumed at step ${trainer.step}/${trainer.totalSteps}` });
            await trainer.train((result) => emit({ kind: "train", step: `${name}: ${set}`, result }));
            const last = trainer.history.at(-1);
            trainer.dispose();
            for (const f of readdirSync(dir)) if (f.startsWith("checkpoint-")) rmSync(join(dir, f), { recursive: true, force: true });
            const finalLoss = last?.loss ?? NaN;
            return { seed, arm, set, dir, steps: trainer.totalSteps, finalLoss, seconds: (performance.now() - t) / 1000, examples: examples.length } satisfies TrainedRun;
          },
          true,
        );
        trained.push(run);
        const adapter = LoraAdapter.load(dir, from.model.config);
        const model = mergeLora(from.model, adapter);
        adapter.dispose();
        return { model, key };
      };

      for (const arm of PIPELINE_ARMS) {
        if (arm.id === "base" || !wanted(arm.id)) continue;
        let current = { model: base, key: "base" };
        const path: string[] = [];
        for (const set of arm.train) {
          path.push(set);
          const cacheKey = path.join("+");
          const known = merged.get(cacheKey);
          // stage 1 is trained once per seed and shared by the arms that start from it (merged, as the paper's stage 2 starts from the stage-1 merge).
          current = known ?? (await trainOne(arm.id, set, current, join(seedDir, path.join("-then-"))));
          merged.set(cacheKey, current);
        }
        await evaluate(current.model, join(seedDir, arm.train.join("-then-")), stepName(options, source, `seed ${seed} ${arm.id}`), seed, arm.id, current.key);
      }
    }
    const sets = Object.fromEntries(Object.entries(data.sets).map(([k, s]) => [k, { examples: s.examples.length, cropped: s.cropped, keptShare: s.keptShare, preview: s.preview }])) as BenchmarkRun["data"]["sets"];
    benchmarks.push({
      source,
      title: sourceTitle(source, options.babiTask),
      data: { counts: build ? build.counts : sourceData!.counts, sets, test: { n: data.test.length, cropped: data.testCropped, keptShare: data.testKeptShare } },
      test: data.test,
      // A worker's result is thrown away: no bootstrap there.
      overlapReference: options.worker ? { value: NaN, ci: null } : overlapReference(data.test, options.draws),
      baselines: options.worker ? [] : nonReadingBaselines(data.test, { draws: options.draws }),
      maxNewTokens,
      trained,
      evaluations,
      build,
      sourceData,
    });
  }

  const primary = benchmarks.find((b) => b.source === "asqa") ?? benchmarks[0]!;
  return {
    options,
    model: { path: options.model, params: countParams(base.config), config: base.config, description: describeModel(options.model, base.config) },
    acceptance: acceptance ?? null,
    prompt: { format, file, contextChars: options.contextChars ?? null, stop },
    benchmarks,
    primary: primary.source,
    data: primary.data,
    overlapReference: primary.overlapReference,
    trained: primary.trained,
    evaluations: primary.evaluations,
    build: benchmarks.find((b) => b.source === "asqa")?.build ?? null,
    seconds: (performance.now() - t0) / 1000,
    stepSeconds,
    reportDir,
    engine: { name: engineInfo.name, line: describeBackend(engineInfo) },
  };
}
