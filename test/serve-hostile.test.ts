/**
 * `ktu serve` against hostile clients: a 512 KiB prompt while others ask for /health and a short
 * completion, a request whose KV cache would be huge, and a body over the limit on a keep-alive
 * connection. The clients are real HTTP clients; the first server is the real `ktu serve` process.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { Agent, request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { startServer } from "../src/engine/server.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";

const MODEL = dataPath("models", "stories260K", "stories260K.bin");
const TOKENIZER = dataPath("models", "stories260K", "tok512.bin");
const model = loadLlama2c(MODEL);
const tok = Llama2cTokenizer.load(TOKENIZER, 512);
const children: ChildProcess[] = [];
after(() => children.forEach((c) => c.kill("SIGTERM")));

async function ktuServe(args: string[] = []): Promise<string> {
  const child = spawn(process.execPath, [join(repoRoot, "bin", "ktu.js"), "serve", "--model", MODEL, "--tokenizer", TOKENIZER, "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  return new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`ktu serve exited ${code}: ${out}`)));
  });
}

const timed = async <T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> => {
  const t0 = performance.now();
  const value = await f();
  return { ms: performance.now() - t0, value };
};

/** While `attack` runs: /health every 50 ms and one short completion, each with its latency. */
async function underAttack(url: string, attack: () => Promise<Response>): Promise<{ big: { ms: number; status: number; json: any }; health: number[]; short: number }> {
  const health: number[] = [];
  let done = false;
  const big = timed(attack).then(async ({ ms, value }) => ({ ms, status: value.status, json: await value.json() }));
  void big.finally(() => (done = true));
  const poll = (async () => {
    while (!done) {
      const { ms, value } = await timed(() => fetch(`${url}/health`, { signal: AbortSignal.timeout(10_000) }));
      assert.equal(value.status, 200);
      await value.json();
      health.push(ms);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await new Promise((r) => setTimeout(r, 20));
  const short = await timed(async () => {
    const res = await fetch(`${url}/v1/completions`, { method: "POST", body: JSON.stringify({ prompt: "Tom", max_tokens: 3, temperature: 0 }), signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    return res.json();
  });
  const result = await big;
  await poll;
  return { big: result, health, short: short.ms };
}

test("ktu serve: while a 512 KiB prompt is in flight, /health and a short completion answer within 2 s, and the big request gets a 400 within 5 s", async (t) => {
  const url = await ktuServe();
  const prompt = "Once upon a time there was a big dog. ".repeat(14_000).slice(0, 512 * 1024);
  for (const path of ["/v1/completions", "/v1/chat/completions"]) {
    const body = path === "/v1/completions" ? { prompt, max_tokens: 3 } : { messages: [{ role: "user", content: prompt }], max_tokens: 3 };
    const r = await underAttack(url, () => fetch(url + path, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) }));
    t.diagnostic(`${path}: big ${r.big.ms.toFixed(0)} ms, short ${r.short.toFixed(0)} ms, /health max ${Math.max(...r.health).toFixed(0)} ms over ${r.health.length}`);
    assert.equal(r.big.status, 400, JSON.stringify(r.big.json));
    assert.equal(r.big.json.error.code, "context_length_exceeded");
    assert.match(r.big.json.error.message, /the prompt has 524288 characters, more than the \d+ that this server tokenizes \(this model's maximum context length is 512 tokens/);
    assert.ok(r.big.ms < 5000, `the big request answered in ${r.big.ms.toFixed(0)} ms`);
    assert.ok(r.short < 2000, `the short completion took ${r.short.toFixed(0)} ms`);
    assert.ok(r.health.length > 0 && Math.max(...r.health) < 2000, `/health took up to ${Math.max(...r.health).toFixed(0)} ms`);
  }
});

test("with the character bound lifted, a 512 KiB prompt is tokenized in slices: /health and a short completion still answer within 2 s", async (t) => {
  // In its own process, so that the test's clients do not share the server's event loop.
  const url = await ktuServe(["--max-prompt-chars", String(1 << 30)]);
  const prompt = "Once upon a time there was a big dog. ".repeat(14_000).slice(0, 512 * 1024);
  // Tokenizing 512 KiB takes about a second of CPU (minutes with the old quadratic merge); on a loaded
  // machine longer, so only the other clients' latency is asserted here.
  const r = await underAttack(url, () => fetch(url + "/v1/completions", { method: "POST", body: JSON.stringify({ prompt, max_tokens: 3, n: 16 }), signal: AbortSignal.timeout(120_000) }));
  t.diagnostic(`big ${r.big.ms.toFixed(0)} ms, short ${r.short.toFixed(0)} ms, /health max ${Math.max(...r.health).toFixed(0)} ms over ${r.health.length}`);
  assert.equal(r.big.status, 400);
  assert.equal(r.big.json.error.code, "context_length_exceeded");
  assert.equal(r.big.json.error.param, "prompt");
  assert.match(r.big.json.error.message, /the prompt has \d+ tokens but the model's context is 512 positions/);
  assert.ok(r.short < 2000, `the short completion took ${r.short.toFixed(0)} ms`);
  assert.ok(Math.max(...r.health) < 2000, `/health took up to ${Math.max(...r.health).toFixed(0)} ms`);
});

test("a request whose KV cache would exceed the per-request budget gets a 400 naming the budget", async () => {
  const server = await startServer({ model, tokenizer: tok, maxRequestKvBytes: 1024 * 1024 });
  try {
    const post = async (body: unknown) => {
      const res = await fetch(server.url + "/v1/completions", { method: "POST", body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as any };
    };
    const big = await post({ prompt: Array.from({ length: 64 }, () => "Once upon a time"), n: 16, max_tokens: 500 });
    assert.equal(big.status, 400);
    assert.equal(big.json.error.code, "kv_budget_exceeded");
    assert.match(big.json.error.message, /^this request needs \d+\.\d MiB of KV cache \(64 prompt\(s\) × n=16, \d+ positions × \d+ bytes\), more than the per-request budget of 1\.0 MiB; lower n, max_tokens or the number of prompts$/);
    const chat = await fetch(server.url + "/v1/chat/completions", { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], n: 16 }) });
    assert.equal(chat.status, 400);
    assert.match(((await chat.json()) as any).error.message, /per-request budget of 1\.0 MiB/);
    const small = await post({ prompt: "Once upon a time", max_tokens: 4, temperature: 0 });
    assert.equal(small.status, 200);
  } finally {
    await server.close();
  }
});

test("a body over the limit gets 413 with connection: close, and the client's next request on a keep-alive agent succeeds", async () => {
  const server = await startServer({ model, tokenizer: tok, maxBodyBytes: 4096 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (body: string, chunked = false): Promise<{ status: number; headers: Record<string, unknown>; text: string }> =>
    new Promise((resolve, reject) => {
      const req = request(server.url + "/v1/completions", { method: "POST", agent, headers: chunked ? {} : { "content-length": Buffer.byteLength(body) } }, (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      });
      req.on("error", reject);
      req.end(body);
    });
  try {
    const valid = JSON.stringify({ prompt: "Tom", max_tokens: 2, temperature: 0 });
    for (const chunked of [false, true]) {
      assert.equal((await send(valid)).status, 200);
      const big = await send(JSON.stringify({ prompt: "x".repeat(100_000) }), chunked);
      assert.equal(big.status, 413);
      assert.equal(big.headers.connection, "close");
      assert.match(JSON.parse(big.text).error.message, /exceeds 4096 bytes/);
      const next = await send(valid);
      assert.equal(next.status, 200, next.text);
    }
    // A raw socket: after the 413 the server ends the connection.
    const socket = connect((server as unknown as { port: number }).port, "127.0.0.1");
    socket.write(`POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n${"x".repeat(5000)}`);
    const reply = await new Promise<string>((resolve) => {
      let text = "";
      socket.on("data", (d) => (text += d));
      socket.on("close", () => resolve(text));
    });
    assert.match(reply, /^HTTP\/1\.1 413 /);
  } finally {
    agent.destroy();
    await server.close();
  }
});
