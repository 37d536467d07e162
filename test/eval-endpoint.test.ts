import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AnswerCache } from "../src/eval/cache.ts";
import { OpenAICompatibleSource, parseRetryAfter } from "../src/eval/openai.ts";
import { runBenchmark } from "../src/eval/runner.ts";
import type { EvalBenchmarkRow } from "../src/eval/io.ts";
import { repoRoot } from "../src/util/paths.ts";

/** A scriptable OpenAI-compatible server: `script` decides each reply; every request is logged. */
type Handler = (body: Record<string, unknown>, req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let base = "";
let script: Handler = () => {};
const requests: Record<string, unknown>[] = [];
let inFlight = 0;
let maxInFlight = 0;

const reply = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
};
const completion = (text: string) => ({ id: "x", object: "text_completion", choices: [{ index: 0, text, finish_reason: "stop" }] });
/** Answers like a tiny model: refuses the unknown questions, names the answer otherwise. */
const echoModel: Handler = (body, _req, res) => {
  const prompt = String(body.prompt ?? "");
  setTimeout(() => reply(res, 200, completion(prompt.includes("QUESTION:\nneg") ? "Not Provided" : "The answer is gold")), 5);
};

before(async () => {
  server = createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const body = JSON.parse(data || "{}") as Record<string, unknown>;
      requests.push({ ...body, path: req.url });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on("close", () => inFlight--);
      script(body, req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const fast = { initialBackoffMs: 10, maxBackoffMs: 50 };
const rows: EvalBenchmarkRow[] = Array.from({ length: 4 }, (_, i) => ({ id: i, context: `ctx ${i}`, pos_query: `pos ${i}`, pos_answer: ["gold"], neg_query: `neg ${i}` }));

test("Retry-After parses seconds and dates", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter(new Date(Date.now() + 3000).toUTCString(), Date.now()) ! > 1000, true);
  assert.equal(parseRetryAfter("soon"), undefined);
});

test("a 429 then success, and a 500 then success, are retried", async () => {
  for (const status of [429, 500]) {
    let calls = 0;
    script = (body, _req, res) => (++calls === 1 ? reply(res, status, { error: "busy" }, { "retry-after": "0" }) : echoModel(body, _req, res));
    const retries: string[] = [];
    const source = new OpenAICompatibleSource({ baseUrl: base, ...fast, onRetry: (r) => retries.push(r.reason) });
    assert.deepEqual(await source.complete(["QUESTION:\npos"], { maxNewTokens: 5, temperature: 0 }), ["The answer is gold"]);
    assert.equal(calls, 2);
    assert.match(retries[0]!, new RegExp(`HTTP ${status}`));
  }
});

test("Retry-After overrides the backoff", async () => {
  let calls = 0;
  script = (body, req, res) => (++calls === 1 ? reply(res, 429, { error: "slow down" }, { "retry-after": "0.3" }) : echoModel(body, req, res));
  const delays: number[] = [];
  const source = new OpenAICompatibleSource({ baseUrl: base, ...fast, onRetry: (r) => delays.push(r.delayMs) });
  const t0 = Date.now();
  await source.complete(["x"], { maxNewTokens: 5, temperature: 0 });
  assert.deepEqual(delays, [300]);
  assert.ok(Date.now() - t0 >= 290);
});

test("a 400 is not retried and the error names the status", async () => {
  let calls = 0;
  script = (_b, _r, res) => {
    calls++;
    reply(res, 400, { error: "bad" });
  };
  const source = new OpenAICompatibleSource({ baseUrl: base, ...fast });
  await assert.rejects(source.complete(["x"], { maxNewTokens: 5, temperature: 0 }), /HTTP 400/);
  assert.equal(calls, 1);
});

test("a server that never answers times out through AbortController", async () => {
  script = () => {}; // never replies
  const source = new OpenAICompatibleSource({ baseUrl: base, timeoutMs: 150, maxRetries: 1, ...fast });
  const t0 = Date.now();
  await assert.rejects(source.complete(["x"], { maxNewTokens: 5, temperature: 0 }), /timed out after 150 ms \(after 2 attempts\)/);
  assert.ok(Date.now() - t0 < 2000);
  server.closeAllConnections();
});

test("a malformed JSON reply is reported with the row id and field; finished rows are kept", async () => {
  script = (body, req, res) => (String(body.prompt).includes("QUESTION:\nneg 2") ? reply(res, 200, "{not json") : echoModel(body, req, res));
  const source = new OpenAICompatibleSource({ baseUrl: base, ...fast });
  const { predictions, errors } = await runBenchmark(rows, source, { prompt: "normal" });
  assert.equal(predictions.length, 3);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.id, 2);
  assert.equal(errors[0]!.field, "neg_prediction");
  assert.match(errors[0]!.message, /malformed JSON reply/);
});

