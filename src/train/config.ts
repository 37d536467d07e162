import { llamaFactoryKeys, suggestKey } from "../engine/keys.ts";
import { InputError } from "../util/errors.ts";
import { loraDefaults, parseLoraTargets, type LoraSettings } from "./lora.ts";

/** Trainer settings in our names; `ktu train` maps LLaMA-Factory's YAML keys onto them. */
export interface SftConfig {
  learningRate: number;
  numTrainEpochs: number;
  /** > 0 overrides numTrainEpochs, as the Hugging Face max_steps does. */
  maxSteps: number;
  batchSize: number;
  gradientAccumulationSteps: number;
  lrSchedulerType: "cosine" | "linear" | "constant" | "constant_with_warmup";
  warmupRatio: number;
  /** > 0 overrides warmupRatio. */
  warmupSteps: number;
  maxGradNorm: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  seed: number;
  loggingSteps: number;
  saveSteps: number;
  /** 0: evaluate only at the end (when there is a validation split). */
  evalSteps: number;
  overwriteOutputDir: boolean;
  /**
   * Threads computing each micro-batch (the calling one plus workers-1 worker threads), for backends
   * that run on one core (wasm, cpu). Results are reproducible for a given value, not across values.
   */
  workers: number;
  lora: LoraSettings;
}

/** The Hugging Face TrainingArguments / LLaMA-Factory defaults, so a YAML means the same here and there. */
export const sftDefaults: Readonly<SftConfig> = Object.freeze({
  learningRate: 5e-5,
  numTrainEpochs: 3,
  maxSteps: -1,
  batchSize: 8,
  gradientAccumulationSteps: 1,
  lrSchedulerType: "linear",
  warmupRatio: 0,
  warmupSteps: 0,
  maxGradNorm: 1,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  seed: 42,
  loggingSteps: 500,
  saveSteps: 500,
  evalSteps: 0,
  overwriteOutputDir: false,
  workers: 1,
  lora: loraDefaults,
});

/** Everything `ktu train` needs from one YAML. */
export interface TrainJob {
  modelPath: string;
  /** An adapter merged into the model before training (LLaMA-Factory's adapter_name_or_path). */
  adapterPath?: string;
  dataset: string;
  datasetDir: string;
  template: string;
  cutoffLen: number;
  maxSamples?: number;
  valSize: number;
  outputDir: string;
  resumeFromCheckpoint?: string | true;
  sft: SftConfig;
  /** Keys LLaMA-Factory accepts that do not apply here, each with why. */
  notes: string[];
}

type Reader = (key: string) => unknown;

const ignoredWhy: Record<string, string> = {
  bf16: "training runs in fp32 here",
  fp16: "training runs in fp32 here",
  pure_bf16: "training runs in fp32 here",
  preprocessing_num_workers: "data is prepared in-process",
  ddp_timeout: "single process",
  report_to: "progress goes to stdout and trainer_log.jsonl",
  plot_loss: "plot trainer_log.jsonl with ktu's viz",
  overwrite_cache: "no dataset cache here",
  per_device_eval_batch_size: "evaluation uses per_device_train_batch_size",
  eval_strategy: "eval_steps > 0 means evaluate every eval_steps, else at the end",
  do_eval: "evaluation runs when val_size > 0",
  flash_attn: "not applicable to TF.js",
  deepspeed: "single process",
};

/** LLaMA-Factory keys that would change what is trained: rejected when set, rather than ignored. */
const unsupportedWhenSet: Record<string, (v: unknown) => boolean> = {
  train_on_prompt: (v) => v === true,
  mask_history: (v) => v === true,
  packing: (v) => v === true,
  neat_packing: (v) => v === true,
  use_dora: (v) => v === true,
  pissa_init: (v) => v === true,
  quantization_bit: (v) => v !== null && v !== undefined,
  loraplus_lr_ratio: (v) => v !== null && v !== undefined,
  additional_target: (v) => v !== null && v !== undefined,
  default_system: (v) => typeof v === "string" && v !== "",
  streaming: (v) => v === true,
  resize_vocab: (v) => v === true,
};

