import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataPath } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";
import { tinyRows } from "./helpers/tiny-sft.ts";

function workspace(extraYaml = ""): string {
  const dir = mkdtempSync(join(tmpdir(), "ktu-train-cli-"));
  const rows = [...tinyRows.slice(0, 5), { instruction: "Once upon a time ".repeat(8), input: "", output: "Sufficient" }];
  writeFileSync(join(dir, "tiny.json"), JSON.stringify(rows));
  writeFileSync(join(dir, "dataset_info.json"), JSON.stringify({ tiny_stage1: { file_name: "tiny.json", columns: { prompt: "instruction", query: "input", response: "output" } } }));
  writeFileSync(
    join(dir, "train.yaml"),
    [
      `model_name_or_path: ${dataPath("models/stories260K/stories260K.bin")}`,
      "stage: sft", "do_train: true", "finetuning_type: lora", "lora_target: q_proj,v_proj", "lora_rank: 4",
      "dataset: tiny_stage1", "dataset_dir: .", "template: llama2", "cutoff_len: 40", "max_samples: 6", "val_size: 0.2",
      "output_dir: out", "logging_steps: 1", "save_steps: 2", "per_device_train_batch_size: 2", "gradient_accumulation_steps: 1",
      "learning_rate: 5.0e-3", "num_train_epochs: 2.0", "lr_scheduler_type: cosine", "warmup_ratio: 0.1",
      "bf16: true", "preprocessing_num_workers: 16", "ddp_timeout: 180000000", "report_to: none", "plot_loss: true", "overwrite_output_dir: true",
      extraYaml,
    ].join("\n"),
  );
  return dir;
}

