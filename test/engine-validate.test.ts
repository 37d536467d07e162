import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkLfConfig, LfConfigError, lfConfigWarnings, validateLfConfig } from "../src/engine/validate.ts";
import { llamaFactoryKeys, llamaFactoryKeysSource, suggestKey } from "../src/engine/keys.ts";
import { readModelModules } from "../src/engine/model-modules.ts";

/** A safetensors file holding only a header (zero-length tensors), enough for reading tensor names. */
function writeSafetensorsHeader(path: string, names: string[]): void {
  const header = Buffer.from(JSON.stringify(Object.fromEntries(names.map((n) => [n, { dtype: "F32", shape: [0], data_offsets: [0, 0] }]))));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(path, Buffer.concat([length, header]));
}

function workspace() {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-validate-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "data", "stage1.json"), "[]");
  writeFileSync(join(dir, "data", "dataset_info.json"), JSON.stringify({ TrustworthyLLM_Cognition_Finetuning_Dataset: { file_name: "stage1.json" }, ghost: { file_name: "ghost.json" } }));
  const model = join(dir, "model");
  mkdirSync(model);
  writeFileSync(join(model, "config.json"), JSON.stringify({ model_type: "llama" }));
  writeSafetensorsHeader(join(model, "model.safetensors"), [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "lm_head.weight",
  ]);
  const config = {
    model_name_or_path: "model",
    stage: "sft",
    do_train: true,
    finetuning_type: "lora",
    lora_target: "q_proj,v_proj",
    dataset: "TrustworthyLLM_Cognition_Finetuning_Dataset",
    dataset_dir: "data",
    template: "llama2",
    output_dir: "out",
  };
  return { dir, config };
}

test("the key list comes from LLaMA-Factory's source and names its commit", () => {
  const source = llamaFactoryKeysSource();
  assert.match(source.commit, /^[0-9a-f]{40}$/);
  assert.match(source.version, /^\d+\.\d+/);
  const train = llamaFactoryKeys("train");
  for (const key of ["lora_target", "cutoff_len", "val_size", "plot_loss", "overwrite_output_dir", "ddp_timeout", "eval_strategy", "deepspeed", "resume_from_checkpoint"]) assert.ok(train.has(key), key);
  // Fields declared init=False are not accepted by HfArgumentParser.parse_dict.
  assert.ok(!train.has("compute_dtype") && !train.has("model_max_length"));
  // export parses ModelArguments/DataArguments/FinetuningArguments/GeneratingArguments only.
  const exportKeys = llamaFactoryKeys("export");
  assert.ok(exportKeys.has("export_dir") && exportKeys.has("adapter_name_or_path") && !exportKeys.has("learning_rate"));
});

test("a good config passes", () => {
  const { dir, config } = workspace();
  assert.deepEqual(checkLfConfig(config, { cwd: dir }), []);
});

test("an unknown key is named with a did-you-mean suggestion", () => {
  const { dir, config } = workspace();
  assert.equal(suggestKey("lora_rnak", "train"), "lora_rank");
  assert.equal(suggestKey("completely_made_up_option", "train"), undefined);
  assert.throws(
    () => validateLfConfig({ ...config, learnig_rate: 1e-4, lora_rnak: 8 }, { cwd: dir, file: "cfg.yaml" }),
    (error: unknown) => {
      assert.ok(error instanceof LfConfigError);
      assert.match(error.message, /cfg\.yaml, field learnig_rate: unknown key for llamafactory-cli train; did you mean learning_rate\?/);
      assert.match(error.message, /field lora_rnak: .*did you mean lora_rank\?/);
      return true;
    },
  );
  // learning_rate is a training key: export rejects it.
  const problems = checkLfConfig({ model_name_or_path: "model", export_dir: "merged", learning_rate: 1e-4 }, { command: "export", cwd: dir });
  assert.deepEqual(problems.map((p) => p.key), ["learning_rate"]);
});

