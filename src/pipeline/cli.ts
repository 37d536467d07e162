import { defineCommand, optionalNumber, type Command } from "../util/command.ts";
import { buildAllDatasets, formatBuildSummary } from "../data/build-all.ts";

/**
 * `ktu start`, the main job on the embedded default. For now: every dataset of the paper from
 * data/ into OUT/data with a summary table. Training and evaluation steps are added after it.
 */
const start = defineCommand({
  name: "start",
  summary: "the main job: build every dataset from data/ into out/ and print a summary",
  help: `  --out DIR   output root (default out); datasets go to DIR/data
  --seed N    seed of the split and the stage-2 draws (default 42)`,
  options: { out: { type: "string" }, seed: { type: "string" } },
  async run(values) {
    const root = typeof values.out === "string" ? values.out : "out";
    const seed = optionalNumber(values, "seed", "start");
    const started = Date.now();
    const result = await buildAllDatasets({ outDir: `${root}/data`, ...(seed !== undefined ? { seed } : {}) });
    process.stdout.write(`Datasets (${((Date.now() - started) / 1000).toFixed(1)} s)\n\n${formatBuildSummary(result)}`);
  },
});

export const commands: Command[] = [start];
