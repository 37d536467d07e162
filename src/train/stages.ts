import { join } from "node:path";
import { getChatTemplate } from "../model/chat-templates.ts";
import { saveHfModel } from "../model/hf.ts";
import { saveLlama2c } from "../model/llama2c.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { LlamaModelData, LlamaProjection } from "../model/types.ts";
import type { SftConfig } from "./config.ts";
import { encodeSftRows, splitTrainVal, type SftRow } from "./dataset.ts";
import { SftTrainer, type StepResult } from "./sft.ts";

/**
 * US-Tuning's two stages and its ablations, in-process: stage 1 (uncertainty recognition) LoRA, merge,
 * stage 2 (prompt-sensitive) LoRA on the merged model, merge. Each stage can be run as one call or
 * stepped through (createStageTrainer, then the trainer's steps(), then finishStage).
 */
export interface StageSettings {
  readonly learningRate: number;
  readonly numTrainEpochs: number;
  readonly batchSize: number;
  readonly gradientAccumulationSteps: number;
  readonly lrSchedulerType: SftConfig["lrSchedulerType"];
  readonly warmupRatio: number;
  readonly maxGradNorm: number;
  readonly cutoffLen: number;
  /** First N rows of each dataset (LLaMA-Factory's max_samples); 0 keeps all. */
  readonly maxSamples: number;
  readonly valSize: number;
  readonly seed: number;
  readonly loggingSteps: number;
  readonly saveSteps: number;
  readonly template: string;
  readonly loraRank: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  readonly loraTargets: readonly LlamaProjection[];
}

export type StageName = "stage1" | "stage2" | "stage2Only" | "qaOnly" | "stage1Qa" | "mixture";

const common: StageSettings = Object.freeze({
  learningRate: 5e-5,
  numTrainEpochs: 1,
  batchSize: 4,
  gradientAccumulationSteps: 4,
  lrSchedulerType: "cosine",
  warmupRatio: 0.1,
  maxGradNorm: 1,
  cutoffLen: 1024,
  maxSamples: 1000,
  valSize: 0.1,
  seed: 42,
  loggingSteps: 10,
  saveSteps: 500,
  template: "llama2",
  loraRank: 8,
  loraAlpha: 16,
  loraDropout: 0,
  loraTargets: Object.freeze(["wq", "wv"]) as readonly LlamaProjection[],
});

/**
 * The paper's hyperparameters (paper.md 2.1: the authors' LLaMA-Factory YAMLs at c8c6666; LoRA rank,
 * alpha and dropout are LLaMA-Factory's defaults since the YAMLs do not set them). "qaOnly" has no
 * config in the authors' repository: it takes the stage-1-then-QA values. "mixture" follows the
 * autodl.txt single-stage run (4e-5, 3 epochs).
 */
export const paperDefaults: Readonly<{ common: StageSettings } & Record<StageName, Partial<StageSettings>>> = Object.freeze({
  common,
  stage1: Object.freeze({ learningRate: 4e-5, numTrainEpochs: 1 }),
  stage2: Object.freeze({ learningRate: 5e-5, numTrainEpochs: 5 }),
  stage2Only: Object.freeze({ learningRate: 5e-5, numTrainEpochs: 10 }),
  stage1Qa: Object.freeze({ learningRate: 6e-5, numTrainEpochs: 5 }),
  qaOnly: Object.freeze({ learningRate: 6e-5, numTrainEpochs: 5 }),
  mixture: Object.freeze({ learningRate: 4e-5, numTrainEpochs: 3 }),
});

export type StageOverrides = Partial<StageSettings> & { [K in StageName]?: Partial<StageSettings> };

const settingKeys = new Set(Object.keys(common));
const stageNames = new Set<string>(["stage1", "stage2", "stage2Only", "qaOnly", "stage1Qa", "mixture"]);

/** The settings of one stage: paper defaults, then common overrides, then that stage's; unknown keys throw. */
export function stageSettings(stage: StageName, overrides: StageOverrides = {}): StageSettings {
  const check = (obj: object, where: string): void => {
    for (const key of Object.keys(obj)) if (!settingKeys.has(key)) throw new Error(`unknown stage setting ${where}${key}; known: ${[...settingKeys].join(", ")}`);
  };
  const { stage1, stage2, stage2Only, qaOnly, stage1Qa, mixture, ...shared } = overrides;
  for (const key of Object.keys(overrides)) if (!settingKeys.has(key) && !stageNames.has(key)) throw new Error(`unknown stage setting ${key}; known: ${[...settingKeys].join(", ")} or a stage name (${[...stageNames].join(", ")})`);
  check(shared, "");
  const perStage = { stage1, stage2, stage2Only, qaOnly, stage1Qa, mixture }[stage] ?? {};
  check(perStage, `${stage}.`);
  return Object.freeze({ ...common, ...paperDefaults[stage], ...shared, ...perStage });
}

export function sftConfigOf(s: StageSettings): Partial<SftConfig> {
  return {
    learningRate: s.learningRate,
    numTrainEpochs: s.numTrainEpochs,
    batchSize: s.batchSize,
    gradientAccumulationSteps: s.gradientAccumulationSteps,
    lrSchedulerType: s.lrSchedulerType,
    warmupRatio: s.warmupRatio,
    maxGradNorm: s.maxGradNorm,
    seed: s.seed,
    loggingSteps: s.loggingSteps,
    saveSteps: s.saveSteps,
    lora: { rank: s.loraRank, alpha: s.loraAlpha, dropout: s.loraDropout, targets: s.loraTargets },
  };
}

export interface StageTrainer {
  readonly stage: StageName;
  readonly settings: StageSettings;
  readonly trainer: SftTrainer;
  /** Rows cut to cutoff_len (row index, tokens before the cut). */
  readonly truncated: readonly { row: number; fullLength: number }[];
  readonly outputDir?: string;
}

