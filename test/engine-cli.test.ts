import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { runKtu } from "./helpers/cli.ts";
import { repoRoot } from "../src/util/paths.ts";

const fakeCli = `${process.execPath} ${join(repoRoot, "test", "fixtures", "llamafactory", "llamafactory-cli.mjs")}`;

/** paper.md 2.1: the fields every YAML of the authors shares (LLaMA-Factory-configs/train_lora/, commit c8c6666). */
const PAPER_SHARED = {
  stage: "sft",
  do_train: true,
  finetuning_type: "lora",
  lora_target: "q_proj,v_proj",
  cutoff_len: 1024,
  max_samples: 1000,
  overwrite_cache: true,
  preprocessing_num_workers: 16,
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 4,
  lr_scheduler_type: "cosine",
  warmup_steps: 0.1,
  bf16: true,
  logging_steps: 10,
  save_steps: 500,
  val_size: 0.1,
  per_device_eval_batch_size: 1,
  eval_strategy: "steps",
  eval_steps: 500,
  report_to: "none",
  ddp_timeout: 180000000,
  plot_loss: true,
  overwrite_output_dir: true,
};

function configFor(preset: string, dir: string): { text: string; config: Record<string, unknown> } {
  const out = join(dir, `${preset}.yaml`);
  const run = runKtu(["lf", "config", "--preset", preset, "--model", "/models/llama-2-7b-chat-hf", "--output-root", "models", "--out", out]);
  assert.equal(run.status, 0, run.stderr);
  const text = readFileSync(out, "utf8");
  return { text, config: parseYaml(text) as Record<string, unknown> };
}

test("ktu lf config writes the paper's configs, key by key as in paper.md 2.1", () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-cli-"));
  const train = (model: string, dataset: string, lr: number, epochs: number, output: string) => ({
    model_name_or_path: model,
    ...PAPER_SHARED,
    dataset,
    dataset_dir: "data", // not in the authors' YAMLs; "data" is LLaMA-Factory's default there
    template: "llama2",
    output_dir: output,
    learning_rate: lr,
    num_train_epochs: epochs,
  });
  const merged = "models/TrustworthyLLM_Cognition_Finetuning_Model_0_Merged";
  const stage1 = configFor("stage1", dir);
  assert.deepEqual(stage1.config, train("/models/llama-2-7b-chat-hf", "TrustworthyLLM_Cognition_Finetuning_Dataset", 4.0e-5, 1.0, "models/TrustworthyLLM_Cognition_Finetuning_Model_0"));
  // Written as the authors write them, so a diff against their files is quiet.
  assert.match(stage1.text, /^learning_rate: 4\.0e-5$/m);
  assert.match(stage1.text, /^num_train_epochs: 1\.0$/m);
  assert.deepEqual(configFor("stage2", dir).config, train(merged, "TrustworthyLLM_PromptSensitive_Finetuning_Dataset", 5.0e-5, 5.0, "models/TrustworthyLLM_Cognition_PSQA_Finetuning_Model_0"));
  assert.deepEqual(configFor("stage1-qa", dir).config, train(merged, "TrustworthyLLM_QA_Finetuning_Dataset", 6.0e-5, 5.0, "models/TrustworthyLLM_Cognition_QA_Finetuning_Model"));
  // Llama2_Stage2.yaml: 5e-5, 10 epochs on the vanilla base; its output name in the authors' file,
  // ".../TrustworthyLLM_Cognition_Finetuning_Model" (sic), is replaced by the evaluation code's name.
  assert.deepEqual(configFor("stage2-only", dir).config, train("/models/llama-2-7b-chat-hf", "TrustworthyLLM_PromptSensitive_Finetuning_Dataset", 5.0e-5, 10.0, "models/TrustworthyLLM_Ablation_PSQA_Finetuning_Model"));
  // merge_lora/: finetuning_type lora, export_size 2, export_legacy_format false; export_device cuda
  // in the authors' files, auto here (LLaMA-Factory accepts only cpu or auto).
  const merge = { template: "llama2", finetuning_type: "lora", export_size: 2, export_device: "auto", export_legacy_format: false };
  assert.deepEqual(configFor("merge-stage1", dir).config, { model_name_or_path: "/models/llama-2-7b-chat-hf", adapter_name_or_path: "models/TrustworthyLLM_Cognition_Finetuning_Model_0", ...merge, export_dir: merged });
  // llama2_lora_sft.yaml merges the stage-2 adapter into the vanilla base (paper.md 1.4).
  assert.deepEqual(configFor("merge-stage2", dir).config, {
    model_name_or_path: "/models/llama-2-7b-chat-hf",
    adapter_name_or_path: "models/TrustworthyLLM_Cognition_PSQA_Finetuning_Model_0",
    ...merge,
    export_dir: "models/TrustworthyLLM_Cognition_PSQA_Finetuning_Model_0_Merged",
  });
  const bad = runKtu(["lf", "config", "--preset", "stage1", "--model", "m", "--out", join(dir, "x.yaml"), "--set", "lora_rnak=16"]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /field lora_rnak: unknown key for llamafactory-cli train; did you mean lora_rank\?/);
  assert.equal(runKtu(["lf", "config", "--preset", "stage3", "--model", "m", "--out", "x.yaml"]).status, 2);
});

