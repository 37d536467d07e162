/**
 * The kernel process: `node --import <tsx> kernel/main.ts -f <connection file>` (what the kernelspec
 * runs). It answers kernel_info before loading TypeScript, then warms the type checker up.
 */
import { register } from "node:module";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { repoRoot } from "../src/util/paths.ts";
import { installProcessGuards, kernelExit } from "./guard.ts";
import { KernelServer } from "./server.ts";
import { TypeScriptInterpreter } from "./ts-evaluator.ts";
import { interruptSignal } from "./io.ts";
import { readConnectionFile } from "./wire.ts";

const url = (...parts: string[]): string => pathToFileURL(join(repoRoot, ...parts)).href;

function connectionFileArg(argv: string[]): string {
  const flag = argv.findIndex((a) => a === "-f" || a === "--connection-file");
  const path = flag >= 0 ? argv[flag + 1] : argv.find((a) => !a.startsWith("-"));
  if (!path) {
    process.stderr.write("usage: kernel/main.ts -f <connection file>\n");
    process.exit(2);
  }
  return path;
}

const info = readConnectionFile(connectionFileArg(process.argv.slice(2)));
register(url("kernel", "resolve-hooks.mjs"), {
  data: {
    aliases: { tslab: url("kernel", "tslab.ts"), "know-the-unknown": url("src", "index.ts"), "know-the-unknown/kernel": url("kernel", "api.ts") },
    fallbackParent: url("kernel", "main.ts"),
  },
});
const server = new KernelServer(info, new TypeScriptInterpreter());
// A kernel must outlive whatever a cell leaves behind: log it and go on. These listeners are the
// kernel's own; those that libraries add later are guarded (guard.ts), as is process.exit.
process.on("uncaughtException", (error) => {
  server.log(`uncaught exception (kernel continues): ${error.stack ?? error}`);
  process.stderr.write(`Uncaught exception: ${error.name}: ${error.message}\n`);
});
process.on("unhandledRejection", (reason) => {
  const text = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
  server.log(`unhandled promise rejection (kernel continues): ${text}`);
  process.stderr.write(`Unhandled promise rejection: ${text}\n`);
});
installProcessGuards(server.log);
// The convention by which library code finds the running cell's cancellation (Deno-style, like
// Symbol.for("Jupyter.display")): long loops check the signal between steps and stop there.
Object.defineProperty(globalThis, Symbol.for("Jupyter.interruptSignal"), { value: interruptSignal, enumerable: false, configurable: true });
// A frontend that kills the kernel (SIGTERM, SIGHUP) still gets the plot browser closed.
for (const signal of ["SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    server.log(`${signal}: shutting down`);
    void server.close().finally(() => kernelExit(0));
  });
}
await server.start();