test("the concurrency limit caps requests in flight", async () => {
  script = echoModel;
  maxInFlight = 0;
  const source = new OpenAICompatibleSource({ baseUrl: base, concurrency: 2 });
  await runBenchmark(rows, source, { prompt: "normal", concurrency: 8 });
  assert.ok(maxInFlight <= 2 && maxInFlight >= 1, `max in flight ${maxInFlight}`);
});

test("the answer cache resumes after a kill: no second request for a cached prompt", async () => {
  script = echoModel;
  const dir = mkdtempSync(join(tmpdir(), "ktu-eval-cache-"));
  const path = join(dir, "answers.cache.jsonl");
  const source = new OpenAICompatibleSource({ baseUrl: base, concurrency: 2 });
  let cache = AnswerCache.open(path);
  await runBenchmark(rows, source, { prompt: "normal", limit: 2, cache });
  cache.close();
  // A kill in the middle of a write leaves a torn line.
  appendFileSync(path, '{"key":"abc","val');
  requests.length = 0;
  cache = AnswerCache.open(path);
  assert.equal(cache.skippedLines, 1);
  assert.equal(cache.size, 4);
  const { predictions } = await runBenchmark(rows, source, { prompt: "normal", cache });
  cache.close();
  assert.equal(predictions.length, 4);
  assert.equal(requests.length, 4, "only rows 2 and 3 (two questions each) are asked again");
  assert.ok(requests.every((r) => /(pos|neg) [23]/.test(String(r.prompt))));
  // Different decoding settings are different answers.
  requests.length = 0;
  cache = AnswerCache.open(path);
  await runBenchmark(rows, source, { prompt: "normal", cache, limit: 1, decode: { maxNewTokens: 7, temperature: 0 } });
  cache.close();
  assert.equal(requests.length, 2);
  const unreadable = readFileSync(path, "utf8").trim().split("\n").filter((line) => {
    try {
      JSON.parse(line);
      return false;
    } catch {
      return true;
    }
  });
  assert.deepEqual(unreadable, ['{"key":"abc","val'], "only the torn line, and later records start on a fresh line");
});

/** Runs the real CLI without blocking this process's event loop (the server lives here). */
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

test("ktu eval run --endpoint writes predictions.jsonl and scores.json, and resumes from its cache", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-eval-run-"));
  const bench = join(dir, "benchmark.jsonl");
  writeFileSync(bench, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  script = (body, req, res) => (String(body.prompt).includes("QUESTION:\npos 3") ? reply(res, 503, { error: "down" }) : echoModel(body, req, res));
  const out = join(dir, "out");
  const first = await ktu(["eval", "run", "--benchmark", bench, "--endpoint", base, "--out", out, "--prompt", "normal", "--retries", "0"]);
  assert.equal(first.status, 1);
  assert.match(first.stderr, /id 3, field pos_prediction: .*HTTP 503/);
  assert.equal(readFileSync(join(out, "predictions.jsonl"), "utf8").trim().split("\n").length, 3);
  script = echoModel;
  requests.length = 0;
  const second = await ktu(["eval", "run", "--benchmark", bench, "--endpoint", base, "--out", out, "--prompt", "normal"]);
  assert.equal(second.status, 0, second.stderr);
  assert.equal(requests.length, 1, "only the failed answer is asked again");
  const summary = JSON.parse(second.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual([summary.n, summary.known_acc, summary.unknown_acc, summary.overall], [4, 100, 100, 100]);
  const scores = JSON.parse(readFileSync(join(out, "scores.json"), "utf8"));
  assert.equal(scores.config.prompt, "normal");
  assert.equal(scores.config.answers_cached_before, 7);
});

test("a real kill (SIGKILL mid-run): the rerun asks only for answers not in the cache", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-eval-kill-"));
  const bench = join(dir, "benchmark.jsonl");
  const six = Array.from({ length: 6 }, (_, i) => ({ id: i, context: `ctx ${i}`, pos_query: `pos ${i}`, pos_answer: ["gold"], neg_query: `neg ${i}` }));
  writeFileSync(bench, six.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const out = join(dir, "out");
  const args = ["eval", "run", "--benchmark", bench, "--endpoint", base, "--out", out, "--prompt", "normal", "--concurrency", "1"];
  requests.length = 0;
  const child = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), ...args], { cwd: repoRoot });
  const killed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  script = (body, req, res) => {
    if (requests.length >= 5) child.kill("SIGKILL");
    setTimeout(() => echoModel(body, req, res), 30);
  };
  await killed;
  const cachedLines = readFileSync(join(out, "answers.cache.jsonl"), "utf8")
    .split("\n")
    .filter((line) => {
      try {
        return typeof JSON.parse(line).key === "string";
      } catch {
        return false;
      }
    }).length;
  assert.ok(cachedLines >= 3 && cachedLines < 12, `cached ${cachedLines}`);
  script = echoModel;
  requests.length = 0;
  const rerun = await ktu(args);
  assert.equal(rerun.status, 0, rerun.stderr);
  assert.equal(requests.length, 12 - cachedLines);
  assert.equal(readFileSync(join(out, "predictions.jsonl"), "utf8").trim().split("\n").length, 6);
});
