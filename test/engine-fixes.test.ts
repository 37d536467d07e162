import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { paperTrainConfigs } from "../src/data/llamafactory.ts";
import { installedLfKeys, lfKeys, lfPython, shippedLfKeys } from "../src/engine/keys.ts";
import { lfEngineLogPath } from "../src/engine/launch.ts";
import { lfPipelineSteps } from "../src/engine/pipeline.ts";
import { checkLfConfig, checkLfKeys } from "../src/engine/validate.ts";
import { repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const fakeCli = join(repoRoot, "test", "fixtures", "llamafactory", "llamafactory-cli.mjs");

test("issue 16 (1): the YAMLs use warmup_steps (transformers >= 5.2 removed warmup_ratio); --set KEY=null and --unset remove a key", () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-fix-"));
  const shipped = shippedLfKeys();
  assert.equal(shipped.warmup, "warmup_steps");
  assert.ok(!shipped.commands.train.has("warmup_ratio"), "the shipped list follows transformers 5.x, which rejects warmup_ratio");
  const stage1 = paperTrainConfigs({ modelPath: "m", datasetDir: "d", outputRoot: "o" }).Llama2_Stage1!;
  assert.equal(stage1.warmup_steps, 0.1);
  assert.deepEqual(checkLfKeys(stage1 as unknown as Record<string, unknown>), []);
  const problem = checkLfKeys({ warmup_ratio: 0.1 })[0]!;
  assert.match(problem.message, /unknown key for llamafactory-cli train; did you mean warmup_steps \(a float in \[0, 1\) is the ratio\)\?/);
  // transformers 4.x: warmup_ratio, by the installed engine's answer.
  const old = paperTrainConfigs({ modelPath: "m", datasetDir: "d", outputRoot: "o", warmupKey: "warmup_ratio" }).Llama2_Stage1!;
  assert.equal(old.warmup_ratio, 0.1);
  assert.equal(old.warmup_steps, undefined);

  const out = join(dir, "s1.yaml");
  const env = { KTU_LF_KEYS: "shipped" };
  const r = runKtu(["lf", "config", "--preset", "stage1", "--model", "/m", "--out", out, "--set", "warmup_steps=null", "--unset", "val_size", "--set", "seed=7"], { env });
  assert.equal(r.status, 0, r.stderr);
  const written = parseYaml(readFileSync(out, "utf8")) as Record<string, unknown>;
  assert.ok(!("warmup_steps" in written) && !("val_size" in written), "null and --unset remove keys, not write null");
  assert.equal(written.seed, 7);
  assert.doesNotMatch(readFileSync(out, "utf8"), /null/);
  const bad = runKtu(["lf", "config", "--preset", "stage1", "--model", "/m", "--out", out, "--set", "warmup_ratio=0.1"], { env });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--set, field warmup_ratio: unknown key .*did you mean warmup_steps/);
});

test("issue 16 (3, 4, 5): merges write export_device auto; the pipeline takes --stage2-merge-base; the engine log stays out of an export folder", () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-fix-"));
  const out = join(dir, "m.yaml");
  assert.equal(runKtu(["lf", "config", "--preset", "merge-stage2", "--model", "/m", "--out", out, "--stage2-merge-base", "stage1-merged", "--output-root", "runs"]).status, 0);
  const merge = parseYaml(readFileSync(out, "utf8")) as Record<string, unknown>;
  assert.equal(merge.export_device, "auto");
  assert.equal(merge.model_name_or_path, "runs/TrustworthyLLM_Cognition_Finetuning_Model_0_Merged");
  const problems = checkLfConfig({ ...merge, export_device: "cuda", adapter_name_or_path: undefined }, { command: "export", keys: shippedLfKeys() });
  assert.deepEqual(problems.map((p) => p.key), ["export_device"]);
  assert.match(problems[0]!.message, /must be one of cpu, auto .*got "cuda"/);

  const steps = lfPipelineSteps({ modelPath: "/base", datasetDir: dir, outDir: join(dir, "runs"), stage2MergeBase: "stage1-merged", cli: fakeCli });
  assert.equal(steps[3]!.config.model_name_or_path, steps[1]!.output);
  assert.equal(lfPipelineSteps({ modelPath: "/base", datasetDir: dir, outDir: join(dir, "runs"), cli: fakeCli })[3]!.config.model_name_or_path, "/base");

  // The CLI: --stage2-merge-base reaches the final merge, and no ktu file lands inside a merged model.
  const data = join(dir, "data");
  mkdirSync(data);
  const names = ["TrustworthyLLM_Cognition_Finetuning_Dataset", "TrustworthyLLM_PromptSensitive_Finetuning_Dataset"];
  for (const name of names) writeFileSync(join(data, `${name}.json`), JSON.stringify(Array.from({ length: 8 }, (_, i) => ({ instruction: `${i}`, input: "", output: "x" }))));
  writeFileSync(join(data, "dataset_info.json"), JSON.stringify(Object.fromEntries(names.map((n) => [n, { file_name: `${n}.json` }]))));
  const runs = join(dir, "runs");
  const r = runKtu(["lf", "pipeline", "--model", join(dir, "base"), "--data", data, "--out", runs, "--stage2-merge-base", "stage1-merged", "--unset", "val_size", "--set", "logging_steps=1"], {
    cwd: dir,
    env: { KTU_LLAMAFACTORY_CLI: fakeCli, FAKE_LF_STEP_MS: "1" },
  });
  assert.equal(r.status, 0, r.stderr);
  const finalMerge = parseYaml(readFileSync(join(runs, "configs", "Llama2_Stage1_Stage2_merge.yaml"), "utf8")) as Record<string, unknown>;
  assert.equal(finalMerge.model_name_or_path, join(runs, "TrustworthyLLM_Cognition_Finetuning_Model_0_Merged"));
  const stage1 = parseYaml(readFileSync(join(runs, "configs", "Llama2_Stage1.yaml"), "utf8")) as Record<string, unknown>;
  assert.ok(!("val_size" in stage1));
  const merged = join(runs, "TrustworthyLLM_Cognition_Finetuning_Model_0_Merged");
  assert.ok(!readdirSync(merged).some((f) => f.startsWith("ktu-engine") || f.endsWith(".yaml")), readdirSync(merged).join(", "));
  assert.ok(existsSync(lfEngineLogPath("export", merged)));
  assert.equal(lfEngineLogPath("export", merged), `${merged}.ktu-engine.log`);
});

