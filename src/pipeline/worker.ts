/** A child process of the main job: trains and evaluates the seeds named in its options (run.ts runSeedWorkers). */
import { progressPrinter } from "./cli.ts";
import { runPipeline, type PipelineOptions } from "./run.ts";

const options = JSON.parse(process.argv[2] ?? "{}") as PipelineOptions;
// A parent that is killed (a timeout, SIGKILL) takes its workers with it: the rerun resumes their steps.
process.on("disconnect", () => process.exit(1));
try {
  await runPipeline(options, progressPrinter());
} catch (error) {
  process.stderr.write(`ktu start (seed ${options.seeds?.join(",")}): ${(error as Error).message}\n`);
  process.exit(1);
}
