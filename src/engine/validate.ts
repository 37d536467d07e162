import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { InputError } from "../util/errors.ts";
import { lfKeys, shippedLfKeys, suggestKey, type LfCommand, type LfKeySet } from "./keys.ts";
import { moduleLeafNames, moduleMatches, readModelModules } from "./model-modules.ts";

/** A LLaMA-Factory YAML as read: its own snake_case keys, any values. */
export type LfConfigRecord = Record<string, unknown>;

export interface LfProblem {
  readonly key: string;
  readonly message: string;
}

/** Every problem found in one config, each naming the file and the key. */
export class LfConfigError extends Error {
  override name = "LfConfigError";
  constructor(
    readonly file: string,
    readonly problems: readonly LfProblem[],
  ) {
    super(problems.map((p) => new InputError(file, undefined, p.key, p.message).message).join("\n"));
  }
}

export interface LfValidateOptions {
  /** Which llamafactory-cli command will read it: the accepted keys differ. Default "train". */
  command?: LfCommand;
  /** File name used in messages. */
  file?: string;
  /** LLaMA-Factory resolves relative paths against its working directory; default process.cwd(). */
  cwd?: string;
  /** Overrides the config's dataset_dir (where dataset_info.json lives). */
  datasetDir?: string;
  /**
   * The accepted keys: default those of the installed llamafactory-cli behind `cli` (read from it at
   * run time), else the shipped list.
   */
  keys?: LfKeySet;
  /** The llamafactory-cli whose keys are read (default $KTU_LLAMAFACTORY_CLI or llamafactory-cli). */
  cli?: string | readonly string[];
}

/** Files that mark a finished training run in output_dir (LLaMA-Factory's CHECKPOINT_NAMES and the Trainer's end-of-run files). */
export const LF_FINISHED_RUN_FILES = [
  "adapter_model.safetensors",
  "adapter_model.bin",
  "model.safetensors",
  "model.safetensors.index.json",
  "pytorch_model.bin",
  "pytorch_model.bin.index.json",
  "all_results.json",
  "train_results.json",
  "trainer_state.json",
] as const;

