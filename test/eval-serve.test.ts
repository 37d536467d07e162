import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startServer, type RunningServer } from "../src/engine/server.ts";
import { readBenchmark } from "../src/eval/io.ts";
import { loadLocalSource } from "../src/eval/local-source.ts";
import { OpenAICompatibleSource } from "../src/eval/openai.ts";
import { runBenchmark } from "../src/eval/runner.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "ktu-eval-serve-"));
const modelPath = dataPath("models", "stories260K", "stories260K.bin");
const tokPath = dataPath("models", "stories260K", "tok512.bin");
let server: RunningServer;
let benchmark = "";

before(async () => {
  // Real ASQA rows, passages cut to 300 characters so that prompts fit stories260K's 512 positions.
  const built = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", join(tmp, "bench")]);
  assert.equal(built.status, 0, built.stderr);
  const rows = readBenchmark(join(tmp, "bench", "benchmark.jsonl")).slice(0, 3).map((r) => ({ ...r, context: r.context.slice(0, 300) }));
  benchmark = join(tmp, "short.jsonl");
  writeFileSync(benchmark, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const model = loadLlama2c(modelPath);
  server = await startServer({ model, tokenizer: Llama2cTokenizer.load(tokPath, model.config.vocabSize), modelName: "stories260K" });
});
after(() => server?.close());

function ktu(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), ...args], { cwd: repoRoot });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

test("ktu eval run --endpoint against ktu's own server on stories260K", async () => {
  const out = join(tmp, "run");
  const r = await ktu(["eval", "run", "--benchmark", benchmark, "--endpoint", `${server.url}/v1`, "--model-name", "stories260K", "--out", out, "--limit", "2", "--max-tokens", "12", "--prompt", "normal"]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(summary.n, 2);
  const preds = readFileSync(join(out, "predictions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(preds.length, 2);
  assert.ok(preds.every((p) => typeof p.pos_prediction === "string" && p.pos_prediction.length > 0));
});

test("the endpoint and the in-process model give the same greedy answers and label log-probs", async () => {
  const rows = readBenchmark(benchmark).slice(0, 2);
  const remote = new OpenAICompatibleSource({ baseUrl: `${server.url}/v1`, model: "stories260K" });
  const local = loadLocalSource(modelPath, tokPath);
  const decode = { maxNewTokens: 10, temperature: 0 };
  const a = await runBenchmark(rows, remote, { prompt: "normal", decode });
  const b = await runBenchmark(rows, local, { prompt: "normal", decode });
  assert.deepEqual(a.errors, []);
  assert.deepEqual(a.predictions, b.predictions);
  const prompt = "Once upon a time there was a";
  const [remoteScores, localScores] = [await remote.continuationLogprobs(prompt, [" girl", " dog"]), await local.continuationLogprobs(prompt, [" girl", " dog"])];
  for (let k = 0; k < 2; k++) {
    assert.equal(remoteScores[k]!.length, localScores[k]!.length);
    remoteScores[k]!.forEach((v, i) => assert.ok(Math.abs(v - localScores[k]![i]!) < 1e-4, `${v} vs ${localScores[k]![i]}`));
  }
  const withLogprobs = await remote.completeWithLogprobs(prompt, decode);
  assert.equal(withLogprobs.tokenLogprobs.length > 0, true);
});
