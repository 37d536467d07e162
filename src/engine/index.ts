export { llamaFactoryKeys, llamaFactoryKeysSource, llamaFactoryKeysPath, suggestKey, deprecatedKeyNote, lfKeys, shippedLfKeys, installedLfKeys, lfPython, type LfCommand, type LfKeySet, type LfKeySource, type LfWarmupKey } from "./keys.ts";
export { checkLfConfig, checkLfKeys, lfConfigWarnings, validateLfConfig, readLfConfigFile, LfConfigError, LF_FINISHED_RUN_FILES, type LfConfigRecord, type LfProblem, type LfValidateOptions } from "./validate.ts";
export { readModelModules, moduleMatches, type ModelModules } from "./model-modules.ts";
export { tailTrainerLog, readTrainerLog, LF_TRAINER_LOG, type TrainerLogRecord, type TailOptions } from "./trainer-log.ts";
export { deepspeedConfig, writeDeepspeedConfig, type ZeroStage } from "./deepspeed.ts";
export {
  launchLlamaFactory,
  lfExport,
  lfLaunchEnv,
  lfJobs,
  latestLfCheckpoint,
  resolveLfCli,
  LfJob,
  LfRunError,
  LF_ENGINE_LOG,
  lfEngineLogPath,
  trimTrainerLogForResume,
  type LfLaunchOptions,
  type LfTopology,
  type LfJobStatus,
  type LfJobResult,
} from "./launch.ts";
export { runLfPipeline, lfBaseModel, lfPipelineSteps, lfStepState, lfConfigHash, LF_ABLATIONS, LF_STEP_MARKER, type LfAblation, type LfPipelineOptions, type LfPipelineStep, type LfPipelineEvent, type LfPipelineResult } from "./pipeline.ts";
export { lfJobsTable, lfLossFigure, lfProgress, type LfFigure, type LfProgress } from "./views.ts";
export { startServer, type ServerOptions, type RunningServer } from "./server.ts";
export { loadServedModel, type ServedModel } from "./serve-cli.ts";
