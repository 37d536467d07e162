/** Evaluation: the seed's metrics, runners over any model, calibration. */
export * from "./scoring.ts";
export * from "./baselines.ts";
export * from "./calibration.ts";
export * from "./bootstrap.ts";
export * from "./confidence.ts";
export * from "./io.ts";
export * from "./authors.ts";
export * from "./score.ts";
export { pythonListRepr, pythonStrRepr, parsePythonList, pyFixed, roundPy } from "./python.ts";
