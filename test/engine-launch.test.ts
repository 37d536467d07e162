import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { latestLfCheckpoint, launchLlamaFactory, lfJobs, lfLaunchEnv, LfRunError, type LfJob } from "../src/engine/launch.ts";
import { LfConfigError } from "../src/engine/validate.ts";
import { readTrainerLog } from "../src/engine/trainer-log.ts";
import { lfLossFigure } from "../src/engine/views.ts";
import { repoRoot } from "../src/util/paths.ts";

const fakeCli = [process.execPath, join(repoRoot, "test", "fixtures", "llamafactory", "llamafactory-cli.mjs")];

/** A folder with an Alpaca dataset of `samples` records registered in data/dataset_info.json, and a train config. */
function workspace(samples = 64, extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-launch-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "data", "s1.json"), JSON.stringify(Array.from({ length: samples }, (_, i) => ({ instruction: `q${i}`, input: "", output: "a" }))));
  writeFileSync(join(dir, "data", "dataset_info.json"), JSON.stringify({ s1: { file_name: "s1.json" } }));
  const config = {
    model_name_or_path: "base",
    stage: "sft",
    do_train: true,
    finetuning_type: "lora",
    lora_target: "q_proj,v_proj",
    dataset: "s1",
    template: "llama2",
    output_dir: "out",
    logging_steps: 1,
    save_steps: 4,
    per_device_train_batch_size: 2,
    gradient_accumulation_steps: 2,
    num_train_epochs: 1.0,
    learning_rate: 4.0e-5,
    overwrite_output_dir: true,
    ...extra,
  };
  writeFileSync(join(dir, "cfg.yaml"), Object.entries(config).map(([k, v]) => `${k}: ${v}`).join("\n") + "\n");
  return { dir, out: join(dir, "out"), cfg: join(dir, "cfg.yaml") };
}

const waitFor = async (condition: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
};

