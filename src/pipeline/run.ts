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
import { evaluateArm, overlapReference, scoreOutputs, type ArmEvaluation } from "./evaluate.ts";

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
  /** Only these arms (a worker's share); default all. */
  arms?: PipelineArmId[];
}

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
export function pipelineDefaults(quick = false, model = defaultModelPath()): PipelineOptions {
  const declared = readPromptFormat(model);
  const maxLen = declared?.max_len ?? 256;
  return {
    out: "out",
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
    testRows: quick ? 16 : undefined,
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

export interface PipelineResult {
  options: PipelineOptions;
  model: { path: string; params: number; config: LlamaModelData["config"]; description: ModelDescription };
  /** The reader's acceptance numbers (acceptance.json beside the weights), when the file is there. */
  acceptance: { file: string; acceptance: ReaderAcceptance } | null;
  /** The prompts used: the model's declared format (prompt.json) or the built-in compact ones. */
  prompt: { format: string; file: string | null; contextChars: number | null; stop: string[] };
  data: { counts: unknown; sets: Record<TrainSetName, { examples: number; cropped: number; keptShare: number; preview: { prompt: string; target: string }[] }>; test: { n: number; cropped: number; keptShare: number } };
  overlapReference: { value: number; ci: [number, number] | null };
  trained: TrainedRun[];
  evaluations: { seed: number | null; arm: PipelineArmId; dir: string; evaluation: ArmEvaluation }[];
  build: BuildAllResult;
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

async function runSeedWorkers(options: PipelineOptions): Promise<void> {
  const worker = fileURLToPath(new URL("./worker.ts", import.meta.url));
  const chains: PipelineArmId[][] = [["stage1", "stage1_qa", "stage1_stage2"], ["qa"], ["stage2"]];
  const queue = chains.flatMap((arms) => options.seeds.map((seed) => ({ seed, arms })));
  const runOne = (task: { seed: number; arms: PipelineArmId[] }) =>
    new Promise<void>((done, fail) => {
      const child = fork(worker, [JSON.stringify({ ...options, seeds: [task.seed], arms: task.arms, worker: true, jobs: 1 })], { execArgv: ["--import", import.meta.resolve("tsx")], stdio: "inherit", env: workerEnv(options.jobs) });
      child.on("error", fail);
      child.on("exit", (code, signal) => (code === 0 ? done() : fail(new Error(`the worker for seed ${task.seed} (${task.arms.join(", ")}) stopped (${signal ?? `exit code ${code}`}); run again to continue`))));
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
    const parentSteps = new Set(["data", "compact prompts"]);
    const forward = emit;
    emit = (e) => {
      if (e.kind === "step" && e.state === "skipped" && parentSteps.has(e.step)) return;
      forward(e);
    };
  }
  const engineInfo = await initBackend();
  // Read (and checked) first: a bad acceptance.json fails the run now, not after the training.
  const acceptance = options.worker ? undefined : readAcceptance(options.model);

  const dataKey = keyOf({ asqa: options.asqaFile, hotpot: options.hotpotFiles, seed: options.splitSeed });
  const built = await step(join(out, "data", ".ktu-step"), dataKey, "data", emit, async () => {
    return buildAllDatasets({ outDir: join(out, "data"), asqaFile: options.asqaFile, hotpotFiles: options.hotpotFiles, seed: options.splitSeed });
  });

  const opened: OpenedModel = openModel(options.model, options.tokenizer);
  const base = opened.model;
  const tokenizer = opened.tokenizer;
  const maxLen = Math.min(options.maxLen, base.config.seqLen);
  // The model's own prompt format when it declares one (prompt.json beside it), else the compact prompts.
  const { prompts, stop, format, file } = pipelinePrompts(options.model);
  const modelKey = { model: resolve(options.model), size: readFileSync(options.model.endsWith(".bin") ? options.model : join(options.model, "config.json")).length, maxLen, dataKey, benchmark: options.benchmark, trainRows: options.trainRows, testRows: options.testRows, prompts, contextChars: options.contextChars, stop };
  // Tokenising and cropping takes seconds; the result is kept so that seed workers and reruns load it.
  const stored = await step(join(out, "data", "compact"), keyOf({ ...modelKey, maxNewTokens: options.maxNewTokens }), "compact prompts", emit, async () =>
    storeData(
      await buildPipelineData({
        tokenizer,
        maxLen,
        maxNewTokens: options.maxNewTokens,
        prompts,
        contextChars: options.contextChars,
        paths: built.paths,
        hotpotFiles: options.hotpotFiles,
        benchmark: options.benchmark,
        trainRows: options.trainRows,
        testRows: options.testRows,
      }),
    ),
  );
  const data = loadData(stored);

  const trained: TrainedRun[] = [];
  const evaluations: PipelineResult["evaluations"] = [];
  const evalKeyBase = { ...modelKey, maxNewTokens: options.maxNewTokens, draws: options.draws, v: 1 };

  const evaluate = async (model: LlamaModelData, dir: string, name: string, seed: number | null, arm: PipelineArmId, trainKey: string): Promise<void> => {
    const stored = await step(join(dir, "eval"), keyOf({ ...evalKeyBase, trainKey }), `${name}: evaluate`, emit, () =>
      evaluateArm(model, tokenizer, data.test, { maxNewTokens: options.maxNewTokens, prompts, stop, draws: options.draws, seed: seed ?? 0, onProgress: (done, total) => emit({ kind: "eval", step: name, done, total }) }),
    );
    // The answers are kept; the numbers are recomputed from them, so a change of scoring needs no new generation.
    const evaluation = { ...scoreOutputs(stored.items, data.test, { draws: options.draws, seed: seed ?? 0 }), seconds: stored.seconds };
    evaluations.push({ seed, arm, dir, evaluation });
  };

  if (!options.worker) await evaluate(base, join(runsDir, "base"), "base", null, "base", "base");
  // Seeds in parallel child processes; the loop below then finds their steps done and only loads them.
  if (!options.worker && options.jobs > 1) await runSeedWorkers(options);

  for (const seed of options.seeds) {
    const seedDir = join(runsDir, `seed-${seed}`);
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
      const name = `seed ${seed} ${arm}`;
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
      if (arm.id === "base" || (options.arms && !options.arms.includes(arm.id))) continue;
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
      await evaluate(current.model, join(seedDir, arm.train.join("-then-")), `seed ${seed} ${arm.id}`, seed, arm.id, current.key);
    }
  }

  const counts = built.counts;
  const sets = Object.fromEntries(Object.entries(data.sets).map(([k, s]) => [k, { examples: s.examples.length, cropped: s.cropped, keptShare: s.keptShare, preview: s.preview }])) as PipelineResult["data"]["sets"];
  return {
    options,
    model: { path: options.model, params: countParams(base.config), config: base.config, description: describeModel(options.model, base.config) },
    acceptance: acceptance ?? null,
    prompt: { format, file, contextChars: options.contextChars ?? null, stop },
    data: { counts, sets, test: { n: data.test.length, cropped: data.testCropped, keptShare: data.testKeptShare } },
    overlapReference: overlapReference(data.test, options.draws),
    trained,
    evaluations,
    build: built,
    seconds: (performance.now() - t0) / 1000,
    stepSeconds,
    reportDir,
    engine: { name: engineInfo.name, line: describeBackend(engineInfo) },
  };
}
