import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../src/util/paths.ts";
import { testEngines } from "./helpers/engines.ts";

const child = join(repoRoot, "test", "helpers", "train-child.ts");
type Line = { step?: number; loss?: number; gradNorm?: number; started?: number; done?: boolean };
const parse = (text: string): Line[] => text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Line);

for (const { engine, skip } of testEngines()) test(`kill -9 mid-run, then resume: the same loss curve as an uninterrupted run (${engine})`, { skip }, async () => {
  const env = { ...process.env, KTU_ENGINE: engine };
  const full = spawnSync(process.execPath, ["--import", "tsx", child, mkdtempSync(join(tmpdir(), "ktu-full-")), "fresh", "0"], { cwd: repoRoot, encoding: "utf8", timeout: 120_000, env });
  assert.equal(full.status, 0, full.stderr);
  const reference = parse(full.stdout).filter((l) => l.step !== undefined);
  assert.equal(reference.length, 8);

  const dir = mkdtempSync(join(tmpdir(), "ktu-killed-"));
  const killedAt = await new Promise<number>((resolve, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", child, dir, "fresh", "150"], { cwd: repoRoot, env });
    let out = "";
    let killedStep = -1;
    proc.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const steps = parse(out).filter((l) => l.step !== undefined);
      if (killedStep < 0 && steps.length >= 3) {
        killedStep = steps.at(-1)!.step!;
        proc.kill("SIGKILL");
      }
    });
    proc.on("exit", (_code, signal) => (signal === "SIGKILL" ? resolve(killedStep) : reject(new Error(`child was not killed: ${out}`))));
  });
  assert.ok(killedAt >= 3 && killedAt < 8);
  // Only whole checkpoints are left: no temporary folders count as checkpoints.
  const checkpoints = readdirSync(dir).filter((n) => /^checkpoint-\d+$/.test(n));
  assert.ok(checkpoints.length >= 3, checkpoints.join(","));

  const resumed = spawnSync(process.execPath, ["--import", "tsx", child, dir, "resume", "0"], { cwd: repoRoot, encoding: "utf8", timeout: 120_000, env });
  assert.equal(resumed.status, 0, resumed.stderr);
  const lines = parse(resumed.stdout);
  const startedAt = lines[0]!.started!;
  assert.ok(startedAt >= killedAt, `resumed from step ${startedAt}, killed after ${killedAt}`);
  const after = lines.filter((l) => l.step !== undefined);
  assert.deepEqual(after.map((l) => l.step), reference.slice(startedAt).map((l) => l.step));
  for (const l of after) {
    const ref = reference[l.step! - 1]!;
    assert.equal(l.loss, ref.loss, `step ${l.step} loss`);
    assert.equal(l.gradNorm, ref.gradNorm, `step ${l.step} grad norm`);
  }
  // The log holds each step once, in order, as the uninterrupted run's does.
  const log = readFileSync(join(dir, "trainer_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { current_steps: number; loss: number });
  assert.deepEqual(log.map((r) => r.current_steps), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(log.map((r) => r.loss), reference.map((r) => Math.round(r.loss! * 1e4) / 1e4));
});
