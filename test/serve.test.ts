import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { loadServedModel } from "../src/engine/serve-cli.ts";
import { startServer, type RunningServer } from "../src/engine/server.ts";
import { initBackend } from "../src/model/backend.ts";
import { LoraAdapter, mergeLora } from "../src/train/lora.ts";
import { Rng } from "../src/util/rng.ts";
import { continuationLogprobs, generate } from "../src/model/generate.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const MODEL = dataPath("models", "stories260K", "stories260K.bin");
const TOKENIZER = dataPath("models", "stories260K", "tok512.bin");
const model = loadLlama2c(MODEL);
const tok = Llama2cTokenizer.load(TOKENIZER, 512);
let server: RunningServer;

before(async () => {
  server = await startServer({ model, tokenizer: tok, modelName: "stories260K", maxBatch: 8 });
});
after(() => server.close());

async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(server.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

/** The `data:` payloads of a server-sent event stream, [DONE] included. */
async function postStream(path: string, body: unknown): Promise<string[]> {
  const res = await fetch(server.url + path, { method: "POST", body: JSON.stringify({ ...(body as object), stream: true }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((e) => e.length > 0)
    .map((e) => {
      assert.ok(e.startsWith("data: "), e);
      return e.slice(6);
    });
}

test("/v1/models lists the served model", async () => {
  const res = await fetch(server.url + "/v1/models");
  const json = (await res.json()) as any;
  assert.equal(res.status, 200);
  assert.equal(json.object, "list");
  assert.deepEqual(json.data.map((m: any) => m.id), ["stories260K"]);
  assert.ok(server.url.startsWith("http://127.0.0.1:"));
});

test("a greedy completion equals ktu generate's text, and streaming chunks add up to it", async () => {
  const prompt = "Once upon a time";
  const { status, json } = await post("/v1/completions", { model: "stories260K", prompt, max_tokens: 60, temperature: 0 });
  assert.equal(status, 200);
  const choice = json.choices[0];
  assert.equal(json.object, "text_completion");
  assert.equal(json.usage.prompt_tokens, 5);
  assert.equal(json.usage.completion_tokens, 60);
  assert.equal(choice.finish_reason, "length");
  // run.c's -n counts positions: 5 prompt tokens + 60 new ones - 1 (the last is never fed).
  const cli = runKtu(["generate", "--model", MODEL, "--tokenizer", TOKENIZER, "--prompt", prompt, "--temperature", "0", "--steps", "64"]);
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal(cli.stdout, prompt + choice.text + "\n");
  const events = await postStream("/v1/completions", { prompt, max_tokens: 60, temperature: 0 });
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.length > 10, `${chunks.length} chunks`);
  assert.equal(chunks.map((c) => c.choices[0].text).join(""), choice.text);
  assert.equal(chunks.at(-1).choices[0].finish_reason, "length");
});

test("stop strings, seeds and n choices behave as generate() does", async () => {
  const { json } = await post("/v1/completions", { prompt: "Once upon a time", max_tokens: 80, temperature: 0, stop: ["Lily"] });
  assert.equal(json.choices[0].finish_reason, "stop");
  assert.equal(json.choices[0].text, generate(model, tok, "Once upon a time", { maxNewTokens: 80, stop: ["Lily"] }).text);
  const sampled = await post("/v1/completions", { prompt: "Tom", max_tokens: 30, temperature: 1, top_p: 0.9, seed: 11, n: 2 });
  assert.equal(sampled.json.choices.length, 2);
  sampled.json.choices.forEach((c: any, i: number) => assert.equal(c.text, generate(model, tok, "Tom", { maxNewTokens: 30, temperature: 1, topP: 0.9, seed: 11 + i }).text));
  const events = await postStream("/v1/completions", { prompt: "Once upon a time", max_tokens: 80, temperature: 0, stop: ["Lily"] });
  assert.equal(events.slice(0, -1).map((e) => JSON.parse(e).choices[0].text).join(""), json.choices[0].text);
});

test("completion logprobs sum to the model's continuation log-probability", async () => {
  const prompt = "Once upon a time, there was a little";
  const { json } = await post("/v1/completions", { prompt, max_tokens: 12, temperature: 0, logprobs: 3 });
  const lp = json.choices[0].logprobs;
  assert.equal(lp.tokens.join(""), json.choices[0].text);
  assert.equal(lp.top_logprobs[0][lp.tokens[0]], lp.token_logprobs[0]);
  assert.equal(Object.keys(lp.top_logprobs[0]).length, 3);
  assert.equal(lp.text_offset[0], prompt.length);
  const [scored] = continuationLogprobs(model, tok, prompt, [json.choices[0].text]);
  assert.equal(scored!.tokens.length, lp.tokens.length);
  const sum = lp.token_logprobs.reduce((a: number, b: number) => a + b, 0);
  // Generation runs on the native engine, scoring on the wasm decoder: float32 sums in other orders.
  assert.ok(Math.abs(sum - scored!.sum) < 2e-5, `${sum} vs ${scored!.sum}`);
  const ids = await post("/v1/completions", { prompt: tok.encode(prompt), max_tokens: 12, temperature: 0, logprobs: 3 });
  assert.equal(ids.json.choices[0].text, json.choices[0].text, "token-id prompts (as lm-evaluation-harness sends) answer the same");
  const badIds = await post("/v1/completions", { prompt: [1, 99999] });
  assert.equal(badIds.status, 400);
  const echo = await post("/v1/completions", { prompt, max_tokens: 0, logprobs: 1, echo: true });
  assert.equal(echo.json.choices[0].text, prompt);
  const [whole] = continuationLogprobs(model, tok, "", [prompt]);
  const echoSum = echo.json.choices[0].logprobs.token_logprobs.reduce((a: number, b: number) => a + b, 0);
  assert.ok(Math.abs(echoSum - whole!.sum) < 1e-6);
});

test("chat completions use the default template and return chat logprobs, also streamed", async () => {
  const body = { messages: [{ role: "system", content: "Tell stories." }, { role: "user", content: "Who is Lily?" }], max_tokens: 20, temperature: 0, logprobs: true, top_logprobs: 2 };
  const { status, json } = await post("/v1/chat/completions", body);
  assert.equal(status, 200);
  assert.equal(json.object, "chat.completion");
  const choice = json.choices[0];
  assert.equal(choice.message.role, "assistant");
  assert.equal(json.usage.prompt_tokens, [1, ...tok.encode("Tell stories.\n", { bos: false }), ...tok.encode("Human: Who is Lily?\nAssistant:", { bos: false })].length);
  assert.equal(choice.logprobs.content.map((c: any) => c.token).join(""), choice.message.content);
  assert.equal(choice.logprobs.content[0].top_logprobs.length, 2);
  const events = await postStream("/v1/chat/completions", { ...body, logprobs: false, top_logprobs: 0 });
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  assert.equal(chunks.map((c) => c.choices[0].delta.content ?? "").join(""), choice.message.content);
});

test("50 concurrent requests are all answered, each as if it were alone", async () => {
  const prompts = Array.from({ length: 50 }, (_, i) => ["Once upon a time", "Tom and Sue", "The dog", "Lily saw a bird", "One day"][i % 5]!);
  const results = await Promise.all(prompts.map((prompt, i) => post("/v1/completions", { prompt, max_tokens: 10 + (i % 7), temperature: 0 })));
  results.forEach((r, i) => {
    assert.equal(r.status, 200);
    assert.equal(r.json.choices[0].text, generate(model, tok, prompts[i]!, { maxNewTokens: 10 + (i % 7) }).text);
  });
});

test("bad requests get HTTP 400 in OpenAI's error shape", async () => {
  const bad = await post("/v1/completions", "{not json");
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.type, "invalid_request_error");
  assert.equal(bad.json.error.code, "invalid_json");
  const long = await post("/v1/completions", { prompt: "word ".repeat(600), max_tokens: 5 });
  assert.equal(long.status, 400);
  assert.equal(long.json.error.code, "context_length_exceeded");
  assert.equal(long.json.error.param, "prompt");
  const over = await post("/v1/completions", { prompt: "Hi", max_tokens: 600 });
  assert.equal(over.status, 400);
  assert.match(over.json.error.message, /maximum context length is 512 tokens/);
  for (const [body, param] of [
    [{ prompt: "Hi", temperature: "hot" }, "temperature"],
    [{ prompt: 42 }, "prompt"],
    [{ prompt: "Hi", top_p: 1.5 }, "top_p"],
    [{ prompt: "Hi", stop: [""] }, "stop"],
    [{ prompt: "Hi", presence_penalty: 0.5 }, "presence_penalty"],
    [{ prompt: "Hi", seed: 0, temperature: 1 }, "seed"],
  ] as const) {
    const r = await post("/v1/completions", body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.param, param);
  }
  const chat = await post("/v1/chat/completions", { messages: [{ role: "robot", content: "x" }] });
  assert.equal(chat.status, 400);
  assert.equal(chat.json.error.param, "messages[0].role");
  const model404 = await post("/v1/completions", { model: "gpt-4", prompt: "Hi" });
  assert.equal(model404.status, 404);
  assert.equal(model404.json.error.code, "model_not_found");
  const route = await fetch(server.url + "/v1/embeddings", { method: "POST", body: "{}" });
  assert.equal(route.status, 404);
});

test("ktu serve runs as a command on loopback and stops on SIGTERM", async () => {
  const child = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), "serve", "--model", MODEL, "--tokenizer", TOKENIZER, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`ktu serve exited ${code}: ${out}`)));
  });
  const res = await fetch(url + "/v1/completions", { method: "POST", body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 8, temperature: 0 }) });
  const json = (await res.json()) as any;
  assert.equal(json.choices[0].text, generate(model, tok, "Once upon a time", { maxNewTokens: 8 }).text);
  assert.equal(json.model, "stories260K");
  const code = await new Promise<number | null>((resolve) => {
    child.on("exit", resolve);
    child.kill("SIGTERM");
  });
  assert.equal(code, 0);
});