/** A trainer for one stage, ready to be stepped (`for await (const s of st.trainer.steps(10))`). */
export function createStageTrainer(stage: StageName, base: LlamaModelData, tokenizer: Tokenizer, datasets: readonly (readonly SftRow[])[], overrides: StageOverrides = {}, outputDir?: string): StageTrainer {
  const settings = stageSettings(stage, overrides);
  const rows = datasets.flatMap((d) => (settings.maxSamples > 0 ? d.slice(0, settings.maxSamples) : [...d]));
  if (rows.length === 0) throw new Error(`${stage}: no training rows`);
  const { train, val } = splitTrainVal(rows, settings.valSize, settings.seed);
  const template = getChatTemplate(settings.template);
  const encTrain = encodeSftRows(train, template, tokenizer, settings.cutoffLen);
  const encVal = encodeSftRows(val, template, tokenizer, settings.cutoffLen);
  const dir = outputDir ? join(outputDir, stage) : undefined;
  const trainer = new SftTrainer({ model: base, train: encTrain.examples, val: encVal.examples, config: { ...sftConfigOf(settings), overwriteOutputDir: true }, outputDir: dir, baseModelName: stage, padId: tokenizer.eosId });
  return { stage, settings, trainer, truncated: [...encTrain.truncated, ...encVal.truncated], outputDir: dir };
}

export interface StageResult {
  readonly stage: StageName;
  readonly settings: StageSettings;
  readonly history: readonly StepResult[];
  readonly finalLoss: number;
  readonly evalLoss?: number;
  /** The base with this stage's adapter merged in. */
  readonly merged: LlamaModelData;
}

/** Saves the adapter and the merged model (llama2.c .bin for interleaved-RoPE models, else an HF folder). */
export async function finishStage(st: StageTrainer): Promise<StageResult> {
  const { trainer } = st;
  const merged = trainer.merged();
  if (st.outputDir) {
    await trainer.saveAdapter(st.outputDir);
    if (merged.config.ropeStyle === "interleaved") saveLlama2c(join(st.outputDir, "merged.bin"), merged);
    else await saveHfModel(join(st.outputDir, "merged"), merged);
  }
  const last = trainer.history.at(-1);
  const result: StageResult = { stage: st.stage, settings: st.settings, history: [...trainer.history], finalLoss: last?.loss ?? NaN, evalLoss: [...trainer.history].reverse().find((h) => h.evalLoss !== undefined)?.evalLoss, merged };
  trainer.dispose();
  return result;
}

export async function runStage(stage: StageName, base: LlamaModelData, tokenizer: Tokenizer, datasets: readonly (readonly SftRow[])[], options: { overrides?: StageOverrides; outputDir?: string; onStep?: (stage: StageName, s: StepResult) => void } = {}): Promise<StageResult> {
  const st = createStageTrainer(stage, base, tokenizer, datasets, options.overrides, options.outputDir);
  for await (const s of st.trainer.steps()) options.onStep?.(stage, s);
  return finishStage(st);
}

/** US-Tuning and its ablations, named as in the paper's code (paper.md 1.4). */
export type UsTuningArm = "us-tuning" | "stage1" | "stage2-only" | "qa-only" | "stage1-qa" | "mixture";
export const usTuningArms: readonly UsTuningArm[] = ["us-tuning", "stage1", "stage2-only", "qa-only", "stage1-qa", "mixture"];

export interface UsTuningData {
  /** Stage 1: Sufficient / Insufficient rows. */
  readonly stage1: readonly SftRow[];
  /** Stage 2: prompt-sensitive QA rows. */
  readonly stage2?: readonly SftRow[];
  /** Plain QA rows (the QA ablations). */
  readonly qa?: readonly SftRow[];
}

/** Which stages an arm runs, in order, each on the previous one's merged model. */
export function armStages(arm: UsTuningArm): { stage: StageName; data: keyof UsTuningData | "stage1+stage2" }[] {
  switch (arm) {
    case "us-tuning": return [{ stage: "stage1", data: "stage1" }, { stage: "stage2", data: "stage2" }];
    case "stage1": return [{ stage: "stage1", data: "stage1" }];
    case "stage2-only": return [{ stage: "stage2Only", data: "stage2" }];
    case "qa-only": return [{ stage: "qaOnly", data: "qa" }];
    case "stage1-qa": return [{ stage: "stage1", data: "stage1" }, { stage: "stage1Qa", data: "qa" }];
    case "mixture": return [{ stage: "mixture", data: "stage1+stage2" }];
  }
}

export async function runUsTuning(
  base: LlamaModelData,
  tokenizer: Tokenizer,
  data: UsTuningData,
  options: { arm?: UsTuningArm; overrides?: StageOverrides; outputDir?: string; onStep?: (stage: StageName, s: StepResult) => void } = {},
): Promise<{ arm: UsTuningArm; stages: StageResult[]; final: LlamaModelData }> {
  const arm = options.arm ?? "us-tuning";
  const stages: StageResult[] = [];
  let model = base;
  for (const { stage, data: key } of armStages(arm)) {
    const datasets = key === "stage1+stage2" ? [data.stage1, data.stage2 ?? []] : [data[key] ?? []];
    if (datasets.every((d) => d.length === 0)) throw new Error(`arm ${arm}: stage ${stage} needs ${key} rows`);
    const outputDir = options.outputDir ? join(options.outputDir, arm) : undefined;
    const result = await runStage(stage, model, tokenizer, datasets.filter((d) => d.length > 0), { overrides: options.overrides, outputDir, onStep: options.onStep });
    stages.push(result);
    model = result.merged;
  }
  return { arm, stages, final: model };
}
