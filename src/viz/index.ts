/** Figures (plain plotly objects, displayable in the kernel) and their renderers. */
export { Figure, figure, setFigureBundle, titleOf, type FigureSpec } from "./figure.ts";
export { reliabilityDiagram, equalMassReliability, confidenceHistogram, riskCoverageCurve, calibrationAnnotation, binInterval, type ReliabilityOptions } from "./calibration-plots.ts";
export { accuracyBarChart, accuracyRowFromScores, outcomeTable, TEMP_PY_ROWS, type AccuracyBarRow } from "./bars.ts";
