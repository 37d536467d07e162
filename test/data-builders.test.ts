import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { readAsqa } from "../src/data/asqa.ts";
import { buildBenchmark, type BenchmarkRow } from "../src/data/benchmark.ts";
import { exportLlamaFactory } from "../src/data/export.ts";
import { readHotpotAll } from "../src/data/hotpot.ts";
import { PAPER_LLAMAFACTORY_DEFAULTS, paperMergeConfigs, paperTrainConfigs, toYaml } from "../src/data/llamafactory.ts";
import { buildStage2WithClient } from "../src/data/openai-client.ts";
import { GPT_SYSTEM_MESSAGE, taskCognitionPrompt, taskQaPrompt } from "../src/data/prompts.ts";
import { assignQuestions, splitBenchmark } from "../src/data/split.ts";
import { buildStage1 } from "../src/data/stage1.ts";
import { buildCognitionPsqa, buildStage2 } from "../src/data/stage2.ts";
import { alpacaTable, benchmarkTable, stage2Table } from "../src/data/tables.ts";
import { dataPath } from "../src/util/paths.ts";

let cached: BenchmarkRow[] | undefined;
const paperRows = async (): Promise<BenchmarkRow[]> => (cached ??= buildBenchmark((await readAsqa(dataPath("asqa", "asqa_dev_first400.jsonl"))).items).rows);
const hotpot = () => readHotpotAll(dataPath("hotpotqa", "hipporag_hotpot_train_100.json"));

test("split by ambiguous question: no question on both sides, seeded, pinned sizes on the real benchmark", async () => {
  const rows = await paperRows();
  const s = splitBenchmark(rows, { seed: 42, testFraction: 0.3 });
  const trainQ = new Set(s.train.map((r) => r.sample_id));
  const testQ = new Set(s.test.map((r) => r.sample_id));
  assert.ok([...testQ].every((q) => !trainQ.has(q)));
  assert.equal(s.train.length + s.test.length, rows.length);
  assert.equal(trainQ.size + testQ.size, 119);
  assert.equal(testQ.size, Math.round(0.3 * 119));
  assert.deepEqual([s.train.length, s.test.length], [243, 99]);
  // Same seed, same split whatever the row order; another seed, another split.
  assert.deepEqual(splitBenchmark([...rows].reverse(), { seed: 42, testFraction: 0.3 }).assignment, s.assignment);
  assert.notDeepEqual(splitBenchmark(rows, { seed: 7, testFraction: 0.3 }).assignment, s.assignment);
  // One assignment serves both filters.
  const a = assignQuestions(rows.map((r) => r.sample_id), { seed: 42 });
  assert.deepEqual(splitBenchmark(rows, { assignment: a }).test, s.test);
});

test("stage 1: a Sufficient then an Insufficient row per benchmark row; with_qa interleaves a HotpotQA TASK_QA row", async () => {
  const rows = (await paperRows()).slice(0, 10);
  const out = buildStage1(rows);
  assert.equal(out.length, 20);
  assert.deepEqual(out[0], { instruction: taskCognitionPrompt(rows[0]!.context, rows[0]!.pos_query), input: "", output: "Sufficient", kind: "sufficient", source_id: "0" });
  assert.equal(out[1]!.instruction, taskCognitionPrompt(rows[0]!.context, rows[0]!.neg_query));
  assert.equal(out[1]!.output, "Insufficient");
  const qa = await hotpot();
  const withQa = buildStage1(rows, { withQa: qa.slice(0, 3) });
  assert.equal(withQa.length, 30);
  assert.deepEqual(withQa.map((r) => r.kind).slice(0, 6), ["sufficient", "insufficient", "qa", "sufficient", "insufficient", "qa"]);
  const q0 = qa[0]!;
  assert.equal(withQa[2]!.instruction, taskQaPrompt(q0.context.map(([, s]) => s.join("")).join("\n"), q0.question));
  assert.equal(withQa[2]!.output, q0.answer);
  assert.equal(withQa[11]!.source_id, q0.id); // the fourth pair wraps around to the first QA sample
});

