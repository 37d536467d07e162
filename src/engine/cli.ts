import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { paperMergeConfigs, paperTrainConfigs, toYaml, type LlamaFactoryPreset } from "../data/llamafactory.ts";
import { defineCommand, optionalChoice, optionalNumber, requireString, type Command, type OptionValues } from "../util/command.ts";
import { UsageError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { isHubSpec, parseHubSpec } from "../model/hub.ts";
import { lfKeys, type LfCommand, type LfKeySet } from "./keys.ts";
import { launchLlamaFactory, type LfJob, type LfLaunchOptions } from "./launch.ts";
import { LF_ABLATIONS, runLfPipeline, type LfAblation } from "./pipeline.ts";
import { lfProgress } from "./views.ts";
import { checkLfKeys, LfConfigError, lfConfigWarnings, readLfConfigFile, validateLfConfig } from "./validate.ts";
import type { ZeroStage } from "./deepspeed.ts";

/** `ktu lf config --preset NAME` -> the authors' config name (paperTrainConfigs / paperMergeConfigs keys). */
export const LF_PRESETS: Record<string, { kind: "train" | "merge"; config: string }> = {
  stage1: { kind: "train", config: "Llama2_Stage1" },
  "merge-stage1": { kind: "merge", config: "Llama2_Stage1_merge" },
  stage2: { kind: "train", config: "Llama2_Stage1_Stage2" },
  "merge-stage2": { kind: "merge", config: "Llama2_Stage1_Stage2_merge" },
  "stage1-qa": { kind: "train", config: "Llama2_Stage1_QA" },
  "stage2-only": { kind: "train", config: "Llama2_Stage2" },
  "qa-only": { kind: "train", config: "Llama2_QA" },
  "mixture-psqa": { kind: "train", config: "Llama2_Cognition_PSQA_Mixture" },
  "mixture-qa": { kind: "train", config: "Llama2_Cognition_QA_Mixture" },
};

const launchOptions = {
  gpus: { type: "string" },
  nproc: { type: "string" },
  nnodes: { type: "string" },
  "node-rank": { type: "string" },
  "master-addr": { type: "string" },
  "master-port": { type: "string" },
  deepspeed: { type: "string" },
  cli: { type: "string" },
} as const;

const launchHelp = `  --gpus LIST           CUDA_VISIBLE_DEVICES, e.g. 0 or 0,1,2,3
  --nproc N             processes per node (NPROC_PER_NODE; default: one per GPU); >1 runs torchrun
  --nnodes N            nodes (NNODES); with --node-rank R, --master-addr HOST, --master-port P
  --deepspeed 0|2|3     write a ZeRO config into output_dir and train with it (FORCE_TORCHRUN=1)
  --cli CMD             the llamafactory-cli to run (default $KTU_LLAMAFACTORY_CLI or llamafactory-cli)
`;

function readLaunchOptions(values: OptionValues, name: string): LfLaunchOptions {
  const stage = optionalChoice(values, "deepspeed", ["0", "2", "3"] as const, name);
  return {
    gpus: typeof values.gpus === "string" ? values.gpus : undefined,
    nprocPerNode: optionalNumber(values, "nproc", name),
    nnodes: optionalNumber(values, "nnodes", name),
    nodeRank: optionalNumber(values, "node-rank", name),
    masterAddr: typeof values["master-addr"] === "string" ? values["master-addr"] : undefined,
    masterPort: optionalNumber(values, "master-port", name),
    deepspeed: stage === undefined ? undefined : (Number(stage) as ZeroStage),
    cli: typeof values.cli === "string" ? values.cli : undefined,
  };
}

/** Runs a job to its end printing a progress line per trainer_log record; Ctrl-C interrupts it cleanly. */
async function followJob(job: LfJob): Promise<number> {
  process.stderr.write(`ktu: started ${job.argv.join(" ")} (pid ${job.pid}); output in ${job.logPath}\n`);
  const onSigint = () => {
    process.stderr.write("ktu: interrupting (SIGINT to the engine's process group; SIGTERM in 10 s)\n");
    void job.interrupt();
  };
  process.on("SIGINT", onSigint);
  try {
    for await (const record of job.logs()) process.stdout.write(`${lfProgress(record).line}\n`);
    const result = await job.wait();
    process.stderr.write(`ktu: ${job.name} ${result.status}\n`);
    return result.status === "interrupted" ? 130 : 0;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

function positionalFile(positionals: string[], name: string): string {
  if (positionals.length !== 1) throw new UsageError(`ktu ${name}: expected one FILE.yaml, got ${positionals.length} arguments`);
  const file = resolve(positionals[0]!);
  if (!existsSync(file)) throw new UsageError(`ktu ${name}: ${file} does not exist`);
  return file;
}

/**
 * key=value pairs from repeated --set, values read as YAML scalars as LLaMA-Factory's OmegaConf does;
 * `--set KEY=null` and `--unset KEY` give null, which removes the key from the YAML written.
 */
function readSets(values: OptionValues, name: string): Record<string, unknown> {
  const sets = (values.set as string[] | undefined) ?? [];
  const unsets = (values.unset as string[] | undefined) ?? [];
  const out: Record<string, unknown> = Object.fromEntries(
    sets.map((pair) => {
      const eq = pair.indexOf("=");
      if (eq < 1) throw new UsageError(`ktu ${name}: --set expects key=value, got ${JSON.stringify(pair)}`);
      return [pair.slice(0, eq), parseYaml(pair.slice(eq + 1)) as unknown];
    }),
  );
  for (const key of unsets) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key)) throw new UsageError(`ktu ${name}: --unset expects a key name, got ${JSON.stringify(key)}`);
    out[key] = null;
  }
  return out;
}

