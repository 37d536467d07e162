import { spawnSync } from "node:child_process";
import { lfPython } from "../../src/engine/keys.ts";

/**
 * A Python that imports the given modules, for the checks against transformers / peft /
 * huggingface_hub: $KTU_TEST_PYTHON, else the Python of an installed llamafactory-cli
 * ($KTU_LLAMAFACTORY_CLI or on PATH; scripts/install-llamafactory.sh makes one), else python3.
 * Returns the interpreter or the one-line reason to skip.
 */
export function findPython(modules: readonly string[]): { python?: string; skip?: string } {
  const candidates = [process.env.KTU_TEST_PYTHON, lfPython((process.env.KTU_LLAMAFACTORY_CLI ?? "llamafactory-cli").split(/\s+/)), "python3"].filter((c): c is string => Boolean(c));
  for (const python of [...new Set(candidates)]) {
    const r = spawnSync(python, ["-c", `import ${modules.join(", ")}`], { encoding: "utf8", timeout: 180_000 }); // torch + transformers take a while to import on a busy machine
    if (r.status === 0) return { python };
  }
  return { skip: `no Python with ${modules.join(", ")} (set KTU_TEST_PYTHON, or run scripts/install-llamafactory.sh, or pip install ${modules.join(" ")})` };
}

/** Runs a Python snippet; returns its stdout's last line parsed as JSON. */
export function runPython(python: string, code: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): unknown {
  const r = spawnSync(python, ["-c", code, ...args], { encoding: "utf8", timeout: 300_000, env: { ...process.env, TRANSFORMERS_VERBOSITY: "error", HF_HUB_DISABLE_PROGRESS_BARS: "1", ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}
