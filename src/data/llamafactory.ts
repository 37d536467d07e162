import { stringify } from "yaml";

/**
 * LLaMA-Factory configs equal to the paper's (paper.md §2.1, the authors' YAMLs at c8c6666), typed
 * with LLaMA-Factory's own snake_case keys, plus the older command-line settings (§2.2, autodl.txt)
 * as a second preset. Every paper value lives in PAPER_LLAMAFACTORY_DEFAULTS; the functions only
 * fill in paths and dataset names.
 *
 * Choices, where the sources disagree:
 * - preset "yaml" (default) follows the YAMLs: bf16, warmup 0.1, max_samples 1000 (LLaMA-Factory
 *   keeps the FIRST 1000 rows of each dataset), val_size 0.1, save/eval every 500 steps.
 *   Stage 1: lr 4e-5, 1 epoch; stage 2 on the stage-1 merge: 5e-5, 5 epochs.
 * - preset "autodl" follows autodl.txt: fp16, no warmup, the full dataset, no validation split,
 *   save_steps 1000; stage 1 3 epochs; stage 2 4e-5, 10 epochs.
 * - LoRA rank/alpha/dropout are never set by the authors; LLaMA-Factory's defaults (8, 16, 0.0) apply.
 * - The single-stage mixtures and the QA-only ablation have no YAML; they take autodl's lr/epochs
 *   ("Train Cognition_PSQA_large": 4e-5, 3 epochs) and otherwise the YAML settings.
 * - The stage-2-only YAML writes its adapter to ".../TrustworthyLLM_Cognition_Finetuning_Model"
 *   (sic); here it goes to the name the evaluation code uses, TrustworthyLLM_Ablation_PSQA_Finetuning_Model.
 * - The authors' Llama-2 merge puts the stage-2 adapter on the VANILLA base although it was trained
 *   on the stage-1 merge (paper.md §1.4). `stage2MergeBase: "paper"` (default) keeps that;
 *   "stage1-merged" merges onto the base it was trained on.
 */

export interface LlamaFactoryTrainConfig {
  model_name_or_path: string;
  stage: "sft";
  do_train: boolean;
  finetuning_type: "lora";
  lora_target: string;
  lora_rank?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  dataset: string;
  dataset_dir?: string;
  template: string;
  cutoff_len: number;
  max_samples?: number;
  overwrite_cache: boolean;
  preprocessing_num_workers: number;
  output_dir: string;
  logging_steps: number;
  save_steps: number;
  plot_loss: boolean;
  overwrite_output_dir: boolean;
  per_device_train_batch_size: number;
  gradient_accumulation_steps: number;
  learning_rate: number;
  num_train_epochs: number;
  lr_scheduler_type: string;
  /** transformers >= 5.2 (and the shipped key list): a float in [0, 1) is the warmup ratio. */
  warmup_steps?: number;
  /** transformers 4.x only (5.2 removed it); `warmupKey: "warmup_ratio"` writes it instead of warmup_steps. */
  warmup_ratio?: number;
  bf16?: boolean;
  fp16?: boolean;
  ddp_timeout: number;
  val_size?: number;
  per_device_eval_batch_size?: number;
  eval_strategy?: string;
  eval_steps?: number;
  report_to: string;
  seed?: number;
}

export interface LlamaFactoryMergeConfig {
  model_name_or_path: string;
  adapter_name_or_path: string;
  template: string;
  finetuning_type: "lora";
  export_dir: string;
  export_size: number;
  export_device: string;
  export_legacy_format: boolean;
}

export type LlamaFactoryPreset = "yaml" | "autodl";

/** The dataset names of the seed (file = name + ".json"). */
export const DATASET_NAMES = {
  cognition: "TrustworthyLLM_Cognition_Finetuning_Dataset",
  promptSensitive: "TrustworthyLLM_PromptSensitive_Finetuning_Dataset",
  qa: "TrustworthyLLM_QA_Finetuning_Dataset",
  cognitionPsqa: "TrustworthyLLM_Cognition_PSQA_Finetuning_Dataset",
  cognitionQa: "TrustworthyLLM_Cognition_QA_Finetuning_Dataset",
} as const;

