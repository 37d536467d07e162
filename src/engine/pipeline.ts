import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { isHubSpec, resolveHubModelSync } from "../model/hub.ts";
import { paperMergeConfigs, paperTrainConfigs, toYaml, type LlamaFactoryPreset, type LlamaFactoryTrainConfig } from "../data/llamafactory.ts";
import { writeFileAtomic, writeJsonAtomic } from "../util/fs.ts";
import { launchLlamaFactory, type LfJob, type LfJobResult, type LfLaunchOptions } from "./launch.ts";
import { lfKeys, type LfCommand, type LfWarmupKey } from "./keys.ts";
import type { LfConfigRecord } from "./validate.ts";

/**
 * US-Tuning on LLaMA-Factory: stage 1 -> merge -> stage 2 on the merged model -> merge, plus the
 * ablations. Each step keeps a marker (ktu-step.json: a hash of its config and the run ids of its
 * inputs) in its output folder, written when it starts and again when it completes. A re-run
 * skips completed steps, resumes an interrupted training step from its last checkpoint, and
 * redoes a step whose config or inputs changed.
 */
export interface LfPipelineStep {
  readonly name: string;
  readonly command: LfCommand;
  readonly config: LfConfigRecord;
  /** output_dir (train) or export_dir (export). */
  readonly output: string;
  /** Steps whose output this one reads. */
  readonly needs: readonly string[];
}

/** The training runs beyond the main two stages, by the authors' config names. */
export const LF_ABLATIONS = ["Llama2_Stage1_QA", "Llama2_Stage2", "Llama2_QA", "Llama2_Cognition_PSQA_Mixture", "Llama2_Cognition_QA_Mixture"] as const;
export type LfAblation = (typeof LF_ABLATIONS)[number];

export interface LfPipelineOptions extends Omit<LfLaunchOptions, "name" | "configPath" | "resume" | "overrides"> {
  /** The base model folder (the paper: llama-2-7b-chat-hf). */
  modelPath: string;
  /** Folder of dataset_info.json and the Alpaca files (`ktu data export` writes it). */
  datasetDir: string;
  /** Everything goes under here: configs/, one folder per adapter and merged model. */
  outDir: string;
  template?: string;
  /** Hyper-parameter source: the authors' YAMLs (default) or their autodl.txt command lines. */
  preset?: LlamaFactoryPreset;
  /** Extra keys for every training config, e.g. { max_samples: 200 }; null removes a key. */
  trainOverrides?: Partial<LlamaFactoryTrainConfig> | Record<string, unknown>;
  /** warmup_steps (transformers >= 5.2) or warmup_ratio (4.x); default: what the installed engine behind `cli` accepts. */
  warmupKey?: LfWarmupKey;
  /** Which ablations to run after the main pipeline; default none. */
  ablations?: readonly LfAblation[];
  /** Where the final stage-2 adapter is merged: the authors' vanilla base ("paper") or the stage-1 merge. */
  stage2MergeBase?: "paper" | "stage1-merged";
  /** Stops the running step (SIGINT, then SIGTERM) and the pipeline. */
  signal?: AbortSignal;
  /** Called as each step is skipped, started (with its job, for live views) and finished. */
  onStep?: (event: LfPipelineEvent) => void;
}

export type LfPipelineEvent =
  | { type: "skipped"; step: LfPipelineStep }
  | { type: "started"; step: LfPipelineStep; job: LfJob; resumed: boolean }
  | { type: "finished"; step: LfPipelineStep; job: LfJob; result: LfJobResult };

export interface LfPipelineResult {
  status: "completed" | "interrupted";
  /** Step name -> what happened to it this run. */
  steps: Record<string, "skipped" | "ran" | "interrupted" | "not reached">;
  /** The merged final model (stage 2 merged). */
  finalModel: string;
}

export const LF_STEP_MARKER = "ktu-step.json";

/** The steps in the order they run. */
/**
 * The base model as LLaMA-Factory should read it: `hf:ORG/NAME[@REV]` is downloaded into (or found
 * in) the shared huggingface_hub cache and its snapshot folder used, so validation sees its modules
 * and the revision is exact; a local path is made absolute; anything else (ORG/NAME) is left for
 * LLaMA-Factory to fetch itself.
 */
export function lfBaseModel(modelPath: string): string {
  if (isHubSpec(modelPath)) return resolveHubModelSync(modelPath);
  return existsSync(modelPath) || isAbsolute(modelPath) || modelPath.startsWith(".") || !/^[\w.-]+\/[\w.-]+$/.test(modelPath) ? resolve(modelPath) : modelPath;
}

