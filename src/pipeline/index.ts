/** The main job (`ktu start`) and its pieces, for notebooks: compact prompts, data, evaluation, report. */
export { COMPACT_PROMPTS, compactCognitionPrompt, compactQaPrompt, compactPromptSensitivePrompt, compactCheckingTarget, COMPACT_LABELS, cropAround, fitContext, encodeExample, wordOverlap, type FitResult } from "./compact.ts";
export { buildPipelineData, type PipelineData, type PipelineDataOptions, type CompactSet, type TestItem, type TrainSetName } from "./datasets.ts";
export { evaluateArm, scoreOutputs, overlapReference, nonReadingBaselines, firstPassageWords, clusterBootstrap, type NonReadingBaseline, type ArmEvaluation, type ItemOutput, type CollapseDiagnostics, type MetricWithCi, type EvaluateOptions } from "./evaluate.ts";
export { runPipeline, pipelineDefaults, pipelinePrompts, defaultModelPath, sourceMaxNewTokens, PIPELINE_ARMS, DEFAULT_TEST_ROWS, type PipelineArmId, type PipelineOptions, type PipelineResult, type PipelineEvent, type TrainedRun, type BenchmarkRun } from "./run.ts";
export { summarizePipeline, summarizeBenchmark, seedMeanIntervals, patternStatement, patternCheck, formatCi, formatMeanCi, formatSpread, type PipelineSummary, type BenchmarkSummary, type ArmSummary, type SeedResult, type PatternCheck } from "./summary.ts";
export { writePipelineReport, reportHtml, reportFigures, oursBarChart, paperComparisonChart, diagnosticsChart, lossChart, benchmarkTableRows, benchmarkSections, PAPER_TABLE_ORDER } from "./report.ts";
export { PIPELINE_SOURCES, sourceTitle, buildSourceData, shuffled, type PipelineSource, type SourceDataResult, type SourceDataCounts } from "./sources.ts";
export { startOptions, progressPrinter } from "./cli.ts";
export { instructionItems, instructionFollowing, type InstructionItem, type InstructionOutcome } from "./instruction-eval.ts";
export { readAcceptance, checkAcceptance, acceptanceRows, ACCEPTANCE_FILE, ACCEPTANCE_SCHEMA, type ReaderAcceptance, type AcceptanceArm, type ValueWithCi } from "./acceptance.ts";