test("--adapter merges a PEFT LoRA adapter before serving", async () => {
  await initBackend();
  const adapter = LoraAdapter.create(model.config, { rank: 4, alpha: 8, dropout: 0, targets: ["wq", "wv", "w2"] }, new Rng(5));
  const rng = new Rng(9);
  for (const p of adapter.parameters) if (p.kind === "B") for (let i = 0; i < p.values.length; i++) p.values[i] = rng.normal() * 0.2;
  const dir = mkdtempSync(join(tmpdir(), "ktu-serve-adapter-"));
  await adapter.save(dir, "stories260K");
  const merged = mergeLora(model, adapter);
  adapter.dispose();
  const served = await loadServedModel(MODEL, TOKENIZER, dir);
  assert.match(served.name, /^stories260K\+ktu-serve-adapter-/);
  const other = await startServer({ model: served.model, tokenizer: served.tokenizer, modelName: served.name });
  try {
    const res = await fetch(other.url + "/v1/completions", { method: "POST", body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 30, temperature: 0 }) });
    const text = ((await res.json()) as any).choices[0].text as string;
    assert.equal(text, generate(merged, tok, "Once upon a time", { maxNewTokens: 30 }).text);
    assert.notEqual(text, generate(model, tok, "Once upon a time", { maxNewTokens: 30 }).text);
  } finally {
    await other.close();
  }
});