function trainWorkspace(samples: number) {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-cli-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "data", "d.json"), JSON.stringify(Array.from({ length: samples }, (_, i) => ({ instruction: `q${i}`, output: "a" }))));
  writeFileSync(join(dir, "data", "dataset_info.json"), JSON.stringify({ d: { file_name: "d.json" } }));
  const cfg = join(dir, "cfg.yaml");
  writeFileSync(cfg, `model_name_or_path: base\nstage: sft\ndo_train: true\ndataset: d\noutput_dir: out\nlogging_steps: 1\nsave_steps: 5\nper_device_train_batch_size: 1\nnum_train_epochs: 1.0\noverwrite_output_dir: true\n`);
  return { dir, cfg };
}

test("ktu lf validate and ktu lf train: progress lines, crash with the last lines, Ctrl-C stops the engine", async () => {
  const { dir, cfg } = trainWorkspace(6);
  const ok = runKtu(["lf", "validate", cfg], { cwd: dir, env: { KTU_LF_KEYS: "shipped" } });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^ok: .*cfg\.yaml \(10 keys for llamafactory-cli train; shipped keys of LLaMA-Factory \S+ @[0-9a-f]{9} with transformers \S+\)/);
  const missing = runKtu(["lf", "validate", cfg, "--dataset-dir", join(dir, "elsewhere")], { cwd: dir });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cfg\.yaml, field dataset_dir: .*elsewhere\/dataset_info\.json does not exist/);

  const env = { KTU_LLAMAFACTORY_CLI: fakeCli, FAKE_LF_STEP_MS: "5" };
  const trained = runKtu(["lf", "train", cfg, "--gpus", "1"], { cwd: dir, env });
  assert.equal(trained.status, 0, trained.stderr);
  const lines = trained.stdout.trim().split("\n");
  assert.equal(lines.length, 6);
  assert.match(lines[5]!, /^\[#+\] {2}100\.0% {2}6\/6 {2}loss \d\.\d{4} {2}lr 0\.00e\+0 {2}epoch 1\.00/);
  assert.match(trained.stderr, /out succeeded/);

  const crashed = runKtu(["lf", "train", cfg], { cwd: dir, env: { ...env, FAKE_LF_CRASH_AT_STEP: "3" } });
  assert.equal(crashed.status, 1);
  assert.match(crashed.stderr, /exited with code 1; last \d+ lines of .*ktu-engine\.log:\n[\s\S]*CUDA out of memory/);

  // Ctrl-C in a terminal reaches ktu; the engine runs in its own process group and is sent SIGINT by ktu.
  const child = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), "lf", "train", cfg], { cwd: dir, env: { ...process.env, ...env, FAKE_LF_STEP_MS: "200" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const deadline = Date.now() + 20_000;
  while (!stdout.includes("2/6")) {
    assert.ok(Date.now() < deadline && child.exitCode === null, `no progress: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill("SIGINT");
  const code = await new Promise<number | null>((r) => child.on("close", r));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /out interrupted/);
  assert.ok(existsSync(join(dir, "out", "fake-lf-state.json")));
  const pid = Number(/\(pid (\d+)\)/.exec(stderr)![1]);
  assert.throws(() => process.kill(pid, 0), /ESRCH/, "the engine process is gone");
});

test("ktu lf pipeline runs the two stages with merges, then skips them on a re-run", () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-cli-"));
  const data = join(dir, "data");
  mkdirSync(data);
  const names = ["TrustworthyLLM_Cognition_Finetuning_Dataset", "TrustworthyLLM_PromptSensitive_Finetuning_Dataset", "TrustworthyLLM_QA_Finetuning_Dataset"];
  for (const name of names) writeFileSync(join(data, `${name}.json`), JSON.stringify(Array.from({ length: 20 }, (_, i) => ({ instruction: `${i}`, input: "", output: "x" }))));
  writeFileSync(join(data, "dataset_info.json"), JSON.stringify(Object.fromEntries(names.map((n) => [n, { file_name: `${n}.json` }]))));
  const args = ["lf", "pipeline", "--model", join(dir, "base"), "--data", data, "--out", join(dir, "runs"), "--ablations", "Llama2_Stage1_QA", "--set", "logging_steps=1", "--set", "per_device_train_batch_size=1"];
  const env = { KTU_LLAMAFACTORY_CLI: fakeCli, FAKE_LF_STEP_MS: "1" };
  const first = runKtu(args, { cwd: dir, env });
  assert.equal(first.status, 0, first.stderr);
  const result = JSON.parse(first.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(result.steps, { Llama2_Stage1: "ran", Llama2_Stage1_merge: "ran", Llama2_Stage1_Stage2: "ran", Llama2_Stage1_Stage2_merge: "ran", Llama2_Stage1_QA: "ran" });
  assert.match(first.stdout, /^Llama2_Stage1_Stage2 \[#+\] {2}100\.0%/m);
  assert.ok(existsSync(join(dir, "runs", "configs", "Llama2_Stage1_Stage2.yaml")));
  const second = runKtu(args, { cwd: dir, env });
  assert.equal(second.status, 0, second.stderr);
  assert.deepEqual(Object.values(JSON.parse(second.stdout.trim()).steps), ["skipped", "skipped", "skipped", "skipped", "skipped"]);
  assert.match(second.stderr, /Llama2_Stage1: already complete in .*TrustworthyLLM_Cognition_Finetuning_Model_0, skipped/);
  assert.equal(runKtu([...args, "--ablations", "nope"], { cwd: dir, env }).status, 2);
});
