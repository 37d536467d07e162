import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { describeBackend, initBackend } from "../model/backend.ts";
import { getChatTemplate } from "../model/chat-templates.ts";
import { isHubSpec } from "../model/hub.ts";
import { openModel } from "../model/open.ts";
import { defineCommand, requireString, type Command } from "../util/command.ts";
import { InputError, UsageError } from "../util/errors.ts";
import { parseTrainConfig, type TrainJob } from "./config.ts";
import { encodeSftRows, loadSftDatasets, splitTrainVal } from "./dataset.ts";
import { LoraAdapter, mergeLora } from "./lora.ts";
import { SftTrainer, type StepResult } from "./sft.ts";

/** Reads a YAML file of LLaMA-Factory keys; `overrides` are key=value words as llamafactory-cli takes them. */
export function readTrainYaml(file: string, overrides: readonly string[] = []): TrainJob {
  let record: Record<string, unknown>;
  try {
    record = (parseYaml(readFileSync(file, "utf8")) ?? {}) as Record<string, unknown>;
  } catch (error) {
    throw new InputError(file, undefined, undefined, `cannot read the YAML: ${(error as Error).message}`);
  }
  if (typeof record !== "object" || Array.isArray(record)) throw new InputError(file, undefined, undefined, "expected a mapping of keys");
  for (const word of overrides) {
    const at = word.indexOf("=");
    if (at <= 0) throw new UsageError(`ktu train: expected key=value, got ${JSON.stringify(word)}`);
    record[word.slice(0, at)] = parseYaml(word.slice(at + 1));
  }
  return parseTrainConfig(record, file);
}

/** Paths in the YAML are taken relative to the working directory, else to the YAML's folder. */
const locate = (path: string, yamlDir: string): string => (isAbsolute(path) || existsSync(path) ? resolve(path) : resolve(yamlDir, path));

/**
 * model_name_or_path: hf:ORG/NAME[@REV], a local folder or file, or (as LLaMA-Factory reads it) an
 * ORG/NAME that is no local path: a hub model, fetched into the shared huggingface_hub cache.
 */
const locateModel = (path: string, yamlDir: string): string => {
  if (isHubSpec(path)) return path;
  const local = locate(path, yamlDir);
  return !existsSync(local) && /^[\w.-]+\/[\w.-]+$/.test(path) ? `hf:${path}` : local;
};

const fmt = (s: StepResult): string =>
  `step ${s.step}/${s.totalSteps}  loss ${s.loss.toFixed(4)}  lr ${s.lr.toExponential(2)}  grad_norm ${s.gradNorm.toFixed(3)}  epoch ${s.epoch.toFixed(2)}  ${Math.round(s.tokensPerSec)} tok/s` +
  (s.evalLoss !== undefined ? `  eval_loss ${s.evalLoss.toFixed(4)}` : "");

