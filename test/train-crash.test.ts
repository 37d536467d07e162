/**
 * Resume after a crash: a torn last line in a JSONL log is dropped with a warning; a trainer killed at
 * random points of a checkpoint save (and one that dies between the save's two renames) leaves a
 * checkpoint that recoverCheckpoint makes loadable again.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { initBackend } from "../src/model/backend.ts";
import type { LlamaConfig } from "../src/model/types.ts";
import { keepLogRowsUpTo, readLogRows } from "../src/train/jsonl-log.ts";
import { checkpointHooks, FullTrainer, initLlama, recoverCheckpoint } from "../src/train/pretrain.ts";
import { InputError } from "../src/util/errors.ts";
import { repoRoot } from "../src/util/paths.ts";

const root = mkdtempSync(join(tmpdir(), "ktu-train-crash-"));
const config: LlamaConfig = { arch: "llama", dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 20, seqLen: 8, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
before(() => initBackend());

test("a torn last line in log.jsonl is dropped with a warning naming the file; a bad line elsewhere is an InputError naming file and line", () => {
  const path = join(root, "log.jsonl");
  writeFileSync(path, '{"step":1,"tokens":10}\n{"step":2,"tokens":10}\n{"step":3,"tok');
  const warnings: string[] = [];
  const kept = keepLogRowsUpTo(path, 5, (m) => warnings.push(m));
  assert.deepEqual(kept.map((r) => r.step), [1, 2]);
  assert.equal(readFileSync(path, "utf8"), '{"step":1,"tokens":10}\n{"step":2,"tokens":10}\n');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /log\.jsonl: line 3 is cut short .*dropped/);
  writeFileSync(path, '{"step":1}\n{"ste\n{"step":3}\n');
  assert.throws(() => readLogRows(path), (e: InputError) => e instanceof InputError && /log\.jsonl, line 2: not JSON/.test(e.message));
  writeFileSync(path, "null\n");
  assert.throws(() => readLogRows(path), /log\.jsonl, line 1, field step: expected a JSON object with a numeric step/);
});

test("a crash between the two renames of a save: recoverCheckpoint puts the previous checkpoint back, and it loads", () => {
  const dir = join(root, "ckpt-renames", "checkpoint");
  const trainer = new FullTrainer(initLlama(config, 1), {});
  trainer.step = 4;
  trainer.save(dir);
  trainer.step = 5;
  checkpointHooks.betweenRenames = () => {
    throw new Error("crash");
  };
  try {
    assert.throws(() => trainer.save(dir), /crash/);
  } finally {
    checkpointHooks.betweenRenames = undefined;
  }
  assert.ok(!existsSync(dir), "the save died with the checkpoint moved aside");
  const warnings: string[] = [];
  assert.equal(recoverCheckpoint(dir, (m) => warnings.push(m)), true);
  assert.match(warnings[0]!, /a save was interrupted between its renames; the previous checkpoint \(step 4\) is back from \.checkpoint\.tmp-\d+-old/);
  assert.equal(FullTrainer.load(dir).trainer.step, 4);
  assert.deepEqual(readdirSync(join(root, "ckpt-renames")), ["checkpoint"], "no temporary folders left");
  assert.equal(recoverCheckpoint(join(root, "none", "checkpoint")), false);
  trainer.dispose();
});

test("a trainer killed (SIGKILL) at random points of its saves always leaves a checkpoint that loads", { timeout: 300_000 }, async () => {
  for (let round = 0; round < 6; round++) {
    const dir = join(root, `kill-${round}`, "checkpoint");
    const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "test", "helpers", "save-loop.ts"), dir], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
    let saved = 0;
    await new Promise<void>((resolve) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const steps = [...out.matchAll(/saved (\d+)/g)];
        saved = steps.length ? Number(steps.at(-1)![1]) : 0;
        // After the first save, kill it a random few milliseconds into a later one.
        if (saved >= 1 && !child.killed) setTimeout(() => child.kill("SIGKILL"), Math.random() * 40);
      });
      child.on("exit", () => resolve());
    });
    assert.ok(saved >= 1, "at least one save finished before the kill");
    assert.equal(recoverCheckpoint(dir, () => undefined), true, `round ${round}: a checkpoint is there after recovery`);
    const { trainer } = FullTrainer.load(dir);
    assert.ok(trainer.step >= saved, `round ${round}: step ${trainer.step}, last reported save ${saved}`);
    trainer.dispose();
  }
});