test("validation reads the accepted keys from the installed llamafactory-cli's Python, and falls back to the shipped list", () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-keys-"));
  // A stand-in Python that answers introspect.py as an installation with transformers 4.x would.
  const bin = join(dir, "venv", "bin");
  mkdirSync(bin, { recursive: true });
  mkdirSync(join(dir, "venv", "lib"));
  const python = join(bin, "python3");
  const answer = {
    llamafactory: "0.9.3",
    transformers: "4.55.0",
    train: ["ModelArguments", "TrainingArguments"],
    export: ["ModelArguments"],
    groups: { ModelArguments: ["model_name_or_path", "template", "export_dir"], TrainingArguments: ["output_dir", "warmup_ratio", "warmup_steps"] },
    warmup_steps_type: "int",
    warmup_ratio: true,
  };
  writeFileSync(python, `#!/bin/sh\necho '[WARNING] a log line first'\necho '${JSON.stringify(answer)}'\n`);
  chmodSync(python, 0o755);
  const cli = join(bin, "llamafactory-cli");
  writeFileSync(cli, `#!${python}\n# console script\n`);
  chmodSync(cli, 0o755);
  assert.equal(lfPython([cli]), python);
  assert.equal(lfPython([fakeCli]), undefined, "the node test double is not a Python install");
  const keys = installedLfKeys([cli])!;
  assert.equal(keys.source.kind, "installed");
  assert.equal(keys.source.transformers, "4.55.0");
  assert.equal(keys.warmup, "warmup_ratio");
  assert.deepEqual([...keys.commands.train].sort(), ["export_dir", "model_name_or_path", "output_dir", "template", "warmup_ratio", "warmup_steps"]);
  assert.equal(lfKeys(cli).source.kind, "installed");
  assert.equal(lfKeys(fakeCli).source.kind, "shipped");
  const problems = checkLfConfig({ model_name_or_path: "m", output_dir: "o", lora_rank: 8 }, { cli });
  assert.deepEqual(problems.map((p) => p.key), ["lora_rank"]);
  assert.match(problems[0]!.message, /installed LLaMA-Factory 0\.9\.3, transformers 4\.55\.0/);
  const steps = lfPipelineSteps({ modelPath: "/base", datasetDir: dir, outDir: join(dir, "runs"), cli });
  assert.equal(steps[0]!.config.warmup_ratio, 0.1);
  const validate = runKtu(["lf", "validate", "--cli", cli, "--command", "export", writeYaml(dir, { model_name_or_path: "m", export_dir: "e" })]);
  assert.equal(validate.status, 0, validate.stderr);
  assert.match(validate.stdout, /keys of the installed LLaMA-Factory 0\.9\.3 with transformers 4\.55\.0/);
  process.env.KTU_LF_KEYS = "shipped";
  try {
    assert.equal(lfKeys(cli).source.kind, "shipped");
  } finally {
    delete process.env.KTU_LF_KEYS;
  }
});

function writeYaml(dir: string, config: Record<string, unknown>): string {
  const file = join(dir, "c.yaml");
  writeFileSync(file, Object.entries(config).map(([k, v]) => `${k}: ${v}`).join("\n") + "\n");
  return file;
}
