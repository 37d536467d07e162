/**
 * The kernel's API for cells, also importable as `know-the-unknown/kernel` (and, for tslab notebooks,
 * as `tslab`). Every cell also sees these names as globals.
 */
import { kernelIo, type CommLike } from "./io.ts";

export { clearOutput, display, Display, DisplayHandle, input, JUPYTER_DISPLAY, mimeBundleOf, newDisplay, password, progress, Progress } from "./display.ts";
export type { Displayable, DisplayFunction, HtmlTable } from "./display.ts";
export { insideKernel, interruptSignal, type CommLike, type MimeBundle } from "./io.ts";
export type { PlotlyFigure } from "../src/viz/plotly.ts";

/** Comms with the frontend: open one from a cell, or register a target the frontend can open. */
export const comms = {
  open: (targetName: string, data?: unknown, metadata?: Record<string, unknown>): CommLike => kernelIo().comms.open(targetName, data, metadata),
  registerTarget: (targetName: string, handler: (comm: CommLike, data: unknown) => void): void => kernelIo().comms.registerTarget(targetName, handler),
};