test("a dataset missing from dataset_info.json, or its file, is an error", () => {
  const { dir, config } = workspace();
  const problems = checkLfConfig({ ...config, dataset: "TrustworthyLLM_Cognition_Finetuning_Dataset, nope", eval_dataset: "ghost" }, { cwd: dir });
  assert.equal(problems.length, 2);
  assert.equal(problems[0]!.key, "dataset");
  assert.match(problems[0]!.message, /dataset "nope" is not in .*dataset_info\.json \(it has: TrustworthyLLM_Cognition_Finetuning_Dataset, ghost\)/);
  assert.equal(problems[1]!.key, "eval_dataset");
  assert.match(problems[1]!.message, /ghost\.json does not exist/);
  const elsewhere = checkLfConfig(config, { cwd: dir, datasetDir: join(dir, "model") });
  assert.match(elsewhere[0]!.message, /dataset_info\.json does not exist/);
});

test("a LoRA target the model lacks is named with the modules it has", () => {
  const { dir, config } = workspace();
  const problems = checkLfConfig({ ...config, lora_target: "q_proj,c_attn,gate_proj" }, { cwd: dir });
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.key, "lora_target");
  assert.match(problems[0]!.message, /has no module named c_attn, gate_proj/);
  assert.match(problems[0]!.message, /its modules: embed_tokens, k_proj, lm_head, q_proj, up_proj, v_proj/);
  // "all" and dotted suffixes follow PEFT's matching.
  assert.deepEqual(checkLfConfig({ ...config, lora_target: "all" }, { cwd: dir }), []);
  assert.deepEqual(checkLfConfig({ ...config, lora_target: "self_attn.q_proj" }, { cwd: dir }), []);
  // Without weights, config.json's model_type gives the module names.
  const gpt2 = join(dir, "gpt2");
  mkdirSync(gpt2);
  writeFileSync(join(gpt2, "config.json"), JSON.stringify({ model_type: "gpt2" }));
  assert.deepEqual(readModelModules(gpt2)!.paths, ["c_attn", "c_proj", "c_fc", "lm_head"]);
  assert.equal(checkLfConfig({ ...config, model_name_or_path: "gpt2" }, { cwd: dir })[0]!.key, "lora_target");
  // A hub id that is not a local folder cannot be checked here.
  assert.deepEqual(checkLfConfig({ ...config, model_name_or_path: "meta-llama/Llama-2-7b-chat-hf" }, { cwd: dir }), []);
});

test("an output_dir holding a finished run is refused unless overwrite_output_dir", () => {
  const { dir, config } = workspace();
  mkdirSync(join(dir, "out"));
  writeFileSync(join(dir, "out", "trainer_log.jsonl"), "");
  assert.deepEqual(checkLfConfig(config, { cwd: dir }), []);
  writeFileSync(join(dir, "out", "all_results.json"), "{}");
  const problems = checkLfConfig(config, { cwd: dir });
  assert.equal(problems[0]!.key, "output_dir");
  assert.match(problems[0]!.message, /out\/all_results\.json exists: .* set overwrite_output_dir: true/);
  assert.deepEqual(checkLfConfig({ ...config, overwrite_output_dir: true }, { cwd: dir }), []);
});

test("required keys and a missing DeepSpeed file are reported", () => {
  const { dir } = workspace();
  const problems = checkLfConfig({ do_train: true, deepspeed: "ds/ds_z3_config.json" }, { cwd: dir });
  assert.deepEqual(problems.map((p) => p.key).sort(), ["dataset", "deepspeed", "model_name_or_path", "output_dir"]);
});

test("export: a local adapter folder must hold adapter_config.json; deprecated keys give notes", () => {
  const { dir } = workspace();
  const merge = { model_name_or_path: "model", adapter_name_or_path: join(dir, "stage1"), template: "llama2", finetuning_type: "lora", export_dir: "merged" };
  const problems = checkLfConfig(merge, { command: "export", cwd: dir });
  assert.equal(problems.length, 1);
  assert.match(problems[0]!.message, /stage1 is not a LoRA adapter folder \(no adapter_config\.json; the folder does not exist\)/);
  mkdirSync(join(dir, "stage1"));
  writeFileSync(join(dir, "stage1", "adapter_config.json"), "{}");
  assert.deepEqual(checkLfConfig(merge, { command: "export", cwd: dir }), []);
  assert.deepEqual(checkLfConfig({ ...merge, adapter_name_or_path: "someone/hub-adapter" }, { command: "export", cwd: dir }), []);
  assert.deepEqual(lfConfigWarnings({ overwrite_output_dir: true, learning_rate: 1e-4 }).map((w) => w.key), ["overwrite_output_dir"]);
});