test("ktu train --config runs a LLaMA-Factory YAML: notes, progress, trainer_log.jsonl, adapter, checkpoints", () => {
  const dir = workspace();
  const r = runKtu(["train", "--config", "train.yaml"], { cwd: dir });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /note: bf16: accepted and ignored/);
  assert.match(r.stdout, /note: preprocessing_num_workers: accepted and ignored/);
  assert.match(r.stdout, /^engine: (native|wasm|tensorflow|tensorflow-gpu|cpu)\b/m, "the run names its engine");
  assert.match(r.stdout, /warning: [1-6] of 6 rows are longer than cutoff_len 40 \(longest \d+ tokens\) and were truncated/);
  assert.match(r.stdout, /step 4\/4  loss \d+\.\d{4}/);
  const log = readFileSync(join(dir, "out", "trainer_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(log.filter((l) => "loss" in l).map((l) => l.current_steps), [1, 2, 3, 4]);
  assert.ok(existsSync(join(dir, "out", "checkpoint-2", "optimizer.safetensors")));
  assert.ok(existsSync(join(dir, "out", "adapter_model.safetensors")));
  assert.equal(JSON.parse(readFileSync(join(dir, "out", "adapter_config.json"), "utf8")).r, 4);
});

test("ktu train: bad input fails with one line naming file and field", () => {
  const typo = runKtu(["train", "--config", "train.yaml", "lora_rnak=4"], { cwd: workspace() });
  assert.equal(typo.status, 1);
  assert.match(typo.stderr, /^ktu: train\.yaml, field lora_rnak: is not a LLaMA-Factory training key; did you mean lora_rank\?\n$/);
  const packing = runKtu(["train", "--config", "train.yaml", "packing=true"], { cwd: workspace() });
  assert.match(packing.stderr, /field packing: true is not supported by in-process training/);
  const full = runKtu(["train", "--config", "train.yaml", "finetuning_type=full"], { cwd: workspace() });
  assert.match(full.stderr, /field finetuning_type: only lora/);
  const noData = runKtu(["train", "--config", "train.yaml", "dataset=missing_set"], { cwd: workspace() });
  assert.match(noData.stderr, /dataset_info\.json, record missing_set, field dataset/);
  const dir = workspace();
  mkdirSync(join(dir, "gptneox"));
  writeFileSync(join(dir, "gptneox", "config.json"), JSON.stringify({ architectures: ["GPTNeoXForCausalLM"], hidden_size: 8 }));
  const arch = runKtu(["train", "--config", "train.yaml", "model_name_or_path=gptneox"], { cwd: dir });
  assert.equal(arch.status, 1);
  assert.match(arch.stderr, /gptneox\/config\.json, field architectures: \["GPTNeoXForCausalLM"\] is not supported/);
  writeFileSync(join(dir, "cut.bin"), readFileSync(dataPath("models/stories260K/stories260K.bin")).subarray(0, 50_000));
  const cut = runKtu(["train", "--config", "train.yaml", "model_name_or_path=cut.bin"], { cwd: dir });
  assert.equal(cut.status, 1);
  assert.match(cut.stderr, /cut\.bin/);
  const noConfig = runKtu(["train"], { cwd: dir });
  assert.equal(noConfig.status, 2);
});

test("ktu train on a Hugging Face folder (config.json, safetensors, tokenizer.json)", async () => {
  const { initBackend } = await import("../src/model/backend.ts");
  const { saveHfModel } = await import("../src/model/hf.ts");
  const { gpt2TokenizerConfig, gpt2TokenizerJson } = await import("../src/model/hf-tokenizer.ts");
  const { Rng } = await import("../src/util/rng.ts");
  await initBackend("wasm");
  const dir = workspace();
  const rng = new Rng(3);
  const r = (n: number, s = 0.1) => Float32Array.from({ length: n }, () => rng.normal() * s);
  const V = 50257, d = 16, hidden = 32;
  await saveHfModel(join(dir, "tiny-llama"), {
    config: { arch: "llama", dim: d, hiddenDim: hidden, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: V, seqLen: 128, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "rotate-half", tiedEmbeddings: true },
    weights: (() => {
      const emb = r(V * d, 0.5);
      return { tokenEmbedding: emb, lmHead: emb, finalNorm: new Float32Array(d).fill(1), layers: [{ attnNorm: new Float32Array(d).fill(1), ffnNorm: new Float32Array(d).fill(1), wq: r(d * d), wk: r(8 * d), wv: r(8 * d), wo: r(d * d), w1: r(hidden * d), w2: r(d * hidden), w3: r(hidden * d) }] };
    })(),
  });
  writeFileSync(join(dir, "tiny-llama", "tokenizer.json"), JSON.stringify(gpt2TokenizerJson()));
  writeFileSync(join(dir, "tiny-llama", "tokenizer_config.json"), JSON.stringify(gpt2TokenizerConfig));
  const res = runKtu(["train", "--config", "train.yaml", "model_name_or_path=tiny-llama", "template=default", "num_train_epochs=1", "cutoff_len=64"], { cwd: dir });
  assert.equal(res.status, 0, res.stderr + res.stdout);
  assert.match(res.stdout, /step 2\/2  loss/);
  assert.ok(existsSync(join(dir, "out", "adapter_model.safetensors")));
});

test("ktu train: Ctrl-C stops between steps, saves a checkpoint, and resume_from_checkpoint continues", async () => {
  const { spawn } = await import("node:child_process");
  const { repoRoot } = await import("../src/util/paths.ts");
  const dir = workspace();
  const code = await new Promise<{ status: number | null; out: string }>((resolve) => {
    const proc = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), "train", "--config", "train.yaml", "num_train_epochs=20"], { cwd: dir });
    let out = "";
    let sent = false;
    proc.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (!sent && /step 2\/40/.test(out)) {
        sent = true;
        proc.kill("SIGINT");
      }
    });
    proc.on("exit", (status) => resolve({ status, out }));
  });
  assert.equal(code.status, 130, code.out);
  const stopped = Number(/interrupted after step (\d+); checkpoint/.exec(code.out)?.[1]);
  assert.ok(stopped >= 2 && stopped < 40, code.out);
  assert.ok(existsSync(join(dir, "out", `checkpoint-${stopped}`, "trainer_state.json")));
  const resumed = runKtu(["train", "--config", "train.yaml", "num_train_epochs=20", "resume_from_checkpoint=true", "max_steps=" + (stopped + 2)], { cwd: dir });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, new RegExp(`resumed at step ${stopped} of ${stopped + 2}`));
});
