/**
 * What `import * as tslab from "tslab"` gives inside this kernel: tslab's public API (display,
 * newDisplay, versions) on our display implementation, so tslab notebooks run unchanged.
 */
import { createRequire } from "node:module";

export { display, newDisplay } from "./display.ts";
export type { Display } from "./display.ts";

const requireHere = createRequire(import.meta.url);

/** The version strings of the kernel and its dependencies (tslab's `versions`). */
export const versions = {
  tslab: `know-the-unknown ${(requireHere("../package.json") as { version: string }).version}`,
  typescript: (requireHere("typescript/package.json") as { version: string }).version,
  node: process.version,
};