/** The model (adapter) names of the seed. */
export const MODEL_NAMES = {
  stage1: "TrustworthyLLM_Cognition_Finetuning_Model_0",
  stage1Merged: "TrustworthyLLM_Cognition_Finetuning_Model_0_Merged",
  stage2: "TrustworthyLLM_Cognition_PSQA_Finetuning_Model_0",
  stage2Merged: "TrustworthyLLM_Cognition_PSQA_Finetuning_Model_0_Merged",
  stage1Qa: "TrustworthyLLM_Cognition_QA_Finetuning_Model",
  stage2Only: "TrustworthyLLM_Ablation_PSQA_Finetuning_Model",
  qaOnly: "TrustworthyLLM_Ablation_QA_Finetuning_Model",
  cognitionPsqaMixture: "TrustworthyLLM_Cognition_PSQA_Large_Finetuning_Model",
  cognitionQaMixture: "TrustworthyLLM_Cognition_QA_Large_Finetuning_Model",
} as const;

type Shared = Omit<LlamaFactoryTrainConfig, "model_name_or_path" | "dataset" | "dataset_dir" | "template" | "output_dir" | "learning_rate" | "num_train_epochs">;
interface RunValues {
  learning_rate: number;
  num_train_epochs: number;
}

export const PAPER_LLAMAFACTORY_DEFAULTS = {
  template: "llama2",
  /** Fields shared by every YAML of §2.1. */
  yaml: {
    stage: "sft",
    do_train: true,
    finetuning_type: "lora",
    lora_target: "q_proj,v_proj",
    cutoff_len: 1024,
    max_samples: 1000,
    overwrite_cache: true,
    preprocessing_num_workers: 16,
    logging_steps: 10,
    save_steps: 500,
    plot_loss: true,
    overwrite_output_dir: true,
    per_device_train_batch_size: 4,
    gradient_accumulation_steps: 4,
    lr_scheduler_type: "cosine",
    // The authors' warmup_ratio: 0.1. transformers 5.2 removed warmup_ratio; a float warmup_steps is the ratio.
    warmup_steps: 0.1,
    bf16: true,
    ddp_timeout: 180000000,
    val_size: 0.1,
    per_device_eval_batch_size: 1,
    eval_strategy: "steps",
    eval_steps: 500,
    report_to: "none",
  } satisfies Shared,
  /** autodl.txt: --fp16, no warmup/max_samples/val_size, --save_steps 1000. */
  autodl: {
    stage: "sft",
    do_train: true,
    finetuning_type: "lora",
    lora_target: "q_proj,v_proj",
    cutoff_len: 1024,
    overwrite_cache: true,
    preprocessing_num_workers: 16,
    logging_steps: 10,
    save_steps: 1000,
    plot_loss: true,
    overwrite_output_dir: true,
    per_device_train_batch_size: 4,
    gradient_accumulation_steps: 4,
    lr_scheduler_type: "cosine",
    fp16: true,
    ddp_timeout: 180000000,
    report_to: "none",
  } satisfies Shared,
  runs: {
    yaml: {
      stage1: { learning_rate: 4.0e-5, num_train_epochs: 1.0 },
      stage1Stage2: { learning_rate: 5.0e-5, num_train_epochs: 5.0 },
      stage1Qa: { learning_rate: 6.0e-5, num_train_epochs: 5.0 },
      stage2Only: { learning_rate: 5.0e-5, num_train_epochs: 10.0 },
      qaOnly: { learning_rate: 5.0e-5, num_train_epochs: 10.0 },
      cognitionPsqaMixture: { learning_rate: 4.0e-5, num_train_epochs: 3.0 },
      cognitionQaMixture: { learning_rate: 4.0e-5, num_train_epochs: 3.0 },
    },
    autodl: {
      stage1: { learning_rate: 4.0e-5, num_train_epochs: 3.0 },
      stage1Stage2: { learning_rate: 4.0e-5, num_train_epochs: 10.0 },
      stage1Qa: { learning_rate: 5.0e-5, num_train_epochs: 3.0 },
      stage2Only: { learning_rate: 5.0e-5, num_train_epochs: 10.0 },
      qaOnly: { learning_rate: 5.0e-5, num_train_epochs: 10.0 },
      cognitionPsqaMixture: { learning_rate: 4.0e-5, num_train_epochs: 3.0 },
      cognitionQaMixture: { learning_rate: 4.0e-5, num_train_epochs: 3.0 },
    },
  } satisfies Record<LlamaFactoryPreset, Record<string, RunValues>>,
  // The authors wrote export_device: cuda; LLaMA-Factory accepts only cpu or auto (auto picks the GPU).
  merge: { finetuning_type: "lora", export_size: 2, export_device: "auto", export_legacy_format: false },
} as const;