/** Runs a parsed job to the end (or to an interrupt), printing progress through `print`. */
export async function runTrainJob(job: TrainJob, yamlDir: string, print: (line: string) => void = (l) => process.stdout.write(l + "\n")): Promise<{ trainer: SftTrainer; interrupted: boolean }> {
  for (const note of job.notes) print(`note: ${note}`);
  print(describeBackend(await initBackend()));
  const opened = openModel(locateModel(job.modelPath, yamlDir));
  let model = opened.model;
  if (job.adapterPath) {
    const adapter = LoraAdapter.load(locate(job.adapterPath, yamlDir), model.config);
    model = mergeLora(model, adapter);
    adapter.dispose();
    print(`merged adapter ${job.adapterPath} into the base before training`);
  }
  const outputDir = locate(job.outputDir, yamlDir);
  const resuming = job.resumeFromCheckpoint !== undefined;
  if (!resuming && !job.sft.overwriteOutputDir && existsSync(outputDir) && readdirSync(outputDir).some((n) => n.startsWith("checkpoint-") || n === "adapter_model.safetensors")) {
    throw new InputError(outputDir, undefined, "output_dir", "already holds a training run; set overwrite_output_dir: true or resume_from_checkpoint");
  }
  const rows = loadSftDatasets(job.dataset, locate(job.datasetDir, yamlDir), job.maxSamples);
  const { train, val } = splitTrainVal(rows, job.valSize, job.sft.seed);
  const template = getChatTemplate(job.template);
  const encTrain = encodeSftRows(train, template, opened.tokenizer, job.cutoffLen);
  const encVal = encodeSftRows(val, template, opened.tokenizer, job.cutoffLen);
  const truncated = encTrain.truncated.length + encVal.truncated.length;
  if (truncated) {
    const worst = Math.max(...[...encTrain.truncated, ...encVal.truncated].map((t) => t.fullLength));
    print(`warning: ${truncated} of ${rows.length} rows are longer than cutoff_len ${job.cutoffLen} (longest ${worst} tokens) and were truncated as LLaMA-Factory truncates them`);
  }
  const empty = encTrain.empty.length + encVal.empty.length;
  if (empty) print(`warning: ${empty} rows have no response token left after truncation and are skipped`);
  print(`data: ${encTrain.examples.length} training and ${encVal.examples.length} validation rows from ${job.dataset}; template ${job.template}; cutoff_len ${job.cutoffLen}`);
  const trainer = new SftTrainer({
    model,
    train: encTrain.examples,
    val: encVal.examples,
    config: job.sft,
    outputDir,
    baseModelName: job.modelPath,
    padId: opened.tokenizer.eosId,
    resumeFrom: job.resumeFromCheckpoint === true ? true : job.resumeFromCheckpoint ? locate(job.resumeFromCheckpoint, yamlDir) : undefined,
  });
  if (trainer.step > 0) print(`resumed at step ${trainer.step} of ${trainer.totalSteps}`);
  print(`LoRA r=${job.sft.lora.rank} alpha=${job.sft.lora.alpha} on ${job.sft.lora.targets.join(",")}: ${trainer.adapter.parameterCount} trainable parameters; ${trainer.totalSteps} steps`);
  let interrupted = false;
  const stop = (): void => {
    interrupted = true;
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    for await (const s of trainer.steps()) {
      if (s.step % job.sft.loggingSteps === 0 || s.step === s.totalSteps || s.evalLoss !== undefined) print(fmt(s));
      if (interrupted) break;
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  if (interrupted) {
    const dir = await trainer.saveCheckpoint();
    print(`interrupted after step ${trainer.step}; checkpoint ${dir}; continue with resume_from_checkpoint: true`);
  } else {
    await trainer.saveAdapter(outputDir);
    print(`adapter written to ${outputDir} (adapter_model.safetensors, adapter_config.json); log in trainer_log.jsonl`);
  }
  return { trainer, interrupted };
}

export const commands: Command[] = [
  defineCommand({
    name: "train",
    summary: "LoRA SFT in-process (TF.js) from a LLaMA-Factory training YAML",
    help: [
      "  --config FILE.yaml  LLaMA-Factory keys: model_name_or_path (llama2.c .bin or HF folder), dataset,",
      "                      dataset_dir, template, finetuning_type: lora, lora_target, lora_rank, lora_alpha,",
      "                      learning_rate, num_train_epochs, per_device_train_batch_size,",
      "                      gradient_accumulation_steps, lr_scheduler_type, warmup_ratio, cutoff_len,",
      "                      max_samples, val_size, output_dir, logging_steps, save_steps, seed, ...",
      "  key=value ...       override YAML keys, as llamafactory-cli accepts them",
      "  KTU_ENGINE=native|wasm|cpu|tensorflow|tensorflow-gpu forces an engine (first line of output names it)",
    ].join("\n"),
    options: { config: { type: "string" } },
    allowPositionals: true,
    async run(values, positionals) {
      const file = requireString(values, "config", "train");
      const job = readTrainYaml(file, positionals);
      const { trainer, interrupted } = await runTrainJob(job, dirname(resolve(file)));
      trainer.dispose();
      return interrupted ? 130 : 0;
    },
  }),
];