const num = (file: string, key: string, value: unknown, check: (n: number) => boolean, what: string): number => {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n) || !check(n)) throw new InputError(file, undefined, key, `must be ${what}, got ${JSON.stringify(value)}`);
  return n;
};

/**
 * Reads a LLaMA-Factory training YAML (already parsed). Keys that LLaMA-Factory accepts but that have
 * no effect here are listed in `notes`; keys LLaMA-Factory does not know are an error, with the
 * closest known key as a hint.
 */
export function parseTrainConfig(record: Record<string, unknown>, file: string): TrainJob {
  // warmup_ratio: transformers 4.x YAMLs (5.2 removed it) still train here.
  const known = new Set([...llamaFactoryKeys("train"), "warmup_ratio"]);
  const used = new Set<string>();
  const get: Reader = (key) => {
    used.add(key);
    return record[key];
  };
  const str = (key: string, fallback?: string): string => {
    const v = get(key);
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new InputError(file, undefined, key, "is required");
      return fallback;
    }
    if (typeof v !== "string" && typeof v !== "number") throw new InputError(file, undefined, key, `must be a string, got ${JSON.stringify(v)}`);
    return String(v);
  };
  const opt = <T>(key: string, parse: (v: unknown) => T, fallback: T): T => {
    const v = get(key);
    return v === undefined || v === null ? fallback : parse(v);
  };
  const positive = (key: string) => (v: unknown) => num(file, key, v, (n) => n > 0, "a positive number");
  const posInt = (key: string) => (v: unknown) => num(file, key, v, (n) => Number.isInteger(n) && n > 0, "a positive integer");
  const nonNeg = (key: string) => (v: unknown) => num(file, key, v, (n) => n >= 0, "a number >= 0");
  const int = (key: string) => (v: unknown) => num(file, key, v, Number.isInteger, "an integer");

  const stage = str("stage", "sft");
  if (stage !== "sft") throw new InputError(file, undefined, "stage", `only sft is trained in-process, got ${JSON.stringify(stage)} (use ktu lf for other stages)`);
  if (get("do_train") === false) throw new InputError(file, undefined, "do_train", "is false: nothing to train");
  const finetuning = str("finetuning_type", "lora");
  if (finetuning !== "lora") throw new InputError(file, undefined, "finetuning_type", `only lora is supported in-process, got ${JSON.stringify(finetuning)}`);
  const rank = opt("lora_rank", posInt("lora_rank"), loraDefaults.rank);
  let targets;
  try {
    targets = parseLoraTargets(str("lora_target", "all"));
  } catch (error) {
    throw new InputError(file, undefined, "lora_target", (error as Error).message);
  }
  const lora: LoraSettings = {
    rank,
    alpha: opt("lora_alpha", positive("lora_alpha"), rank * 2),
    dropout: opt("lora_dropout", (v) => num(file, "lora_dropout", v, (n) => n >= 0 && n < 1, "in [0, 1)"), 0),
    targets,
    useRslora: opt("use_rslora", (v) => v === true, false),
  };
  const scheduler = str("lr_scheduler_type", sftDefaults.lrSchedulerType);
  if (!["cosine", "linear", "constant", "constant_with_warmup"].includes(scheduler)) {
    throw new InputError(file, undefined, "lr_scheduler_type", `supported: cosine, linear, constant, constant_with_warmup; got ${JSON.stringify(scheduler)}`);
  }
  const d = sftDefaults;
  const sft: SftConfig = {
    learningRate: opt("learning_rate", positive("learning_rate"), d.learningRate),
    numTrainEpochs: opt("num_train_epochs", positive("num_train_epochs"), d.numTrainEpochs),
    maxSteps: opt("max_steps", int("max_steps"), d.maxSteps),
    batchSize: opt("per_device_train_batch_size", posInt("per_device_train_batch_size"), d.batchSize),
    gradientAccumulationSteps: opt("gradient_accumulation_steps", posInt("gradient_accumulation_steps"), d.gradientAccumulationSteps),
    lrSchedulerType: scheduler as SftConfig["lrSchedulerType"],
    warmupRatio: opt("warmup_ratio", (v) => num(file, "warmup_ratio", v, (n) => n >= 0 && n <= 1, "in [0, 1]"), d.warmupRatio),
    warmupSteps: opt("warmup_steps", nonNeg("warmup_steps"), d.warmupSteps),
    maxGradNorm: opt("max_grad_norm", nonNeg("max_grad_norm"), d.maxGradNorm),
    weightDecay: opt("weight_decay", nonNeg("weight_decay"), d.weightDecay),
    adamBeta1: opt("adam_beta1", nonNeg("adam_beta1"), d.adamBeta1),
    adamBeta2: opt("adam_beta2", nonNeg("adam_beta2"), d.adamBeta2),
    adamEpsilon: opt("adam_epsilon", positive("adam_epsilon"), d.adamEpsilon),
    seed: opt("seed", int("seed"), d.seed),
    loggingSteps: opt("logging_steps", posInt("logging_steps"), d.loggingSteps),
    saveSteps: opt("save_steps", posInt("save_steps"), d.saveSteps),
    evalSteps: opt("eval_steps", posInt("eval_steps"), d.evalSteps),
    overwriteOutputDir: opt("overwrite_output_dir", (v) => v === true, d.overwriteOutputDir),
    // Not a LLaMA-Factory key (a YAML must stay valid there): the KTU_TRAIN_WORKERS environment variable.
    workers: process.env.KTU_TRAIN_WORKERS ? num(file, "KTU_TRAIN_WORKERS", process.env.KTU_TRAIN_WORKERS, (n) => Number.isInteger(n) && n >= 1, "a positive integer") : d.workers,
    lora,
  };
  // transformers >= 5.2 (what the paper YAMLs now write): a warmup_steps in (0, 1) is the warmup ratio.
  if (sft.warmupSteps > 0 && sft.warmupSteps < 1) [sft.warmupRatio, sft.warmupSteps] = [sft.warmupSteps, 0];
  const resume = get("resume_from_checkpoint");
  const job: TrainJob = {
    modelPath: str("model_name_or_path"),
    adapterPath: opt("adapter_name_or_path", (v) => String(v), undefined as string | undefined),
    dataset: str("dataset"),
    datasetDir: str("dataset_dir", "data"),
    template: str("template", "empty"),
    cutoffLen: opt("cutoff_len", posInt("cutoff_len"), 2048),
    maxSamples: opt("max_samples", posInt("max_samples"), undefined as number | undefined),
    valSize: opt("val_size", nonNeg("val_size"), 0),
    outputDir: str("output_dir"),
    resumeFromCheckpoint: resume === true ? true : resume === undefined || resume === null || resume === false ? undefined : String(resume),
    sft,
    notes: [],
  };
  for (const key of Object.keys(record)) {
    if (used.has(key)) continue;
    if (!known.has(key)) {
      const hint = suggestKey(key, "train");
      throw new InputError(file, undefined, key, `is not a LLaMA-Factory training key${hint ? `; did you mean ${hint}?` : ""}`);
    }
    if (unsupportedWhenSet[key]?.(record[key])) {
      throw new InputError(file, undefined, key, `${JSON.stringify(record[key])} is not supported by in-process training (run it with LLaMA-Factory: ktu lf)`);
    }
    job.notes.push(`${key}: accepted and ignored (${ignoredWhy[key] ?? "no effect on in-process LoRA SFT"})`);
  }
  return job;
}