export function readLfConfigFile(file: string): LfConfigRecord {
  let value: unknown;
  try {
    value = parseYaml(readFileSync(file, "utf8"));
  } catch (error) {
    throw new InputError(file, undefined, undefined, `not readable YAML: ${(error as Error).message}`, { cause: error });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new InputError(file, undefined, undefined, "expected a mapping of LLaMA-Factory keys");
  return value as LfConfigRecord;
}

/** "a, b" or ["a", "b"] -> ["a", "b"], as LLaMA-Factory's split_arg does. */
export const splitList = (value: unknown): string[] =>
  Array.isArray(value) ? value.map(String) : typeof value === "string" ? value.split(",").map((s) => s.trim()).filter((s) => s !== "") : [];

const truthy = (value: unknown): boolean => value === true || value === "true" || value === "True";

function checkDatasets(config: LfConfigRecord, options: LfValidateOptions, base: string, problems: LfProblem[]): void {
  const names = [...splitList(config.dataset).map((n) => ["dataset", n] as const), ...splitList(config.eval_dataset).map((n) => ["eval_dataset", n] as const)];
  if (names.length === 0) return;
  const dir = options.datasetDir ?? (typeof config.dataset_dir === "string" ? config.dataset_dir : "data");
  if (dir === "ONLINE") return; // LLaMA-Factory then loads every name from the hub
  const datasetDir = isAbsolute(dir) ? dir : resolve(base, dir);
  const infoPath = join(datasetDir, "dataset_info.json");
  if (!existsSync(infoPath)) {
    problems.push({ key: "dataset_dir", message: `${infoPath} does not exist, so dataset ${names.map(([, n]) => JSON.stringify(n)).join(", ")} cannot be found` });
    return;
  }
  let info: Record<string, { file_name?: string; hf_hub_url?: string; ms_hub_url?: string; script_url?: string }>;
  try {
    info = JSON.parse(readFileSync(infoPath, "utf8"));
  } catch (error) {
    problems.push({ key: "dataset_dir", message: `${infoPath} is not valid JSON: ${(error as Error).message}` });
    return;
  }
  for (const [key, name] of names) {
    const entry = info[name];
    if (!entry) {
      const known = Object.keys(info);
      problems.push({ key, message: `dataset ${JSON.stringify(name)} is not in ${infoPath} (it has: ${known.slice(0, 12).join(", ")}${known.length > 12 ? ", ..." : ""})` });
    } else if (entry.file_name && !entry.hf_hub_url && !entry.ms_hub_url && !entry.script_url && !existsSync(join(datasetDir, entry.file_name))) {
      problems.push({ key, message: `dataset ${JSON.stringify(name)} points to file_name ${entry.file_name}, but ${join(datasetDir, entry.file_name)} does not exist` });
    }
  }
}

function checkLoraTarget(config: LfConfigRecord, base: string, problems: LfProblem[]): void {
  if ((config.finetuning_type ?? "lora") !== "lora" || typeof config.model_name_or_path !== "string") return;
  const targets = splitList(config.lora_target ?? "all").filter((t) => t !== "all");
  if (targets.length === 0) return;
  const modelDir = isAbsolute(config.model_name_or_path) ? config.model_name_or_path : resolve(base, config.model_name_or_path);
  const modules = readModelModules(modelDir); // a hub id or a model not yet built: nothing to check
  if (!modules) return;
  const missing = targets.filter((t) => !moduleMatches(modules.paths, t));
  if (missing.length > 0) {
    problems.push({
      key: "lora_target",
      message: `the model at ${modelDir} has no module named ${missing.join(", ")} (read from ${modules.source}; its modules: ${moduleLeafNames(modules.paths).join(", ")})`,
    });
  }
}

function checkOutputDir(config: LfConfigRecord, base: string, problems: LfProblem[]): void {
  if (!truthy(config.do_train) || truthy(config.overwrite_output_dir) || config.resume_from_checkpoint) return;
  if (typeof config.output_dir !== "string") return;
  const dir = isAbsolute(config.output_dir) ? config.output_dir : resolve(base, config.output_dir);
  const found = LF_FINISHED_RUN_FILES.find((name) => existsSync(join(dir, name)));
  if (found) {
    problems.push({
      key: "output_dir",
      message: `${join(dir, found)} exists: ${dir} holds a finished run that this training would overwrite; choose another output_dir or set overwrite_output_dir: true`,
    });
  }
}

/** Keys `llamafactory-cli <command>` would reject ("Some keys are not used by the HfArgumentParser"), each with a suggestion. */
export function checkLfKeys(config: LfConfigRecord, command: LfCommand = "train", keys: LfKeySet = shippedLfKeys()): LfProblem[] {
  const accepted = keys.commands[command];
  const where = keys.source.kind === "installed" ? ` (installed LLaMA-Factory ${keys.source.version}, transformers ${keys.source.transformers})` : "";
  return Object.keys(config)
    .filter((key) => !accepted.has(key))
    .map((key) => {
      const suggestion = suggestKey(key, command, keys);
      return { key, message: `unknown key for llamafactory-cli ${command}${where}${suggestion ? `; did you mean ${suggestion}?` : ""}` };
    });
}

/** LLaMA-Factory's ModelArguments.export_device: Literal["cpu", "auto"]. */
export const LF_EXPORT_DEVICES = ["cpu", "auto"] as const;

/** Every problem with `config`, without throwing; an empty list means it may be launched. */
export function checkLfConfig(config: LfConfigRecord, options: LfValidateOptions = {}): LfProblem[] {
  const command = options.command ?? "train";
  const base = options.cwd ?? process.cwd();
  const keys = options.keys ?? lfKeys(options.cli);
  const problems = checkLfKeys(config, command, keys);
  if (config.export_device !== undefined && !(LF_EXPORT_DEVICES as readonly unknown[]).includes(config.export_device)) {
    problems.push({ key: "export_device", message: `must be one of ${LF_EXPORT_DEVICES.join(", ")} (LLaMA-Factory's choices), got ${JSON.stringify(config.export_device)}` });
  }
  const required = command === "train" ? ["model_name_or_path", "output_dir"] : ["model_name_or_path", "export_dir"];
  if (command === "train" && truthy(config.do_train)) required.push("dataset");
  for (const key of required) if (config[key] === undefined || config[key] === null || config[key] === "") problems.push({ key, message: `required for llamafactory-cli ${command}` });
  if (typeof config.deepspeed === "string" && !config.deepspeed.trimStart().startsWith("{")) {
    const path = isAbsolute(config.deepspeed) ? config.deepspeed : resolve(base, config.deepspeed);
    if (!existsSync(path)) problems.push({ key: "deepspeed", message: `DeepSpeed config ${path} does not exist` });
  }
  for (const adapter of splitList(config.adapter_name_or_path)) {
    // An absolute path or an existing folder is local (anything else may be a hub id): it must hold an adapter.
    const path = isAbsolute(adapter) ? adapter : resolve(base, adapter);
    if ((isAbsolute(adapter) || existsSync(path)) && !existsSync(join(path, "adapter_config.json"))) {
      problems.push({ key: "adapter_name_or_path", message: `${path} is not a LoRA adapter folder (no adapter_config.json${existsSync(path) ? "" : "; the folder does not exist"})` });
    }
  }
  if (command === "train") {
    checkDatasets(config, options, base, problems);
    checkOutputDir(config, base, problems);
  }
  checkLoraTarget(config, base, problems);
  return problems;
}

/** Notes on keys that still work but are deprecated upstream (e.g. warmup_ratio in transformers 5.x). */
export const lfConfigWarnings = (config: LfConfigRecord, keys: LfKeySet = shippedLfKeys()): LfProblem[] =>
  Object.keys(config).flatMap((key) => {
    const note = keys.deprecated[key];
    return note ? [{ key, message: note }] : [];
  });

/** Throws an LfConfigError listing every problem, or returns the config unchanged. */
export function validateLfConfig(config: LfConfigRecord, options: LfValidateOptions = {}): LfConfigRecord {
  const problems = checkLfConfig(config, options);
  if (problems.length > 0) throw new LfConfigError(options.file ?? "<config>", problems);
  return config;
}
