/** The main job (`ktu start`) and its pieces, for notebooks: compact prompts, data, evaluation, report. */
export { COMPACT_PROMPTS, compactCognitionPrompt, compactQaPrompt, compactPromptSensitivePrompt, compactCheckingTarget, COMPACT_LABELS, cropAround, fitContext, encodeExample, wordOverlap, type FitResult } from "./compact.ts";
export { buildPipelineData, type PipelineData, type PipelineDataOptions, type CompactSet, type TestItem, type TrainSetName } from "./datasets.ts";
export { evaluateArm, scoreOutputs, overlapReference, clusterBootstrap, type ArmEvaluation, type ItemOutput, type CollapseDiagnostics, type MetricWithCi, type EvaluateOptions } from "./evaluate.ts";
export { runPipeline, pipelineDefaults, pipelinePrompts, defaultModelPath, PIPELINE_ARMS, type PipelineArmId, type PipelineOptions, type PipelineResult, type PipelineEvent, type TrainedRun } from "./run.ts";
export { summarizePipeline, patternCheck, formatCi, formatSpread, type PipelineSummary, type ArmSummary, type SeedResult, type PatternCheck } from "./summary.ts";
export { writePipelineReport, reportHtml, reportFigures, oursBarChart, paperComparisonChart, diagnosticsChart, lossChart } from "./report.ts";
export { startOptions, progressPrinter } from "./cli.ts";
export { instructionItems, instructionFollowing, type InstructionItem, type InstructionOutcome } from "./instruction-eval.ts";
export { readAcceptance, checkAcceptance, acceptanceRows, ACCEPTANCE_FILE, ACCEPTANCE_SCHEMA, type ReaderAcceptance, type AcceptanceArm, type ValueWithCi } from "./acceptance.ts";
