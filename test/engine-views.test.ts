import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { launchLlamaFactory } from "../src/engine/launch.ts";
import type { TrainerLogRecord } from "../src/engine/trainer-log.ts";
import { latestPerStep, lfJobsTable, lfLossFigure, lfProgress } from "../src/engine/views.ts";
import { repoRoot } from "../src/util/paths.ts";

const rec = (step: number, loss: number, extra: Partial<TrainerLogRecord> = {}): TrainerLogRecord => ({
  current_steps: step,
  total_steps: 10,
  loss,
  lr: 1e-5,
  epoch: step / 10,
  percentage: step * 10,
  elapsed_time: "0:00:05",
  remaining_time: "0:00:05",
  ...extra,
});

test("a resumed run's curve keeps the resumed points and drops the superseded ones", () => {
  // Run 1 reached step 5, checkpoint at 3; run 2 resumed at 4.
  const records = [rec(1, 3), rec(2, 2.5), rec(3, 2), rec(4, 1.9), rec(5, 1.8), rec(4, 1.7), rec(5, 1.6), rec(6, 1.5)];
  assert.deepEqual(latestPerStep(records, "loss"), [
    { step: 1, value: 3 },
    { step: 2, value: 2.5 },
    { step: 3, value: 2 },
    { step: 4, value: 1.7 },
    { step: 5, value: 1.6 },
    { step: 6, value: 1.5 },
  ]);
  // LLaMA-Factory logs evaluation as its own line at the current step, without loss.
  const { loss: _none, ...evalRecord } = rec(6, 0, { eval_loss: 2.2 });
  const figure = lfLossFigure([{ name: "stage1", records: [...records, evalRecord as TrainerLogRecord] }]);
  assert.equal(figure.data.length, 2);
  assert.deepEqual(figure.data[0]!.x, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(figure.data[1]!.y, [2.2]);
  assert.deepEqual((figure.layout.xaxis as { range: number[] }).range, [0, 10]);
  // Plain JSON: what a display_data message carries.
  assert.deepEqual(JSON.parse(JSON.stringify(figure)), figure);
});

test("progress line and job table for a real (double) run", async () => {
  const p = lfProgress(rec(5, 1.23456, { eval_loss: 1.5 }), 10);
  assert.equal(p.fraction, 0.5);
  assert.equal(p.line, "[#####.....]   50.0%  5/10  loss 1.2346  eval_loss 1.5000  lr 1.00e-5  epoch 0.50  0:00:05 elapsed, 0:00:05 left");

  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-views-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "data", "d.json"), JSON.stringify(Array.from({ length: 8 }, () => ({ instruction: "q", output: "a" }))));
  writeFileSync(join(dir, "data", "dataset_info.json"), JSON.stringify({ d: { file_name: "d.json" } }));
  const config = { model_name_or_path: "base", do_train: true, dataset: "d", output_dir: "run-a", logging_steps: 2, per_device_train_batch_size: 1, num_train_epochs: 1.0 };
  const job = await launchLlamaFactory(config, { cli: [process.execPath, join(repoRoot, "test", "fixtures", "llamafactory", "llamafactory-cli.mjs")], cwd: dir, gpus: "3", env: { FAKE_LF_STEP_MS: "1" }, pollMs: 10 });
  await job.wait();
  const table = lfJobsTable([job]);
  const [row] = table.objects() as Record<string, unknown>[];
  assert.equal(row!.name, "run-a");
  assert.equal(row!.status, "succeeded");
  assert.equal(row!.step, "8/8");
  assert.equal(row!.gpu, "3");
  assert.equal(row!.loss, job.records.at(-1)!.loss);
  assert.match(String(row!.elapsed), /^0:00:0\d$/);
  const figure = lfLossFigure(job);
  assert.deepEqual(figure.data[0]!.x, [2, 4, 6, 8]);
});
