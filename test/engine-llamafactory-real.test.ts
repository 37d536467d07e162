/**
 * Against the real LLaMA-Factory, where it is installed (llamafactory-cli on PATH, or
 * $KTU_LLAMAFACTORY_CLI; scripts/install-llamafactory.sh makes one): stage-1 training on stories260K
 * exported to a Hugging Face folder, with the live loss read, an interrupt and a resume; then the
 * two-stage pipeline (train, merge, train on the merge, merge) and its re-run. Skipped otherwise.
 * docs/llamafactory.md records a run (versions, times).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { test } from "node:test";
import { paperTrainConfigs } from "../src/data/llamafactory.ts";
import { lfKeys } from "../src/engine/keys.ts";
import { launchLlamaFactory, latestLfCheckpoint, resolveLfCli } from "../src/engine/launch.ts";
import { runLfPipeline } from "../src/engine/pipeline.ts";
import { readTrainerLog } from "../src/engine/trainer-log.ts";
import { exportHfModel } from "../src/model/hf-export.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { dataPath } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

function findCli(): { cli?: string[]; skip?: string } {
  const words = resolveLfCli();
  const program = words[0]!;
  const found = program.includes("/") ? existsSync(program) : (process.env.PATH ?? "").split(delimiter).some((dir) => dir && existsSync(join(dir, program)));
  return found ? { cli: words } : { skip: `${program} not found (set KTU_LLAMAFACTORY_CLI or put llamafactory-cli on PATH; scripts/install-llamafactory.sh installs one)` };
}
const { cli, skip } = findCli();
// This machine's pip has newer transformers/peft/trl than LLaMA-Factory's pins (see scripts/install-llamafactory.sh).
const env = { DISABLE_VERSION_CHECK: "1", CUDA_VISIBLE_DEVICES: "", TOKENIZERS_PARALLELISM: "false", HF_HUB_OFFLINE: "1" };

const DATASETS = ["TrustworthyLLM_Cognition_Finetuning_Dataset", "TrustworthyLLM_PromptSensitive_Finetuning_Dataset"];
function workspace(rows: number): { dir: string; model: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-real-"));
  const data = join(dir, "data");
  mkdirSync(data);
  const answers = ["I am unsure about that.", "Lily went to the park.", "The answer is not known to me."];
  for (const name of DATASETS) {
    writeFileSync(join(data, `${name}.json`), JSON.stringify(Array.from({ length: rows }, (_, i) => ({ instruction: `Question ${i}: where did Lily go?`, input: "", output: answers[i % 3] }))));
  }
  writeFileSync(join(data, "dataset_info.json"), JSON.stringify(Object.fromEntries(DATASETS.map((n) => [n, { file_name: `${n}.json`, formatting: "alpaca", columns: { prompt: "instruction", query: "input", response: "output" } }]))));
  return { dir, model: join(dir, "stories260K-hf"), data };
}

async function exportTinyModel(dir: string): Promise<void> {
  await exportHfModel(dir, { model: loadLlama2c(dataPath("models", "stories260K", "stories260K.bin")), tokenizer: Llama2cTokenizer.load(dataPath("models", "stories260K", "tok512.bin"), 512), template: "llama2" });
}

/**
 * The paper's YAML, made small (few rows, short sequences, one tokenizing process) and told to use the
 * CPU: its bf16 needs use_cpu there ("Your setup doesn't support bf16/gpu"). Everything else, warmup,
 * the validation split and evaluation included, is as `ktu lf config` writes it.
 */
const small = (rows: number) => ({
  max_samples: rows,
  cutoff_len: 48,
  per_device_train_batch_size: 2,
  gradient_accumulation_steps: 1,
  logging_steps: 1,
  save_steps: 4,
  learning_rate: 1e-3,
  preprocessing_num_workers: 1,
  use_cpu: true,
});