test("Cognition_PSQA mixes S, I, then the next prompt-sensitive row, cycling", async () => {
  const rows = (await paperRows()).slice(0, 5);
  const s2 = buildStage2(await hotpot(), { limit: 2 }).rows;
  const mix = buildCognitionPsqa(rows, s2);
  assert.equal(mix.length, 15);
  assert.deepEqual(mix.map((r) => r.output).filter((_, i) => i % 3 !== 2).slice(0, 4), ["Sufficient", "Insufficient", "Sufficient", "Insufficient"]);
  assert.equal(mix[2], s2[0]);
  assert.equal(mix[5], s2[1]);
  assert.equal(mix[8], s2[0]);
});

test("LLaMA-Factory configs carry every paper value from the one defaults object; YAML round-trips", () => {
  const configs = paperTrainConfigs({ modelPath: "/m/llama-2-7b-chat-hf", datasetDir: "/d", outputRoot: "models" });
  const s1 = configs.Llama2_Stage1!;
  const s2 = configs.Llama2_Stage1_Stage2!;
  assert.equal(s1.learning_rate, 4e-5);
  assert.equal(s1.num_train_epochs, 1);
  assert.equal(s2.learning_rate, 5e-5);
  assert.equal(s2.num_train_epochs, 5);
  assert.equal(s2.model_name_or_path, "models/TrustworthyLLM_Cognition_Finetuning_Model_0_Merged");
  assert.equal(s2.dataset, "TrustworthyLLM_PromptSensitive_Finetuning_Dataset");
  assert.equal(configs.Llama2_Stage1_QA!.learning_rate, 6e-5);
  assert.equal(configs.Llama2_Stage2!.num_train_epochs, 10);
  for (const c of Object.values(configs)) {
    for (const [k, v] of Object.entries(PAPER_LLAMAFACTORY_DEFAULTS.yaml)) assert.equal((c as unknown as Record<string, unknown>)[k], v, k);
    assert.deepEqual(parseYaml(toYaml(c)), c);
  }
  const yaml = toYaml(s2);
  for (const line of ["lora_target: q_proj,v_proj", "cutoff_len: 1024", "max_samples: 1000", "learning_rate: 5.0e-5", "num_train_epochs: 5.0", "warmup_steps: 0.1", "val_size: 0.1", "bf16: true", "eval_steps: 500"]) {
    assert.ok(yaml.includes(`\n${line}\n`), line);
  }
  const autodl = paperTrainConfigs({ modelPath: "m", datasetDir: "d", outputRoot: "o", preset: "autodl" }).Llama2_Stage1_Stage2!;
  assert.deepEqual([autodl.learning_rate, autodl.num_train_epochs, autodl.fp16, autodl.max_samples, autodl.warmup_steps], [4e-5, 10, true, undefined, undefined]);
  const merges = paperMergeConfigs({ modelPath: "/m", outputRoot: "models" });
  assert.equal(merges.Llama2_Stage1_Stage2_merge!.model_name_or_path, "/m");
  assert.equal(paperMergeConfigs({ modelPath: "/m", outputRoot: "models", stage2MergeBase: "stage1-merged" }).Llama2_Stage1_Stage2_merge!.model_name_or_path, "models/TrustworthyLLM_Cognition_Finetuning_Model_0_Merged");
  assert.deepEqual(parseYaml(toYaml(merges.Llama2_Stage1_merge!)), merges.Llama2_Stage1_merge);
});

