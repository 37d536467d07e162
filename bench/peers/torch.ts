/**
 * The PyTorch peer of the training and scoring benches: which Python runs it, and load-average
 * bookkeeping. The peer is PyTorch 2.x CPU from bench/.venv (scripts/install-bench-deps.sh), or the
 * interpreter KTU_TORCH_PYTHON names; Debian's /usr/bin/python3 with python3-torch (1.13) is only a
 * fallback, and results say so (`torch_fallback`).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../../src/util/paths.ts";

export interface TorchPeer {
  python: string;
  version: string;
  /** Not PyTorch 2.x from the venv: Debian's 1.13 or whatever python3 has. */
  fallback: boolean;
}

let found: TorchPeer | null | undefined;

export function torchPeer(): TorchPeer | null {
  if (found !== undefined) return found;
  const candidates = [process.env.KTU_TORCH_PYTHON, join(repoRoot, "bench", ".venv", "bin", "python"), "/usr/bin/python3"].filter((p): p is string => !!p && existsSync(p));
  for (const python of candidates) {
    const r = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
    if (r.status !== 0) continue;
    const version = r.stdout.trim();
    found = { python, version, fallback: !version.startsWith("2.") };
    if (found.fallback) console.error(`WARNING: the PyTorch peer is ${version} from ${python}, not PyTorch 2.x: run scripts/install-bench-deps.sh (figures are flagged torch_fallback)`);
    return found;
  }
  console.error("no PyTorch peer: run scripts/install-bench-deps.sh");
  return (found = null);
}

/** Runs a peer script; returns its last stdout line as JSON, or undefined (with the error printed). */
export function runTorch<T>(script: string, args: (string | number)[], threads: number): T | undefined {
  const peer = torchPeer();
  if (!peer) return undefined;
  const r = spawnSync(peer.python, [join(repoRoot, "bench", "peers", script), ...args.map(String)], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) }, maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    console.error(`torch peer ${script} failed: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-3).join(" | ")}`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as T;
}

/**
 * Our side of a bench in a child process (this bench's own file with `args`), on the native engine at
 * `threads` threads: the child prints its result as the last line of JSON. `label` names it in errors.
 */
export function runOursChild<T>(benchFile: string, args: readonly (string | number)[], threads: number, label: string): T | undefined {
  const r = spawnSync(process.execPath, ["--import", "tsx", benchFile, ...args.map(String)], { cwd: repoRoot, encoding: "utf8", env: { ...process.env, KTU_NATIVE_THREADS: String(threads) }, maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    console.error(`ours (${label}, ${threads} threads) failed: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-3).join(" | ")}`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as T;
}

export const cores = (): number => cpus().length;
export const load1 = (): number => Math.round(loadavg()[0]! * 100) / 100;

/**
 * Load bookkeeping a bench prints and stores: before, after, and whether other work stayed under 0.3
 * per core. The 1-minute average after a run includes the bench's own threads (at most one per core),
 * so "after" is held to 0.3 per core on top of that; "before" is others' load alone.
 */
export function loadReport(before: number): { loadavg_before: number; loadavg_after: number; cpus: number; idle: boolean } {
  const after = load1();
  const idle = before < 0.3 * cores() && after < 0.3 * cores() + cores();
  console.log(`load average before ${before.toFixed(2)}, after ${after.toFixed(2)} on ${cores()} cores: ${idle ? "idle enough (others under 0.3 per core) for the README table" : "NOT idle (0.3 per core from other work is the bar): the README table will not take these figures"}`);
  return { loadavg_before: before, loadavg_after: after, cpus: cores(), idle };
}

/** Thread counts a bench compares at: 1 and all cores (once, on a 1-core machine). */
export const threadCounts = (): number[] => [...new Set([1, cores()])];