/**
 * `--model hf:ORG/NAME[@REV]` in a config: LLaMA-Factory's own hub id (model_name_or_path: ORG/NAME,
 * model_revision: REV), which it downloads into the same huggingface_hub cache; nothing is fetched here.
 */
function hubModelKeys(config: Record<string, unknown>): void {
  const model = config.model_name_or_path;
  if (typeof model !== "string" || !isHubSpec(model)) return;
  const { repo, revision } = parseHubSpec(model);
  const entries = Object.entries(config).flatMap(([k, v]) => (k === "model_name_or_path" ? [[k, repo], ...(revision !== "main" ? [["model_revision", revision]] : [])] : [[k, v]]));
  for (const key of Object.keys(config)) delete config[key];
  Object.assign(config, Object.fromEntries(entries));
}

/** Applies --set/--unset to a config: null removes the key. */
function applySets(config: Record<string, unknown>, sets: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(sets)) {
    if (value === null) delete config[key];
    else config[key] = value;
  }
  return config;
}

/** "keys of the installed LLaMA-Factory 0.9.6.dev0 (transformers 5.17.0)" or "shipped keys of ... @commit". */
const keySourceText = (keys: LfKeySet): string =>
  keys.source.kind === "installed"
    ? `keys of the installed LLaMA-Factory ${keys.source.version} with transformers ${keys.source.transformers}`
    : `shipped keys of LLaMA-Factory ${keys.source.version} @${keys.source.commit!.slice(0, 9)} with transformers ${keys.source.transformers}`;