export interface PaperConfigOptions {
  /** The base model (the paper: llama-2-7b-chat-hf). */
  modelPath: string;
  /** Folder of dataset_info.json and the Alpaca files. */
  datasetDir: string;
  /** Folder under which every adapter and merged model is written. */
  outputRoot: string;
  template?: string;
  preset?: LlamaFactoryPreset;
  /** Override any shared key, e.g. { seed: 42 } or { max_samples: 200 } for a small run; null removes a key. */
  overrides?: Partial<Record<keyof LlamaFactoryTrainConfig, unknown>> | Record<string, unknown>;
  /**
   * How warmup is written: "warmup_steps" (default; transformers >= 5.2 reads a float in [0, 1) as the
   * ratio) or "warmup_ratio" (transformers 4.x). `ktu lf` picks it from the installed engine (lfKeys().warmup).
   */
  warmupKey?: "warmup_steps" | "warmup_ratio";
}

const joinPath = (root: string, name: string): string => (root === "" ? name : `${root.replace(/\/+$/, "")}/${name}`);

/** The training runs of the paper, keyed by the authors' YAML names (plus the autodl-only runs). */
export function paperTrainConfigs(options: PaperConfigOptions): Record<string, LlamaFactoryTrainConfig> {
  const preset = options.preset ?? "yaml";
  const shared = PAPER_LLAMAFACTORY_DEFAULTS[preset];
  const runs = PAPER_LLAMAFACTORY_DEFAULTS.runs[preset];
  const template = options.template ?? PAPER_LLAMAFACTORY_DEFAULTS.template;
  const merged = joinPath(options.outputRoot, MODEL_NAMES.stage1Merged);
  const make = (model: string, dataset: string, output: string, run: RunValues): LlamaFactoryTrainConfig => {
    const config: Record<string, unknown> = { model_name_or_path: model, ...shared, dataset, dataset_dir: options.datasetDir, template, output_dir: joinPath(options.outputRoot, output), ...run };
    if (options.warmupKey === "warmup_ratio" && "warmup_steps" in config) {
      const entries = Object.entries(config).map(([k, v]) => (k === "warmup_steps" ? ["warmup_ratio", v] : [k, v]));
      for (const key of Object.keys(config)) delete config[key];
      Object.assign(config, Object.fromEntries(entries));
    }
    for (const [key, value] of Object.entries(options.overrides ?? {})) {
      if (value === null) delete config[key];
      else if (value !== undefined) config[key] = value;
    }
    return config as unknown as LlamaFactoryTrainConfig;
  };
  return {
    Llama2_Stage1: make(options.modelPath, DATASET_NAMES.cognition, MODEL_NAMES.stage1, runs.stage1),
    Llama2_Stage1_Stage2: make(merged, DATASET_NAMES.promptSensitive, MODEL_NAMES.stage2, runs.stage1Stage2),
    Llama2_Stage1_QA: make(merged, DATASET_NAMES.qa, MODEL_NAMES.stage1Qa, runs.stage1Qa),
    Llama2_Stage2: make(options.modelPath, DATASET_NAMES.promptSensitive, MODEL_NAMES.stage2Only, runs.stage2Only),
    Llama2_QA: make(options.modelPath, DATASET_NAMES.qa, MODEL_NAMES.qaOnly, runs.qaOnly),
    Llama2_Cognition_PSQA_Mixture: make(options.modelPath, DATASET_NAMES.cognitionPsqa, MODEL_NAMES.cognitionPsqaMixture, runs.cognitionPsqaMixture),
    Llama2_Cognition_QA_Mixture: make(options.modelPath, DATASET_NAMES.cognitionQa, MODEL_NAMES.cognitionQaMixture, runs.cognitionQaMixture),
  };
}

