import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { datasetInfo, DATASET_NAMES, MODEL_NAMES } from "../src/data/llamafactory.ts";
import { lfJobs } from "../src/engine/launch.ts";
import { lfPipelineSteps, runLfPipeline, LF_STEP_MARKER, type LfPipelineEvent } from "../src/engine/pipeline.ts";
import { repoRoot } from "../src/util/paths.ts";

const cli = [process.execPath, join(repoRoot, "test", "fixtures", "llamafactory", "llamafactory-cli.mjs")];

function workspace() {
  const dir = mkdtempSync(join(tmpdir(), "ktu-lf-pipeline-"));
  const data = join(dir, "data");
  mkdirSync(data);
  const names = Object.values(DATASET_NAMES);
  for (const name of names) writeFileSync(join(data, `${name}.json`), JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ instruction: `${name} ${i}`, input: "", output: "x" }))));
  writeFileSync(join(data, "dataset_info.json"), JSON.stringify(datasetInfo(names)));
  // A base model folder whose weights have the LoRA targets (q_proj, v_proj), so validation reads it.
  const model = join(dir, "base");
  mkdirSync(model);
  const header = Buffer.from(JSON.stringify({ "model.layers.0.self_attn.q_proj.weight": { dtype: "F32", shape: [0], data_offsets: [0, 0] }, "model.layers.0.self_attn.v_proj.weight": { dtype: "F32", shape: [0], data_offsets: [0, 0] } }));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(join(model, "model.safetensors"), Buffer.concat([length, header]));
  writeFileSync(join(model, "config.json"), JSON.stringify({ model_type: "llama" }));
  return { dir, data, model, out: join(dir, "runs") };
}

test("pipeline: stage 1, merge, stage 2 on the merge, merge; a re-run skips what is complete and resumes what is not", async () => {
  const { dir, data, model, out } = workspace();
  const base = { modelPath: model, datasetDir: data, outDir: out, cli, cwd: dir, pollMs: 20, trainOverrides: { logging_steps: 1, save_steps: 2 } };
  const steps = lfPipelineSteps({ ...base, ablations: ["Llama2_Stage1_QA"] });
  assert.deepEqual(steps.map((s) => s.name), ["Llama2_Stage1", "Llama2_Stage1_merge", "Llama2_Stage1_Stage2", "Llama2_Stage1_Stage2_merge", "Llama2_Stage1_QA"]);
  // Stage 2 trains on the stage-1 merge; the paper's final merge puts the stage-2 adapter on the vanilla base (paper.md 1.4).
  assert.equal(steps[2]!.config.model_name_or_path, join(out, MODEL_NAMES.stage1Merged));
  assert.equal(steps[3]!.config.model_name_or_path, model);
  assert.equal(steps[3]!.config.adapter_name_or_path, join(out, MODEL_NAMES.stage2));

  const events: string[] = [];
  const record = (e: LfPipelineEvent) => events.push(`${e.type} ${e.step.name}${e.type === "started" && e.resumed ? " (resumed)" : ""}`);
  const first = await runLfPipeline({ ...base, env: { FAKE_LF_STEP_MS: "2" }, onStep: record });
  assert.equal(first.status, "completed");
  assert.deepEqual(Object.values(first.steps), ["ran", "ran", "ran", "ran"]);
  assert.ok(existsSync(join(first.finalModel, "model.safetensors")));
  const merged = JSON.parse(readFileSync(join(out, MODEL_NAMES.stage1Merged, "tokenizer_config.json"), "utf8"));
  assert.equal(merged.merged_from.adapters, join(out, MODEL_NAMES.stage1));
  // 40 samples, 10% held out, batch 4 x accumulation 4: 2 steps per epoch; stage 2 runs 5 epochs.
  const stage2Log = readFileSync(join(out, MODEL_NAMES.stage2, "trainer_log.jsonl"), "utf8").trim().split("\n");
  assert.equal(JSON.parse(stage2Log.at(-1)!).total_steps, 10);

  const jobsBefore = lfJobs().length;
  events.length = 0;
  const again = await runLfPipeline({ ...base, onStep: record });
  assert.deepEqual(Object.values(again.steps), ["skipped", "skipped", "skipped", "skipped"]);
  assert.equal(lfJobs().length, jobsBefore, "nothing was launched");

  // Stage 2 is lost and then interrupted part-way; the re-run resumes it from its checkpoint.
  const stage2Dir = join(out, MODEL_NAMES.stage2);
  rmSync(stage2Dir, { recursive: true });
  const controller = new AbortController();
  events.length = 0;
  const interrupted = runLfPipeline({
    ...base,
    env: { FAKE_LF_STEP_MS: "40" },
    signal: controller.signal,
    onStep(event) {
      record(event);
      if (event.type === "started") {
        void (async () => {
          for await (const r of event.job.logs()) if (r.current_steps >= 5) return controller.abort();
        })();
      }
    },
  });
  const stopped = await interrupted;
  assert.equal(stopped.status, "interrupted");
  assert.deepEqual(stopped.steps, { Llama2_Stage1: "skipped", Llama2_Stage1_merge: "skipped", Llama2_Stage1_Stage2: "interrupted", Llama2_Stage1_Stage2_merge: "not reached" });
  assert.equal(JSON.parse(readFileSync(join(stage2Dir, LF_STEP_MARKER), "utf8")).status, "started");

  events.length = 0;
  const resumed = await runLfPipeline({ ...base, env: { FAKE_LF_STEP_MS: "2" }, onStep: record });
  assert.equal(resumed.status, "completed");
  assert.deepEqual(events, [
    "skipped Llama2_Stage1",
    "skipped Llama2_Stage1_merge",
    "started Llama2_Stage1_Stage2 (resumed)",
    "finished Llama2_Stage1_Stage2",
    "started Llama2_Stage1_Stage2_merge",
    "finished Llama2_Stage1_Stage2_merge",
  ]);
  assert.match(JSON.parse(readFileSync(join(stage2Dir, "fake-lf-env.json"), "utf8")).resumeFrom, /checkpoint-(4|6)$/);

  // A changed config is not "complete": stage 1 is redone from scratch, and so is everything reading its output.
  events.length = 0;
  const changed = await runLfPipeline({ ...base, trainOverrides: { ...base.trainOverrides, seed: 7 }, env: { FAKE_LF_STEP_MS: "1" }, onStep: record });
  assert.deepEqual(Object.values(changed.steps), ["ran", "ran", "ran", "ran"]);
  assert.ok(!events.some((e) => e.includes("(resumed)")));
});