const configCommand = defineCommand({
  name: "lf config",
  summary: "write one of the paper's LLaMA-Factory configs (paper.md 2.1) as YAML",
  help: `  --preset NAME         ${Object.keys(LF_PRESETS).join(", ")}
  --model PATH          the base model (llama-2-7b-chat-hf folder, ORG/NAME, or hf:ORG/NAME[@REV]: written as
                        LLaMA-Factory's hub id and model_revision; it downloads into the shared cache)
  --out FILE.yaml       where to write it
  --data DIR            dataset_dir holding dataset_info.json (default data)
  --output-root DIR     folder of the adapters and merged models (default saves)
  --template NAME       chat template (default llama2; mistral, llama3, gemma for the other bases)
  --hparams yaml|autodl the authors' YAML values (default) or their autodl.txt command lines
  --set KEY=VALUE       override a key (repeatable); KEY=null removes it
  --unset KEY           remove a key (repeatable)
  --stage2-merge-base paper|stage1-merged  base of the merge-stage2 preset (default paper: the vanilla model, as the authors)
  --cli CMD             the llamafactory-cli whose accepted keys (and warmup key) to follow (default $KTU_LLAMAFACTORY_CLI
                        or llamafactory-cli; the shipped key list when it is not installed)
`,
  options: {
    unset: { type: "string", multiple: true },
    "stage2-merge-base": { type: "string" },
    cli: { type: "string" },
    preset: { type: "string" },
    model: { type: "string" },
    out: { type: "string" },
    data: { type: "string" },
    "output-root": { type: "string" },
    template: { type: "string" },
    hparams: { type: "string" },
    set: { type: "string", multiple: true },
  },
  async run(values) {
    const name = "lf config";
    const preset = optionalChoice(values, "preset", Object.keys(LF_PRESETS), name) ?? requireString(values, "preset", name);
    const modelPath = requireString(values, "model", name);
    const out = requireString(values, "out", name);
    const hparams = optionalChoice(values, "hparams", ["yaml", "autodl"] as const, name) as LlamaFactoryPreset | undefined;
    const common = { modelPath, outputRoot: typeof values["output-root"] === "string" ? values["output-root"] : "saves", template: values.template as string | undefined };
    const { kind, config: configName } = LF_PRESETS[preset]!;
    const keys = lfKeys(values.cli as string | undefined);
    const stage2MergeBase = optionalChoice(values, "stage2-merge-base", ["paper", "stage1-merged"] as const, name);
    const config: Record<string, unknown> =
      kind === "train"
        ? { ...paperTrainConfigs({ ...common, datasetDir: typeof values.data === "string" ? values.data : "data", preset: hparams, warmupKey: keys.warmup })[configName] }
        : { ...paperMergeConfigs({ ...common, stage2MergeBase })[configName] };
    hubModelKeys(config);
    applySets(config, readSets(values, name));
    // Catch typos in --set now; datasets and paths are checked by `ktu lf validate` where they live.
    const problems = checkLfKeys(config, kind === "train" ? "train" : "export", keys);
    if (problems.length > 0) throw new LfConfigError("--set", problems);
    await writeFileAtomic(resolve(out), toYaml(config));
    process.stderr.write(`ktu: wrote ${configName} to ${out}\n`);
  },
});

const commandOf = (config: Record<string, unknown>): LfCommand => (config.export_dir !== undefined && config.output_dir === undefined ? "export" : "train");

const validateCommand = defineCommand({
  name: "lf validate",
  summary: "check a LLaMA-Factory YAML before launch: keys, datasets, LoRA targets, output_dir",
  help: `  FILE.yaml             the config (positional)
  --dataset-dir DIR     where dataset_info.json is (default: the config's dataset_dir, relative to --cwd)
  --cwd DIR             the directory llamafactory-cli will run in (default: the current one)
  --command train|export  which command will read it (default: export if it has export_dir and no output_dir)
  --cli CMD             check against the keys this llamafactory-cli's Python accepts, read from it
                        (default $KTU_LLAMAFACTORY_CLI or llamafactory-cli; the shipped list when not installed)
`,
  options: { "dataset-dir": { type: "string" }, cwd: { type: "string" }, command: { type: "string" }, cli: { type: "string" } },
  allowPositionals: true,
  run(values, positionals) {
    const name = "lf validate";
    const file = positionalFile(positionals, name);
    const config = readLfConfigFile(file);
    const command = optionalChoice(values, "command", ["train", "export"] as const, name) ?? commandOf(config);
    const keys = lfKeys(values.cli as string | undefined);
    validateLfConfig(config, { command, file, cwd: typeof values.cwd === "string" ? resolve(values.cwd) : undefined, datasetDir: values["dataset-dir"] as string | undefined, keys });
    for (const warning of lfConfigWarnings(config, keys)) process.stderr.write(`ktu: note: ${file}, field ${warning.key}: ${warning.message}\n`);
    process.stdout.write(`ok: ${file} (${Object.keys(config).length} keys for llamafactory-cli ${command}; ${keySourceText(keys)})\n`);
  },
});

const trainCommand = defineCommand({
  name: "lf train",
  summary: "launch llamafactory-cli train on a YAML and follow its progress (Ctrl-C stops it cleanly)",
  help: `  FILE.yaml             the config (positional)
${launchHelp}  --resume              continue from output_dir's latest checkpoint-N
  --dataset-dir DIR     where dataset_info.json is, for validation
`,
  options: { ...launchOptions, resume: { type: "boolean" }, "dataset-dir": { type: "string" } },
  allowPositionals: true,
  async run(values, positionals) {
    const name = "lf train";
    const file = positionalFile(positionals, name);
    const job = await launchLlamaFactory(file, { ...readLaunchOptions(values, name), resume: values.resume === true, datasetDir: values["dataset-dir"] as string | undefined });
    return followJob(job);
  },
});