test("export writes Alpaca files under the seed's names, a dataset_info.json registering them, and the configs", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ktu-export-"));
  try {
    const rows = (await paperRows()).slice(0, 4);
    const s2 = buildStage2(await hotpot(), { limit: 3 }).rows;
    const result = await exportLlamaFactory(dir, { cognition: buildStage1(rows), promptSensitive: s2 });
    const info = JSON.parse(await readFile(join(dir, "dataset_info.json"), "utf8")) as Record<string, { file_name: string; columns: Record<string, string> }>;
    assert.deepEqual(Object.keys(info), ["TrustworthyLLM_Cognition_Finetuning_Dataset", "TrustworthyLLM_PromptSensitive_Finetuning_Dataset"]);
    assert.deepEqual(info.TrustworthyLLM_Cognition_Finetuning_Dataset!.columns, { prompt: "instruction", query: "input", response: "output" });
    const cognition = JSON.parse(await readFile(join(dir, "TrustworthyLLM_Cognition_Finetuning_Dataset.json"), "utf8")) as Record<string, string>[];
    assert.equal(cognition.length, 8);
    assert.deepEqual(Object.keys(cognition[0]!), ["instruction", "input", "output"]);
    // Configs only for exported datasets, pointing at this folder.
    assert.deepEqual(Object.keys(result.trainConfigs).sort(), ["Llama2_Stage1", "Llama2_Stage1_Stage2", "Llama2_Stage2"]);
    const stage1 = parseYaml(await readFile(result.trainConfigs.Llama2_Stage1!, "utf8")) as Record<string, unknown>;
    assert.equal(stage1.dataset_dir, dir);
    assert.equal(stage1.dataset, "TrustworthyLLM_Cognition_Finetuning_Dataset");
    assert.deepEqual(Object.keys(result.mergeConfigs).sort(), ["Llama2_Stage1_Stage2_merge", "Llama2_Stage1_merge"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("every dataset is also an arquero table", async () => {
  const rows = await paperRows();
  const t = benchmarkTable(rows);
  assert.equal(t.numRows(), 342);
  assert.deepEqual(t.columnNames().slice(0, 5), ["id", "context", "pos_query", "pos_answer", "neg_query"]);
  assert.equal(t.groupby("sample_id").count().numRows(), 119);
  assert.equal(alpacaTable(buildStage1(rows.slice(0, 3))).numRows(), 6);
  const s2 = stage2Table(buildStage2(await hotpot(), { limit: 5 }).rows);
  assert.deepEqual([s2.numRows(), s2.columnNames()[1]], [5, "instruction_id"]);
});

test("the OpenAI-compatible client path keeps only replies with CHECKING, against a real local HTTP server", async () => {
  const requests: { auth: string | undefined; body: { model: string; temperature: number; messages: { role: string; content: string }[] } }[] = [];
  const server = createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString()));
    req.on("end", () => {
      const body = JSON.parse(data) as (typeof requests)[number]["body"];
      requests.push({ auth: req.headers.authorization, body });
      const prompt = body.messages[1]!.content;
      const isTaskPrompt = prompt.startsWith("You should check");
      // Every second TASK_PROMPT reply forgets the review and must be dropped.
      const n = requests.filter((r) => r.body.messages[1]!.content.startsWith("You should check")).length;
      const content = !isTaskPrompt ? "direct answer" : n % 2 === 0 ? "no review here" : "Answer: x\nCHECKING:\nQuestion Answering Task: ...<fulfilled>";
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ choices: [{ message: { role: "assistant", content } }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as { port: number }).port;
    const samples = (await hotpot()).slice(0, 4);
    const r = await buildStage2WithClient(samples, { baseUrl: `http://127.0.0.1:${port}/v1/`, model: "gpt-4-1106-preview", apiKey: "k" }, { seed: 3, limit: 4 });
    assert.equal(r.rows.length, 2);
    assert.equal(r.rejected, 2);
    assert.equal(r.direct.length, 2);
    assert.equal(r.direct[0]!.output, "direct answer");
    assert.equal(requests.length, 6);
    for (const q of requests) {
      assert.equal(q.auth, "Bearer k");
      assert.equal(q.body.model, "gpt-4-1106-preview");
      assert.equal(q.body.temperature, 0);
      assert.deepEqual(q.body.messages[0], { role: "system", content: GPT_SYSTEM_MESSAGE });
    }
    assert.ok(r.rows.every((row) => row.output.includes("CHECKING")));
    assert.equal(r.rows[0]!.source_id, samples[0]!.id);
  } finally {
    server.close();
  }
});