/** The merges: stage 1 (the base of stage 2) and the final stage-2 model. */
export function paperMergeConfigs(options: Omit<PaperConfigOptions, "datasetDir" | "preset" | "overrides"> & { stage2MergeBase?: "paper" | "stage1-merged" }): Record<string, LlamaFactoryMergeConfig> {
  const template = options.template ?? PAPER_LLAMAFACTORY_DEFAULTS.template;
  const at = (name: string): string => joinPath(options.outputRoot, name);
  const stage2Base = (options.stage2MergeBase ?? "paper") === "paper" ? options.modelPath : at(MODEL_NAMES.stage1Merged);
  const merge = (model: string, adapter: string, exportDir: string): LlamaFactoryMergeConfig => ({
    model_name_or_path: model,
    adapter_name_or_path: adapter,
    template,
    ...PAPER_LLAMAFACTORY_DEFAULTS.merge,
    export_dir: exportDir,
  });
  return {
    Llama2_Stage1_merge: merge(options.modelPath, at(MODEL_NAMES.stage1), at(MODEL_NAMES.stage1Merged)),
    Llama2_Stage1_Stage2_merge: merge(stage2Base, at(MODEL_NAMES.stage2), at(MODEL_NAMES.stage2Merged)),
  };
}

const SECTIONS: [string, string[]][] = [
  ["model", ["model_name_or_path", "model_revision", "adapter_name_or_path"]],
  ["method", ["stage", "do_train", "finetuning_type", "lora_target", "lora_rank", "lora_alpha", "lora_dropout"]],
  ["dataset", ["dataset", "dataset_dir", "template", "cutoff_len", "max_samples", "overwrite_cache", "preprocessing_num_workers"]],
  ["output", ["output_dir", "logging_steps", "save_steps", "plot_loss", "overwrite_output_dir"]],
  ["train", ["per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "num_train_epochs", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "bf16", "fp16", "ddp_timeout", "seed"]],
  ["eval", ["val_size", "per_device_eval_batch_size", "eval_strategy", "eval_steps"]],
  ["export", ["export_dir", "export_size", "export_device", "export_legacy_format"]],
];

/** Keys the authors write as Python floats ("5.0e-5", "1.0"), which PyYAML also reads as floats. */
const FLOAT_KEYS = new Set(["learning_rate", "num_train_epochs", "warmup_ratio", "val_size", "lora_dropout"]);

function formatFloat(value: number): string {
  if (value !== 0 && Math.abs(value) < 1e-3) {
    const [mantissa, exponent] = value.toExponential().split("e");
    return `${mantissa!.includes(".") ? mantissa : `${mantissa}.0`}e${exponent}`;
  }
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

const scalar = (key: string, value: unknown): string =>
  typeof value === "number" && FLOAT_KEYS.has(key) ? formatFloat(value) : stringify(value, { lineWidth: 0 }).trimEnd();

/** YAML in the layout of the authors' files (### sections), keys in their order. */
export function toYaml(config: LlamaFactoryTrainConfig | LlamaFactoryMergeConfig | Record<string, unknown>): string {
  // null and undefined both mean "not set": `--set KEY=null` removes a key.
  const entries = Object.entries(config).filter(([, v]) => v !== undefined && v !== null);
  const done = new Set<string>();
  const blocks: string[] = [];
  for (const [section, keys] of SECTIONS) {
    const lines = keys.filter((k) => entries.some(([key]) => key === k)).map((k) => {
      done.add(k);
      return `${k}: ${scalar(k, (config as Record<string, unknown>)[k])}`;
    });
    if (lines.length > 0) blocks.push(`### ${section}\n${lines.join("\n")}`);
  }
  const rest = entries.filter(([k]) => !done.has(k) && k !== "report_to").map(([k, v]) => `${k}: ${scalar(k, v)}`);
  if (rest.length > 0) blocks.push(`### other\n${rest.join("\n")}`);
  if ("report_to" in config && config.report_to !== undefined && config.report_to !== null) blocks.push(`# not report to wandb\nreport_to: ${scalar("report_to", config.report_to)}`);
  return blocks.join("\n\n") + "\n";
}

/** dataset_info.json entries for Alpaca files named after their dataset. */
export function datasetInfo(names: readonly string[]): Record<string, { file_name: string; formatting: "alpaca"; columns: { prompt: string; query: string; response: string } }> {
  return Object.fromEntries(names.map((name) => [name, { file_name: `${name}.json`, formatting: "alpaca" as const, columns: { prompt: "instruction", query: "input", response: "output" } }]));
}
