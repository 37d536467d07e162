/** A child process of the main job: trains and evaluates the seeds named in its options (run.ts runSeedWorkers). */
import { progressPrinter } from "./cli.ts";
import { runPipeline, type PipelineOptions } from "./run.ts";

const options = JSON.parse(process.argv[2] ?? "{}") as PipelineOptions;
// A worker whose parent is killed (a timeout, SIGKILL) should stop too: the rerun resumes its steps.
// Not yet reliable: in one try on 2026-12-07, of two workers one stopped and one ran on (cause not found).
// The IPC channel's "disconnect" waits for the event loop, which a training may not reach for a while,
// so every progress event also checks that the parent is still there (process.ppid is read once, at start).
const parent = process.ppid;
const orphaned = (): boolean => {
  try {
    process.kill(parent, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
};
process.on("disconnect", () => process.exit(1));
const print = progressPrinter();
try {
  await runPipeline(options, (e) => {
    if (orphaned()) process.exit(1);
    print(e);
  });
  // Done: leave now. The IPC channel and the native decoder's pooled caches would otherwise keep the
  // event loop, and the parent waiting on this process's exit, alive.
  process.exit(0);
} catch (error) {
  process.stderr.write(`ktu start (seed ${options.seeds?.join(",")}): ${(error as Error).message}\n`);
  process.exit(1);
}
