// In-process LoRA SFT on TF.js: trainer, adapters, checkpoints, LLaMA-Factory YAML, the US-Tuning stages.
export { SftTrainer, TrainingError, type StepResult, type SftTrainerOptions } from "./sft.ts";
export { sftDefaults, parseTrainConfig, type SftConfig, type TrainJob } from "./config.ts";
export { readTrainYaml, runTrainJob } from "./cli.ts";
export { LoraAdapter, mergeLora, loraDefaults, parseLoraTargets, peftTensorName, hfModuleNames, type LoraSettings, type LoraParameter } from "./lora.ts";
export {
  IGNORE_INDEX,
  inferSeqlen,
  encodeSftRow,
  encodeSftRows,
  loadSftDatasets,
  parseSftRows,
  splitTrainVal,
  type SftRow,
  type SftExample,
  type EncodedDataset,
} from "./dataset.ts";
export {
  saveCheckpoint as saveTrainerCheckpoint,
  loadCheckpoint as loadTrainerCheckpoint,
  latestCheckpoint as latestTrainerCheckpoint,
  type TrainerSnapshot,
} from "./checkpoint.ts";
export {
  paperDefaults,
  stageSettings,
  createStageTrainer,
  finishStage,
  runStage,
  runUsTuning,
  armStages,
  usTuningArms,
  type StageSettings,
  type StageName,
  type StageOverrides,
  type StageTrainer,
  type StageResult,
  type UsTuningArm,
  type UsTuningData,
} from "./stages.ts";
// Full-parameter training of small Llamas from scratch (the reader base, recipes/reader).
export { FullTrainer, initLlama, makeLmBatch, splitLmBatch, pretrainOptimDefaults, type LmExample, type LmBatch, type PretrainOptimConfig, type TrainStepResult } from "./pretrain.ts";
export { GradientPool } from "./pretrain-parallel.ts";
