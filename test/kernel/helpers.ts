import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installKernel } from "../../kernel/install.ts";
import { repoRoot } from "../../src/util/paths.ts";

export const PYTHON = "/usr/bin/python3";
export const KERNEL_TEST_DIR = join(repoRoot, "test", "kernel");

/** Why the Jupyter tests cannot run here (Debian's Python or a module is missing), or undefined. */
export function missingPython(modules: string[]): string | undefined {
  const probe = spawnSync(PYTHON, ["-c", `import ${modules.join(", ")}`], { encoding: "utf8" });
  if (probe.error) return `${PYTHON} not found (run scripts/install-test-deps.sh)`;
  if (probe.status !== 0) return `${PYTHON} lacks ${modules.join(", ")} (run scripts/install-test-deps.sh)`;
  return undefined;
}

/**
 * Installs the kernelspec into a fresh prefix and returns the environment that makes Jupyter find it
 * (and nothing from the machine's own Jupyter state: runtime files go to the temp dir too).
 */
export async function testKernelEnv(): Promise<NodeJS.ProcessEnv> {
  const prefix = mkdtempSync(join(tmpdir(), "ktu-kernelspec-"));
  await installKernel({ prefix });
  return {
    ...process.env,
    JUPYTER_PATH: join(prefix, "share", "jupyter"),
    JUPYTER_RUNTIME_DIR: join(prefix, "runtime"),
    JUPYTER_CONFIG_DIR: join(prefix, "config"),
    KTU_KERNEL_NAME: "know-the-unknown",
    PYDEVD_DISABLE_FILE_VALIDATION: "1",
  };
}

export interface UnittestRun {
  code: number | null;
  output: string;
  ran: number;
  ok: boolean;
  failures: number;
  errors: number;
  skipped: number;
}

/** Runs `python -m unittest <module>` in test/kernel and parses unittest's summary. */
export function runUnittest(module: string, env: NodeJS.ProcessEnv, timeoutMs = 200_000): Promise<UnittestRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ["-X", "frozen_modules=off", "-m", "unittest", "-v", module], { cwd: KERNEL_TEST_DIR, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const number = (pattern: RegExp): number => Number(pattern.exec(output)?.[1] ?? 0);
      resolve({
        code,
        output,
        ran: number(/Ran (\d+) tests?/),
        ok: /\nOK( \(|\n|$)/.test(output),
        failures: number(/failures=(\d+)/),
        errors: number(/errors=(\d+)/),
        skipped: number(/skipped=(\d+)/),
      });
    });
  });
}