test("a full queue answers 429, and a client that disconnects stops its generation", async () => {
  const small = await startServer({ model, tokenizer: tok, maxBatch: 1, maxQueue: 2 });
  try {
    const body = JSON.stringify({ prompt: "Once upon a time", max_tokens: 200, temperature: 0 });
    const responses = await Promise.all(Array.from({ length: 8 }, () => fetch(small.url + "/v1/completions", { method: "POST", body })));
    const statuses = responses.map((r) => r.status).sort();
    assert.ok(statuses.includes(200) && statuses.includes(429), statuses.join(","));
    const busy = (await responses.find((r) => r.status === 429)!.json()) as any;
    assert.equal(busy.error.type, "rate_limit_error");
    await Promise.all(responses.filter((r) => r.status === 200).map((r) => r.json()));

    const abort = new AbortController();
    const res = await fetch(small.url + "/v1/completions", { method: "POST", body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 500, stream: true }), signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    // The next request waits behind the cancelled one only until the scheduler notices the closed socket.
    const after = await fetch(small.url + "/v1/completions", { method: "POST", body: JSON.stringify({ prompt: "Tom", max_tokens: 3, temperature: 0 }) });
    assert.equal(after.status, 200);
    const health = (await (await fetch(small.url + "/health")).json()) as any;
    assert.deepEqual([health.queued, health.active, health.cancelled], [0, 0, 1]);
  } finally {
    await small.close();
  }
});