export function lfPipelineSteps(options: Pick<LfPipelineOptions, "modelPath" | "datasetDir" | "outDir" | "template" | "preset" | "trainOverrides" | "ablations" | "stage2MergeBase" | "warmupKey" | "cli">): LfPipelineStep[] {
  const outputRoot = resolve(options.outDir);
  const base = { modelPath: lfBaseModel(options.modelPath), outputRoot, template: options.template };
  const warmupKey = options.warmupKey ?? lfKeys(options.cli).warmup;
  const train = paperTrainConfigs({ ...base, datasetDir: resolve(options.datasetDir), preset: options.preset, overrides: options.trainOverrides, warmupKey });
  const merge = paperMergeConfigs({ ...base, stage2MergeBase: options.stage2MergeBase });
  const trainStep = (name: string, needs: string[]): LfPipelineStep => {
    const config = train[name]!;
    return { name, command: "train", config: { ...config }, output: config.output_dir, needs };
  };
  const mergeStep = (name: string, needs: string[]): LfPipelineStep => {
    const config = merge[name]!;
    return { name, command: "export", config: { ...config }, output: config.export_dir, needs };
  };
  const steps = [
    trainStep("Llama2_Stage1", []),
    mergeStep("Llama2_Stage1_merge", ["Llama2_Stage1"]),
    trainStep("Llama2_Stage1_Stage2", ["Llama2_Stage1_merge"]),
    mergeStep("Llama2_Stage1_Stage2_merge", ["Llama2_Stage1_Stage2"]),
  ];
  for (const ablation of options.ablations ?? []) steps.push(trainStep(ablation, ablation === "Llama2_Stage1_QA" ? ["Llama2_Stage1_merge"] : []));
  return steps;
}

const stableJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));

export const lfConfigHash = (config: LfConfigRecord): string => createHash("sha256").update(stableJson(config)).digest("hex").slice(0, 16);

/** The files a finished step leaves: an adapter (train) or a model with weights (export). */
function outputComplete(step: LfPipelineStep): boolean {
  if (!existsSync(step.output)) return false;
  if (step.command === "train") return existsSync(join(step.output, "adapter_model.safetensors")) || existsSync(join(step.output, "adapter_model.bin"));
  const files = readdirSync(step.output);
  return files.includes("config.json") && files.some((f) => /\.(safetensors|bin)$/.test(f));
}

interface StepMarker {
  step: string;
  command: LfCommand;
  /** "started" is written before launch, so an interrupted step is known to be this config's. */
  status: "started" | "done";
  configHash: string;
  /** The runId of each step this one read, so that redoing an input redoes this step too. */
  inputs: Record<string, string>;
  runId?: string;
  startedAt: string;
  finishedAt?: string;
  config: LfConfigRecord;
}

function readMarker(step: LfPipelineStep): StepMarker | undefined {
  const path = join(step.output, LF_STEP_MARKER);
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as StepMarker) : undefined;
}

/**
 * "done": the marker says this config with these inputs finished and the outputs are there.
 * "resume": this config with these inputs was started (or its outputs went missing): continue it.
 * "fresh": no marker, or one for another config or other inputs, whose checkpoints must not be resumed.
 */
export function lfStepState(step: LfPipelineStep, inputs: Record<string, string> = {}): "done" | "resume" | "fresh" {
  const marker = readMarker(step);
  if (!marker || marker.configHash !== lfConfigHash(step.config) || stableJson(marker.inputs ?? {}) !== stableJson(inputs)) return "fresh";
  return marker.status === "done" && outputComplete(step) ? "done" : "resume";
}

export async function runLfPipeline(options: LfPipelineOptions): Promise<LfPipelineResult> {
  const steps = lfPipelineSteps(options);
  const result: LfPipelineResult = { status: "completed", steps: Object.fromEntries(steps.map((s) => [s.name, "not reached"])), finalModel: steps[3]!.output };
  const configDir = join(resolve(options.outDir), "configs");
  const runIds: Record<string, string> = {};
  for (const step of steps) {
    if (options.signal?.aborted) return { ...result, status: "interrupted" };
    const inputs = Object.fromEntries(step.needs.map((need) => [need, runIds[need] ?? ""]));
    const state = lfStepState(step, inputs);
    if (state === "done") {
      runIds[step.name] = readMarker(step)!.runId!;
      result.steps[step.name] = "skipped";
      options.onStep?.({ type: "skipped", step });
      continue;
    }
    const configPath = join(configDir, `${step.name}.yaml`);
    await writeFileAtomic(configPath, toYaml(step.config));
    const markerPath = join(step.output, LF_STEP_MARKER);
    const marker: StepMarker = { step: step.name, command: step.command, status: "started", configHash: lfConfigHash(step.config), inputs, startedAt: new Date().toISOString(), config: step.config };
    await writeJsonAtomic(markerPath, marker);
    // A fresh training step must not pick up checkpoints it did not write: "auto" only when resuming.
    const resume = step.command === "train" && state === "resume" ? "auto" : undefined;
    const job = await launchLlamaFactory(configPath, { ...options, name: step.name, resume }, step.command);
    options.onStep?.({ type: "started", step, job, resumed: job.argv.some((a) => a.startsWith("resume_from_checkpoint=")) });
    const abort = () => void job.interrupt();
    options.signal?.addEventListener("abort", abort, { once: true });
    let outcome: LfJobResult;
    try {
      outcome = await job.wait();
    } finally {
      options.signal?.removeEventListener("abort", abort);
    }
    options.onStep?.({ type: "finished", step, job, result: outcome });
    if (outcome.status === "interrupted") {
      result.steps[step.name] = "interrupted";
      return { ...result, status: "interrupted" };
    }
    const finishedAt = new Date().toISOString();
    const runId = `${finishedAt}-${randomBytes(4).toString("hex")}`;
    await writeJsonAtomic(markerPath, { ...marker, status: "done", runId, finishedAt });
    runIds[step.name] = runId;
    result.steps[step.name] = "ran";
  }
  return result;
}
