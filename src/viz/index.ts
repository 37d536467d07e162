/** Figures (plain plotly objects, displayable in the kernel) and their renderers. */
export { Figure, figure, titleOf } from "./figure.ts";
export { saveFigures, saveCalibrationFigures, calibrationFigures, type SavedFigures, type CalibrationFigureInput } from "./save.ts";
export { reliabilityDiagram, equalMassReliability, confidenceHistogram, labelMassHistogram, confusionTable, riskCoverageCurve, calibrationAnnotation, binInterval, type ReliabilityOptions } from "./calibration-plots.ts";
export { accuracyBarChart, accuracyRowFromScores, outcomeTable, TEMP_PY_ROWS, type AccuracyBarRow } from "./bars.ts";
export { plotlyFigureBundle, plotlyMimeBundle, renderPlotlyImage, writePlotlyHtml, closePlotlyRenderer, type PlotlyFigure } from "./plotly.ts";
