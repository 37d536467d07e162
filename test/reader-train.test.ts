import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { dataPath } from "../src/util/paths.ts";

const root = mkdtempSync(join(tmpdir(), "ktu-reader-train-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** recipes/reader/train.ts on one native or wasm thread, up to global step `steps`, in `out`. */
function train(out: string, steps: number): string {
  mkdirSync(out, { recursive: true });
  // The shipped tokenizer is the one train.ts would train (same bytes); copying it skips the BPE training.
  copyFileSync(dataPath("models", "reader", "tokenizer.bin"), join(out, "tokenizer.bin"));
  return execFileSync(process.execPath, ["--import", "tsx", "recipes/reader/train.ts", "--out", out, "--curriculum", "context-first-multi", "--levels", "lookup-8", "--steps", String(steps)], {
    encoding: "utf8",
    env: { ...process.env, KTU_NATIVE_THREADS: "1" },
  });
}

test("a reader run stopped and resumed ends with the weights and log of an uninterrupted one", () => {
  const straight = join(root, "straight");
  const resumed = join(root, "resumed");
  train(straight, 6);
  const first = train(resumed, 3);
  assert.match(first, /stopped at step 3 \(level lookup-8\)/);
  const second = train(resumed, 6);
  assert.match(second, /resumed at step 3, level lookup-8/);
  assert.deepEqual(readFileSync(join(resumed, "checkpoint", "model.bin")), readFileSync(join(straight, "checkpoint", "model.bin")));
  const steps = (dir: string) => readFileSync(join(dir, "log.jsonl"), "utf8").trim().split("\n").map((l) => { const { ms: _ms, ...rest } = JSON.parse(l) as Record<string, unknown>; return rest; });
  assert.deepEqual(steps(resumed), steps(straight));
  assert.equal(steps(straight).length, 6);
  // The level's tasks include multi-question rows (scored ranges) and the single-question lookup.
  assert.ok(new Set(steps(straight).map((s) => s.task)).size >= 2);
});

test("a checkpoint refuses to continue under another curriculum", () => {
  const out = join(root, "other");
  train(out, 1);
  assert.throws(() => execFileSync(process.execPath, ["--import", "tsx", "recipes/reader/train.ts", "--out", out, "--curriculum", "default", "--steps", "2"], { encoding: "utf8", stdio: "pipe" }), /trained under curriculum context-first-multi, not curriculum default/);
});

test("a resume after a torn log line and a save that died between its renames continues from the previous checkpoint", () => {
  const out = join(root, "crashed");
  train(out, 3);
  // The kill: half a log row, and the checkpoint moved aside as FullTrainer.save does before its second rename.
  appendFileSync(join(out, "log.jsonl"), '{"step":4,"loss":1.2');
  renameSync(join(out, "checkpoint"), join(out, ".checkpoint.tmp-12345-old"));
  const second = execFileSync(process.execPath, ["--import", "tsx", "recipes/reader/train.ts", "--out", out, "--curriculum", "context-first-multi", "--levels", "lookup-8", "--steps", "5"], {
    encoding: "utf8",
    env: { ...process.env, KTU_NATIVE_THREADS: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  assert.match(second, /resumed at step 3, level lookup-8/);
  const steps = readFileSync(join(out, "log.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5]);
  assert.ok(!existsSync(join(out, ".checkpoint.tmp-12345-old")));
});