const exportCommand = defineCommand({
  name: "lf export",
  summary: "run llamafactory-cli export (merge a LoRA adapter into its base) on a YAML",
  help: `  FILE.yaml             the merge config (positional)\n  --cli CMD             the llamafactory-cli to run\n`,
  options: { cli: { type: "string" } },
  allowPositionals: true,
  async run(values, positionals) {
    const file = positionalFile(positionals, "lf export");
    return followJob(await launchLlamaFactory(file, { cli: values.cli as string | undefined }, "export"));
  },
});

const pipelineCommand = defineCommand({
  name: "lf pipeline",
  summary: "US-Tuning on LLaMA-Factory: stage 1, merge, stage 2 on the merge, merge; completed steps are skipped",
  help: `  --model PATH          the base model folder, or hf:ORG/NAME[@REV] (downloaded into the huggingface_hub cache first)
  --data DIR            dataset_dir with dataset_info.json and the Alpaca files ('ktu data export' writes it)
  --out DIR             configs/ and one folder per adapter and merged model
  --template NAME       chat template (default llama2)
  --hparams yaml|autodl the authors' YAML values (default) or autodl.txt
  --ablations LIST      also run: all, or some of ${LF_ABLATIONS.join(", ")}
  --set KEY=VALUE       override a key of every training config (repeatable), e.g. max_samples=200; KEY=null removes it
  --unset KEY           remove a key from every training config (repeatable)
  --stage2-merge-base paper|stage1-merged  base of the final merge: the vanilla model (paper, default, as the
                        authors' YAML) or the stage-1 merge that stage 2 was trained on
${launchHelp}`,
  options: {
    unset: { type: "string", multiple: true },
    "stage2-merge-base": { type: "string" },
    model: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    template: { type: "string" },
    hparams: { type: "string" },
    ablations: { type: "string" },
    set: { type: "string", multiple: true },
    ...launchOptions,
  },
  async run(values) {
    const name = "lf pipeline";
    const ablationText = typeof values.ablations === "string" ? values.ablations : "";
    const ablations = ablationText === "all" ? [...LF_ABLATIONS] : ablationText.split(",").map((s) => s.trim()).filter(Boolean);
    for (const a of ablations) if (!(LF_ABLATIONS as readonly string[]).includes(a)) throw new UsageError(`ktu ${name}: unknown ablation ${JSON.stringify(a)}; one of ${LF_ABLATIONS.join(", ")}`);
    const controller = new AbortController();
    const onSigint = () => {
      process.stderr.write("ktu: interrupting the running step\n");
      controller.abort();
    };
    process.on("SIGINT", onSigint);
    try {
      const result = await runLfPipeline({
        ...readLaunchOptions(values, name),
        modelPath: requireString(values, "model", name),
        datasetDir: requireString(values, "data", name),
        outDir: requireString(values, "out", name),
        template: values.template as string | undefined,
        preset: optionalChoice(values, "hparams", ["yaml", "autodl"] as const, name),
        trainOverrides: readSets(values, name),
        stage2MergeBase: optionalChoice(values, "stage2-merge-base", ["paper", "stage1-merged"] as const, name),
        ablations: ablations as LfAblation[],
        signal: controller.signal,
        onStep(event) {
          if (event.type === "skipped") process.stderr.write(`ktu: ${event.step.name}: already complete in ${event.step.output}, skipped\n`);
          else if (event.type === "started") {
            process.stderr.write(`ktu: ${event.step.name}: ${event.resumed ? "resuming" : "starting"} (log ${event.job.logPath})\n`);
            void (async () => {
              for await (const record of event.job.logs()) process.stdout.write(`${event.step.name} ${lfProgress(record).line}\n`);
            })();
          } else process.stderr.write(`ktu: ${event.step.name}: ${event.result.status}\n`);
        },
      });
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return result.status === "interrupted" ? 130 : 0;
    } finally {
      process.off("SIGINT", onSigint);
    }
  },
});

export const commands: Command[] = [configCommand, validateCommand, trainCommand, exportCommand, pipelineCommand];
