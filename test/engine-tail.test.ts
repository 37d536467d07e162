import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readTrainerLog, tailTrainerLog, type TrainerLogRecord } from "../src/engine/trainer-log.ts";

const line = (step: number, loss: number) => JSON.stringify({ current_steps: step, total_steps: 10, loss, lr: 4e-5, epoch: step / 10, percentage: step * 10, elapsed_time: "0:00:01", remaining_time: "0:00:09" }) + "\n";

const waitFor = async (condition: () => boolean): Promise<void> => {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, "timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};

test("tail waits for the file, holds a partial line, and restarts on truncation and re-creation", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-tail-"));
  const file = join(dir, "trainer_log.jsonl");
  let finish!: () => void;
  const until = new Promise<void>((r) => (finish = r));
  const seen: TrainerLogRecord[] = [];
  const reader = (async () => {
    for await (const record of tailTrainerLog(file, { until, pollMs: 5 })) seen.push(record);
  })();

  // Half of the second line first: were it taken for a line, parsing it would throw and fail the test.
  const two = line(2, 1.5);
  writeFileSync(file, line(1, 2.0) + two.slice(0, 25));
  await waitFor(() => seen.length === 1);
  appendFileSync(file, two.slice(25));
  await waitFor(() => seen.length === 2);
  assert.deepEqual(seen.map((r) => r.loss), [2.0, 1.5]);

  writeFileSync(file, line(1, 9.0)); // truncated and rewritten (a new run with overwrite_output_dir)
  await waitFor(() => seen.length === 3);
  rmSync(file); // deleted, then created again, possibly before the next look
  writeFileSync(file, line(1, 8.0) + line(2, 7.0) + line(3, 6.5));
  appendFileSync(file, line(4, 6.0));
  finish(); // the last lines written just before the stop are still read
  await reader;
  assert.deepEqual(seen.map((r) => r.loss), [2.0, 1.5, 9.0, 8.0, 7.0, 6.5, 6.0]);
});

test("a complete line that is not a record is an error naming the file and line", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-tail-"));
  const file = join(dir, "trainer_log.jsonl");
  writeFileSync(file, line(1, 2) + "{oops\n");
  await assert.rejects(readTrainerLog(file), /trainer_log\.jsonl, line 2: not a JSON object/);
  writeFileSync(file, line(1, 2) + '{"loss": 1}\n');
  await assert.rejects(readTrainerLog(file), /line 2, field current_steps/);
  assert.deepEqual(await readTrainerLog(join(dir, "missing.jsonl")), []);
});