test("real LLaMA-Factory: stage-1 training on our exported tiny model, live loss, interrupt and resume without duplicated steps", { skip, timeout: 600_000 }, async () => {
  const { dir, model, data } = workspace(64);
  await exportTinyModel(model);
  const keys = lfKeys(cli);
  const config = { ...paperTrainConfigs({ modelPath: model, datasetDir: data, outputRoot: join(dir, "runs"), warmupKey: keys.warmup, overrides: small(64) }).Llama2_Stage1! };
  const out = config.output_dir;
  const started = Date.now();
  const job = await launchLlamaFactory(config, { cli, env, cwd: dir });
  let liveWhileRunning = 0;
  let interruptAt: number | undefined;
  let interruptMs = 0;
  for await (const record of job.logs()) {
    if (job.status === "running" && record.loss !== undefined) liveWhileRunning++;
    // About 29 steps in all; stop once a checkpoint exists and a few more steps have been logged.
    if (interruptAt === undefined && latestLfCheckpoint(out) && record.current_steps >= 6) {
      interruptAt = record.current_steps;
      const t = Date.now();
      const result = await job.interrupt(10_000);
      assert.equal(result.status, "interrupted");
      interruptMs = Date.now() - t;
      assert.ok(interruptMs < 8_000, `stopped in ${interruptMs} ms`);
      break;
    }
  }
  assert.ok(liveWhileRunning >= 3, "loss records arrived while the engine ran");
  assert.ok(interruptAt !== undefined, `the run ended before it could be interrupted: ${job.lastLines(20).join("\n")}`);
  const total = job.lastRecord!.total_steps; // 64 rows less the 10% validation split, 2 per step
  assert.ok(total >= 28 && total <= 32, `total_steps ${total}`);
  assert.ok(job.records.every((r) => typeof r.loss === "number" && Number.isFinite(r.loss)));
  const checkpoint = latestLfCheckpoint(out)!;
  const firstRun = Date.now() - started;

  const resumed = await launchLlamaFactory(config, { cli, env, cwd: dir, resume: true });
  await resumed.wait();
  assert.ok(resumed.argv.includes(`resume_from_checkpoint=${checkpoint}`));
  const checkpointStep = Number(/checkpoint-(\d+)$/.exec(checkpoint)![1]);
  assert.deepEqual(resumed.history.map((r) => r.current_steps), Array.from({ length: checkpointStep }, (_, i) => i + 1));
  assert.equal(resumed.records[0]!.current_steps, checkpointStep + 1, "the resumed run continues after the checkpoint");
  // LogCallback ends with a summary record (train_runtime, no loss) at the last step: count the loss records.
  const steps = (await readTrainerLog(join(out, "trainer_log.jsonl"))).filter((r) => r.loss !== undefined).map((r) => r.current_steps);
  assert.deepEqual(steps, Array.from({ length: total }, (_, i) => i + 1), "trainer_log.jsonl holds every step once");
  assert.ok(existsSync(join(out, "adapter_model.safetensors")) && existsSync(join(out, "adapter_config.json")));
  assert.deepEqual(JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")).target_modules.sort(), ["q_proj", "v_proj"]);
  process.stderr.write(`real LLaMA-Factory: first run ${firstRun} ms to step ${interruptAt} (interrupt took ${interruptMs} ms), resume ${resumed.elapsedMs} ms\n`);
});

test("real LLaMA-Factory: the two-stage pipeline runs end to end, skips its finished steps on a re-run, and ktu generate reads the final merge", { skip, timeout: 900_000 }, async () => {
  const { dir, model, data } = workspace(12);
  await exportTinyModel(model);
  const outDir = join(dir, "runs");
  // One epoch per stage and no checkpoints: the steps, not the paper's schedule, are under test here.
  const options = { modelPath: model, datasetDir: data, outDir, cli, env, cwd: dir, trainOverrides: { ...small(12), num_train_epochs: 1.0, save_steps: 1000 } };
  const started = Date.now();
  const times: Record<string, number> = {};
  const result = await runLfPipeline({
    ...options,
    onStep: (event) => {
      if (event.type === "finished") times[event.step.name] = event.job.elapsedMs;
    },
  });
  assert.equal(result.status, "completed");
  assert.deepEqual(Object.values(result.steps), ["ran", "ran", "ran", "ran"]);
  for (const f of ["config.json", "tokenizer.json"]) assert.ok(existsSync(join(result.finalModel, f)), f);
  const again = await runLfPipeline(options);
  assert.deepEqual(Object.values(again.steps), ["skipped", "skipped", "skipped", "skipped"]);
  const generated = runKtu(["generate", "--model", result.finalModel, "--prompt", "Once upon a time", "--steps", "24", "--temperature", "0"]);
  assert.equal(generated.status, 0, generated.stderr);
  assert.match(generated.stdout, /^Once upon a time/);
  process.stderr.write(`real LLaMA-Factory pipeline: ${Date.now() - started} ms (${Object.entries(times).map(([k, v]) => `${k} ${v} ms`).join(", ")})\n`);
});