test("launch: the trainer log is followed live and matches LLaMA-Factory's record layout", async () => {
  const { dir, out, cfg } = workspace(64); // 64 samples / (2 x 2) = 16 steps
  const job = await launchLlamaFactory(cfg, { cli: fakeCli, cwd: dir, pollMs: 20, env: { FAKE_LF_STEP_MS: "25" } });
  assert.ok(lfJobs().includes(job));
  const seen: { step: number; running: boolean }[] = [];
  for await (const record of job.logs()) seen.push({ step: record.current_steps, running: job.status === "running" });
  const result = await job.wait();
  assert.equal(result.status, "succeeded");
  assert.deepEqual(seen.map((s) => s.step), Array.from({ length: 16 }, (_, i) => i + 1));
  assert.ok(seen.filter((s) => s.running).length >= 4, "records arrive while the run is still going");
  const first = job.records[0]!;
  assert.deepEqual(Object.keys(first), ["current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time", "remaining_time"]);
  assert.equal(first.total_steps, 16);
  assert.match(first.elapsed_time, /^\d+:\d\d:\d\d$/);
  // The file is what Python's json.dumps writes: ", " and ": " separators, 4e-05 style floats.
  const lines = readFileSync(join(out, "trainer_log.jsonl"), "utf8").trim().split("\n");
  assert.equal(lines.length, 16);
  assert.match(lines.at(-1)!, /^\{"current_steps": 16, "total_steps": 16, "loss": [\d.]+, "lr": 0\.0, "epoch": 1\.0, "percentage": 100\.0, /);
  assert.ok(existsSync(join(out, "adapter_model.safetensors")) && existsSync(join(out, "checkpoint-12")));
  assert.match(readFileSync(job.logPath, "utf8"), /train metrics/);
});

test("a crash fails wait() with the last lines of the engine output", async () => {
  const { dir, cfg } = workspace(64);
  const job = await launchLlamaFactory(cfg, { cli: fakeCli, cwd: dir, pollMs: 20, env: { FAKE_LF_STEP_MS: "5", FAKE_LF_CRASH_AT_STEP: "6" } });
  await assert.rejects(job.wait(), (error: unknown) => {
    assert.ok(error instanceof LfRunError);
    assert.match(error.message, /exited with code 1; last \d+ lines of .*ktu-engine\.log:/);
    assert.match(error.message, /torch\.OutOfMemoryError: CUDA out of memory/);
    assert.ok(error.lastLines.length <= 20);
    return true;
  });
  assert.equal(job.status, "failed");
  assert.equal(job.records.at(-1)!.current_steps, 5);
  assert.match(readFileSync(job.logPath, "utf8"), /CUDA out of memory[\s\S]*failed \(exit code 1\)/);
});

test("interrupt sends SIGINT to the process group; the run stops and can resume from its last checkpoint", async () => {
  const { dir, out, cfg } = workspace(200); // 50 steps
  const first = await launchLlamaFactory(cfg, { cli: fakeCli, cwd: dir, pollMs: 20, env: { FAKE_LF_STEP_MS: "20" } });
  await waitFor(() => existsSync(join(out, "checkpoint-8")) && (first.lastRecord?.current_steps ?? 0) >= 9);
  const started = Date.now();
  const result = await first.interrupt(5_000);
  assert.equal(result.status, "interrupted");
  assert.equal(result.exitCode, 130, "exited on SIGINT, not on the SIGTERM escalation");
  assert.ok(Date.now() - started < 2_000);
  const stoppedAt = JSON.parse(readFileSync(join(out, "fake-lf-state.json"), "utf8")).interrupted_at_step as number;
  assert.ok(stoppedAt >= 9 && stoppedAt < 50);
  assert.equal(latestLfCheckpoint(out), join(out, `checkpoint-${Math.floor(stoppedAt / 4) * 4}`));

  const second = await launchLlamaFactory(cfg, { cli: fakeCli, cwd: dir, pollMs: 20, resume: true, env: { FAKE_LF_STEP_MS: "2" } });
  await second.wait();
  const checkpoint = latestLfCheckpoint(out)!;
  const env = JSON.parse(readFileSync(join(out, "fake-lf-env.json"), "utf8"));
  assert.equal(env.resumeFrom, join(out, `checkpoint-${Math.floor(stoppedAt / 4) * 4}`));
  assert.ok(env.argv.includes("overwrite_output_dir=false"));
  assert.ok(checkpoint.endsWith("checkpoint-48"));
  // Before the resume, trainer_log.jsonl was cut back to the checkpoint's step: the first run's records
  // up to it are the job's history (not replayed by logs()), the resumed run's records follow, and no
  // step appears twice in the file.
  const checkpointStep = Math.floor(stoppedAt / 4) * 4;
  assert.deepEqual(second.history.map((r) => r.current_steps), Array.from({ length: checkpointStep }, (_, i) => i + 1));
  const seen: number[] = [];
  for await (const record of second.logs()) seen.push(record.current_steps);
  assert.deepEqual(seen, Array.from({ length: 50 - checkpointStep }, (_, i) => checkpointStep + 1 + i));
  const fileSteps = (await readTrainerLog(join(out, "trainer_log.jsonl"))).map((r) => r.current_steps);
  assert.deepEqual(fileSteps, Array.from({ length: 50 }, (_, i) => i + 1));
  const figure = lfLossFigure(second);
  assert.deepEqual((figure.data[0] as { x: number[] }).x, fileSteps);
});

test("interrupt escalates to SIGTERM when SIGINT is ignored", async () => {
  const { dir, cfg } = workspace(400);
  const job = await launchLlamaFactory(cfg, { cli: fakeCli, cwd: dir, pollMs: 20, env: { FAKE_LF_STEP_MS: "20", FAKE_LF_IGNORE_SIGINT: "1" } });
  await waitFor(() => job.records.length >= 2);
  const started = Date.now();
  const result = await job.interrupt(300);
  assert.equal(result.status, "interrupted");
  assert.equal(result.exitCode, 143);
  assert.ok(Date.now() - started >= 280);
});

test("torchrun environment for several GPUs and nodes, and DeepSpeed", async () => {
  assert.deepEqual(lfLaunchEnv({ gpus: 1 }), { CUDA_VISIBLE_DEVICES: "0" });
  assert.deepEqual(lfLaunchEnv({ gpus: [2, 3] }), { CUDA_VISIBLE_DEVICES: "2,3", FORCE_TORCHRUN: "1", NPROC_PER_NODE: "2", NNODES: "1", NODE_RANK: "0" });
  assert.deepEqual(lfLaunchEnv({ gpus: "0,1,2,3", nnodes: 2, nodeRank: 1, masterAddr: "10.0.0.1", masterPort: 29500 }), {
    CUDA_VISIBLE_DEVICES: "0,1,2,3",
    FORCE_TORCHRUN: "1",
    NPROC_PER_NODE: "4",
    NNODES: "2",
    NODE_RANK: "1",
    MASTER_ADDR: "10.0.0.1",
    MASTER_PORT: "29500",
  });
  assert.throws(() => lfLaunchEnv({ nnodes: 2 }), /needs masterAddr/);
  assert.throws(() => lfLaunchEnv({ nnodes: 2, nodeRank: 2, masterAddr: "h" }), /nodeRank 2 is not below nnodes 2/);

  const { dir, out, cfg } = workspace(64);
  const job = await launchLlamaFactory(cfg, { cli: fakeCli, cwd: dir, gpus: [0, 1], nnodes: 2, nodeRank: 0, masterAddr: "127.0.0.1", masterPort: 29555, deepspeed: 3, env: { FAKE_LF_STEP_MS: "1" } });
  await job.wait();
  const seen = JSON.parse(readFileSync(join(out, "fake-lf-env.json"), "utf8"));
  assert.deepEqual(seen.env, { CUDA_VISIBLE_DEVICES: "0,1", FORCE_TORCHRUN: "1", NPROC_PER_NODE: "2", NNODES: "2", NODE_RANK: "0", MASTER_ADDR: "127.0.0.1", MASTER_PORT: "29555" });
  assert.equal(seen.world, 4);
  assert.equal(job.records.at(-1)!.total_steps, 4, "64 samples over 4 ranks x batch 2 x accumulation 2");
  assert.equal(seen.deepspeed, join(out, "ds_z3_config.json"));
  assert.equal(JSON.parse(readFileSync(seen.deepspeed, "utf8")).zero_optimization.stage, 3);
  assert.equal(job.gpus, "0,1");
});

test("a config that fails validation is not launched", async () => {
  const { dir, out } = workspace(8);
  const before = lfJobs().length;
  await assert.rejects(
    launchLlamaFactory({ model_name_or_path: "base", do_train: true, dataset: "s2", output_dir: out, lora_rnak: 4 }, { cli: fakeCli, cwd: dir }),
    (error: unknown) => error instanceof LfConfigError && /lora_rnak.*did you mean lora_rank/.test(error.message) && /dataset "s2" is not in/.test(error.message),
  );
  assert.equal(lfJobs().length, before);
  // The double rejects the same key on its own (validation off), with HfArgumentParser's message.
  const job: LfJob = await launchLlamaFactory({ model_name_or_path: "base", do_train: true, dataset: "s1", output_dir: out, lora_rnak: 4 }, { cli: fakeCli, cwd: dir, validate: false });
  await assert.rejects(job.wait(), /Some keys are not used by the HfArgumentParser: \['lora_rnak'\]/);
});

test("a missing llamafactory-cli is a clear error", async () => {
  const { dir, cfg } = workspace(8);
  const job = await launchLlamaFactory(cfg, { cli: join(dir, "no-such-llamafactory-cli"), cwd: dir });
  await assert.rejects(job.wait(), /could not start .*no-such-llamafactory-cli: spawn .* ENOENT; install LLaMA-Factory .* KTU_LLAMAFACTORY_CLI/);
  assert.equal(job.status, "failed");
});
