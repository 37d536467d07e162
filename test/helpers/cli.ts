import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../../src/util/paths.ts";

/** Runs the real `ktu` command line (bin/ktu.js) in a child process, as a user would. */
export function runKtu(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(repoRoot, "bin", "ktu.js"), ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, ...options.env },
    input: options.input,
    encoding: "utf8",
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
}
