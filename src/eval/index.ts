/** Evaluation: the seed's metrics, runners over any model, calibration. Names are unique across areas. */
export * from "./scoring.ts";
export * from "./squad-metric.ts";
export * from "./baselines.ts";
export * from "./calibration.ts";
export * from "./bootstrap.ts";
export { answerConfidence, labelProbability, refusalProbability, samplingConfidence, type AnswerConfidence, type LabelProbability } from "./confidence.ts";
export { readBenchmark, readPredictions, joinPredictions, type EvalBenchmarkRow, type EvalPrediction } from "./io.ts";
export { parseCsv, readAuthorsTable, readAuthorsRecords, type AuthorsRecords } from "./authors.ts";
export * from "./score.ts";
export { pythonListRepr, pythonStrRepr, parsePythonList, pyFixed, roundPy } from "./python.ts";
export { mapLimit, SEED_DECODE, type AnswerSource, type DecodeOptions, type CompletionWithLogprobs } from "./generator.ts";
export { OpenAICompatibleSource, EndpointError, parseRetryAfter, type OpenAIClientOptions } from "./openai.ts";
export { AnswerCache, answerCacheKey, cached, type CacheKeyParts } from "./cache.ts";
export { runBenchmark, runCognitionCheck, runSamplingBaseline, runValidationBaseline, declaredContext, questionPrompt, type RunOptions, type RunError } from "./runner.ts";
export { LocalModelSource, loadLocalSource } from "./local-source.ts";
export { resultsTable, calibrationTable, resultRow, resultRowFromReport, sideBySide, authorsResultRows, TEMP_PY_NUMBERS, AUTHORS_TEMP_PY, type ResultRow, type ResultsTable } from "./results.ts";
export { sufficiencyConfidences, answerProbabilityConfidences, answerLogprobConfidences, rowGroup, type ConfidenceItem, type ConfidenceRun, type CalibrateOptions } from "./calibrate.ts";
export { loadRTuningItems, runRTuning, rtuningAveragePrecision, mmluPrompt, pararelPrompt, haluevalPrompt, checkSurePrompt, RTUNING_TASKS, type RTuningTask, type RTuningItem, type RTuningResult } from "./rtuning.ts";
