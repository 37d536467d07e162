/**
 * An OpenAI-compatible HTTP server (node:http, no framework) over the in-process decoder:
 * /v1/completions, /v1/chat/completions, /v1/models, with SSE streaming and logprobs.
 * Requests go through server-scheduler.ts (a bounded queue, continuous batching). Batched rows are
 * computed exactly as single ones, so an answer does not depend on what else is being served.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { encodeChatTurns, getChatTemplate, type ChatMessage, type ChatTemplateSpec } from "../model/chat-templates.ts";
import { decoderFor, Sequence, stepDecoderFor, tokenText, type DecodeEngine, type GenerateOptions, type TokenLogprob } from "../model/generate.ts";
import { BpeTokenizer } from "../model/bpe.ts";
import { Llama2cTokenizer } from "../model/llama2c-tokenizer.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { LlamaModelData } from "../model/types.ts";
import { Scheduler, type Job } from "./server-scheduler.ts";
import { ApiError, chatLogprobs, completionLogprobs, parseChatRequest, parseCompletionRequest, usage, type ChatMessageIn } from "./server-openai.ts";

export interface ServerOptions {
  model: LlamaModelData;
  tokenizer: Tokenizer;
  /** The id /v1/models lists and responses carry (default "ktu-model"). */
  modelName?: string;
  /** Chat template name from src/model/chat-templates.ts (default "default": "Human: ...\nAssistant:"). */
  chatTemplate?: string | ChatTemplateSpec;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Sequences decoded together per tick (default 16). */
  maxBatch?: number;
  /** Decoder for generation: "auto" (default: the native engine when it loads), "native" or "wasm". */
  engine?: DecodeEngine;
  /** Requests waiting beyond this get HTTP 429 (default 1024). */
  maxQueue?: number;
  /** Largest request body in bytes (default 4 MiB); a larger one gets 413 and its connection is closed. */
  maxBodyBytes?: number;
  /**
   * Longest prompt in characters (all chat messages together), checked before tokenizing. Default: the
   * context length times the most characters one token can cover (the tokenizer's longest piece in bytes
   * for llama2.c tokenizers, else 32), so a refused prompt could never have fit.
   */
  maxPromptChars?: number;
  /**
   * KV-cache bytes one request may ask for: prompts × n × positions × (layers × KV width × 2 × 4 bytes).
   * Default: 1 GiB, or one full-context sequence where that is more.
   */
  maxRequestKvBytes?: number;
}

/** The most characters one token of `tokenizer` can cover (a bound, used to refuse prompts before tokenizing). */
export function maxCharsPerToken(tokenizer: Tokenizer): number {
  const inner = tokenizer instanceof Llama2cTokenizer ? tokenizer : tokenizer instanceof BpeTokenizer ? tokenizer.reference : undefined;
  // A piece of L UTF-8 bytes decodes to at most L UTF-16 code units.
  return inner ? Math.max(1, inner.maxTokenLength) : 32;
}

/** The tokenizer's encodeAsync (yields to the event loop) where it has one, else its encode. */
async function encodeYielding(tokenizer: Tokenizer, text: string): Promise<number[]> {
  const withAsync = tokenizer as Tokenizer & { encodeAsync?: (text: string, opts: { bos?: boolean }) => Promise<number[]> };
  return typeof withAsync.encodeAsync === "function" ? withAsync.encodeAsync(text, { bos: true }) : tokenizer.encode(text, { bos: true });
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, error: unknown): void {
  const api = error instanceof ApiError ? error : error instanceof RangeError ? new ApiError(400, error.message) : new ApiError(500, `internal error: ${(error as Error)?.message ?? String(error)}`);
  if (res.headersSent) {
    // Mid-stream: report in the stream, as OpenAI does, then end it.
    if (!res.writableEnded) res.end(`data: ${JSON.stringify(api.toJSON())}\n\n`);
    return;
  }
  // After a 413 the rest of the body is unread: close the connection (and say so) rather than parse it as the next request.
  sendJson(res, api.status, api.toJSON(), api.status === 413 ? { connection: "close" } : {});
}

async function readBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new ApiError(413, `request body of ${declared} bytes exceeds ${limit} bytes`);
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // Stop keeping the bytes; the 413 goes out with "connection: close", which ends the socket.
        req.off("data", onData);
        req.resume();
        reject(new ApiError(413, `request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, `the request body is not valid JSON: ${(error as Error).message}`, null, "invalid_json");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ApiError(400, "the request body must be a JSON object");
  return body as Record<string, unknown>;
}

/** Starts the server; resolves once it listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { model, tokenizer } = options;
  const modelName = options.modelName ?? "ktu-model";
  const template = typeof options.chatTemplate === "object" ? options.chatTemplate : getChatTemplate(options.chatTemplate ?? "default");
  const seqLen = model.config.seqLen;
  // Prompt scoring (echo, logprobs of the prompt) runs on the WebAssembly decoder; generation on the
  // native engine when it loads (batched passes of the scheduler), else on the same decoder.
  const decoder = decoderFor(model);
  const stepper = stepDecoderFor(model, options.engine ?? "auto");
  if (tokenizer.vocabSize !== model.config.vocabSize) throw new RangeError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${model.config.vocabSize}`);
  const scheduler = new Scheduler(options.maxBatch ?? 16, options.maxQueue ?? 1024);
  const created = Math.floor(Date.now() / 1000);
  const maxBody = options.maxBodyBytes ?? 4 * 1024 * 1024;
  const perToken = maxCharsPerToken(tokenizer);
  const maxPromptChars = options.maxPromptChars ?? seqLen * perToken;
  const c = model.config;
  const kvBytesPerPosition = c.nLayers * (c.dim / c.nHeads) * c.nKvHeads * 2 * 4;
  const maxRequestKv = options.maxRequestKvBytes ?? Math.max(1024 ** 3, seqLen * kvBytesPerPosition);
  const mib = (bytes: number): string => (bytes / 1024 ** 2).toFixed(bytes < 1024 ** 2 ? 3 : 1);

  /** A prompt's characters against the bound, before any tokenizing. */
  const checkChars = (chars: number, param: string): void => {
    if (chars > maxPromptChars) {
      throw new ApiError(
        400,
        `the prompt has ${chars} characters, more than the ${maxPromptChars} that this server tokenizes (this model's maximum context length is ${seqLen} tokens${options.maxPromptChars === undefined ? `, and one token covers at most ${perToken} characters` : ""}); shorten the prompt`,
        param,
        "context_length_exceeded",
      );
    }
  };

  /** The KV cache the request's sequences would hold, against the per-request budget. */
  const checkKvBudget = (promptLengths: number[], n: number, maxNewTokens: number): void => {
    let positions = 0;
    for (const length of promptLengths) {
      const maxNew = Math.min(maxNewTokens, Math.max(0, seqLen - length + 1));
      positions += n * Math.max(1, Math.min(seqLen, length + maxNew - 1));
    }
    const need = positions * kvBytesPerPosition;
    if (need > maxRequestKv) {
      throw new ApiError(
        400,
        `this request needs ${mib(need)} MiB of KV cache (${promptLengths.length} prompt(s) × n=${n}, ${positions} positions × ${kvBytesPerPosition} bytes), more than the per-request budget of ${mib(maxRequestKv)} MiB; lower n, max_tokens or the number of prompts`,
        promptLengths.length > 1 ? "prompt" : "n",
        "kv_budget_exceeded",
      );
    }
  };

  const checkModel = (body: Record<string, unknown>): void => {
    if (body.model !== undefined && body.model !== null && body.model !== modelName) {
      throw new ApiError(404, `the model ${JSON.stringify(body.model)} does not exist; this server serves ${JSON.stringify(modelName)}`, "model", "model_not_found");
    }
  };

  /** Sequences for one request, with OpenAI's context-length check. */
  const makeSequences = (prompt: string | number[], opts: GenerateOptions & { n: number; seed: number }, param = typeof prompt === "string" ? "prompt" : "messages"): Sequence[] => {
    const seqs: Sequence[] = [];
    for (let i = 0; i < opts.n; i++) {
      let seq: Sequence;
      try {
        seq = new Sequence(stepper, tokenizer, prompt, { ...opts, seed: opts.seed + i });
      } catch (error) {
        if (error instanceof RangeError && /context/.test(error.message)) {
          throw new ApiError(400, `${error.message}; shorten the prompt`, param, "context_length_exceeded");
        }
        if (error instanceof RangeError) throw new ApiError(400, error.message);
        throw error;
      }
      const need = seq.promptTokens.length + (opts.maxNewTokens ?? 0) - 1;
      if (need > seqLen) {
        throw new ApiError(
          400,
          `This model's maximum context length is ${seqLen} tokens. However, you requested ${need + 1} tokens (${seq.promptTokens.length} in the prompt, ${opts.maxNewTokens} for the completion). Please reduce the prompt or the completion length.`,
          param,
          "context_length_exceeded",
        );
      }
      seqs.push(seq);
    }
    return seqs;
  };

  /** Runs a job to completion, writing SSE chunks when streaming. */
  const runJob = (res: ServerResponse, seqs: Sequence[], stream: boolean, chunk: (seq: Sequence, index: number, text: string, from: number, final: boolean) => unknown): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const sent = seqs.map(() => 0);
      let settled = false;
      const job: Job = {
        seqs,
        cancelled: false,
        progress: () => {
          if (!stream) return;
          seqs.forEach((seq, i) => {
            const text = seq.takeDelta();
            const from = sent[i]!;
            if (text === "" && seq.tokenIds.length === from) return;
            sent[i] = seq.tokenIds.length;
            if (text !== "" || seq.options.logprobs) res.write(`data: ${JSON.stringify(chunk(seq, i, text, from, false))}\n\n`);
          });
        },
        done: (error) => {
          if (settled) return;
          settled = true;
          if (error) reject(error);
          else resolve();
        },
      };
      // A client that goes away stops its sequences at the next tick.
      res.on("close", () => {
        if (!res.writableFinished) job.cancelled = true;
      });
      if (stream && !res.headersSent) res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      scheduler.submit(job);
    });

  const completions = async (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): Promise<void> => {
    checkModel(body);
    const r = parseCompletionRequest(body, model.config.vocabSize);
    const opts = { ...r.options, logprobs: r.logprobs !== null, topLogprobs: r.logprobs ?? 0 };
    for (const p of r.prompts) if (typeof p === "string") checkChars(p.length, "prompt");
    // Tokenized once per prompt (not once per choice), yielding to the other requests as it goes.
    const ids: number[][] = [];
    for (const p of r.prompts) ids.push(typeof p === "string" ? await encodeYielding(tokenizer, p) : p);
    if (res.destroyed) return;
    for (const p of ids) if (p.length > seqLen) makeSequences(p, { ...opts, n: 1 }, "prompt");
    checkKvBudget(ids.map((p) => p.length), opts.n, opts.maxNewTokens ?? 0);
    const perPrompt = ids.map((p) => makeSequences(p, opts, "prompt"));
    const seqs = perPrompt.flat();
    const id = `cmpl-${randomUUID()}`;
    const head = { id, object: "text_completion", created: Math.floor(Date.now() / 1000), model: modelName };
    const promptText = (p: string | number[]): string => (typeof p === "string" ? p : tokenizer.decode(p));
    const echoText = (seq: Sequence): string => (r.echo ? tokenizer.decode(seq.promptTokens) : "");
    const promptLogprobs = (seq: Sequence): { tokens: TokenLogprob[]; tops: TokenLogprob[][] } => {
      if (!r.echo || r.logprobs === null) return { tokens: [], tops: [] };
      return scorePrompt(seq, r.logprobs);
    };
    const stream = r.options.stream;
    const finalChoice = (seq: Sequence, index: number): unknown => {
      const echo = promptLogprobs(seq);
      const text = echoText(seq) + seq.text;
      return {
        text,
        index,
        logprobs: r.logprobs === null ? null : completionLogprobs([...echo.tokens, ...seq.logprobs], [...echo.tops, ...seq.topLogprobs], r.echo ? 0 : promptText(r.prompts[Math.floor(index / r.options.n)]!).length),
        finish_reason: seq.finishReason ?? "length",
      };
    };
    const chunk = (seq: Sequence, index: number, text: string, from: number): unknown => ({
      ...head,
      choices: [{ text, index, logprobs: r.logprobs === null ? null : completionLogprobs(seq.logprobs.slice(from), seq.topLogprobs.slice(from), 0), finish_reason: null }],
    });
    if (stream && r.echo) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      seqs.forEach((seq, index) => res.write(`data: ${JSON.stringify({ ...head, choices: [{ text: echoText(seq), index, logprobs: null, finish_reason: null }] })}\n\n`));
    }
    await runJob(res, seqs, stream, chunk);
    if (res.destroyed) return;
    const promptTokens = perPrompt.reduce((a, s) => a + s[0]!.promptTokens.length, 0);
    if (!stream) {
      sendJson(res, 200, { ...head, choices: seqs.map((s, i) => finalChoice(s, i)), usage: usage(seqs, promptTokens) });
      return;
    }
    seqs.forEach((seq, index) => {
      const rest = seq.takeDelta();
      res.write(`data: ${JSON.stringify({ ...head, choices: [{ text: rest, index, logprobs: null, finish_reason: seq.finishReason ?? "length" }] })}\n\n`);
    });
    res.end("data: [DONE]\n\n");
  };

  /** Log-probabilities of the prompt's own tokens (for echo), the first one (after BOS) predicted from BOS. */
  const scorePrompt = (seq: Sequence, top: number): { tokens: TokenLogprob[]; tops: TokenLogprob[][] } => {
    const ids = seq.promptTokens;
    const all = decoder.forwardAll(ids);
    const V = model.config.vocabSize;
    const tokens: TokenLogprob[] = [];
    const tops: TokenLogprob[][] = [];
    ids.forEach((id, t) => {
      if (t === 0) {
        if (id === tokenizer.bosId) return;
        tokens.push({ token: id, text: tokenText(tokenizer, id), logprob: NaN });
        tops.push([]);
        return;
      }
      const row = all.subarray((t - 1) * V, t * V);
      let max = -Infinity;
      for (let i = 0; i < V; i++) if (row[i]! > max) max = row[i]!;
      let sum = 0;
      for (let i = 0; i < V; i++) sum += Math.exp(row[i]! - max);
      const lse = max + Math.log(sum);
      tokens.push({ token: id, text: tokenText(tokenizer, id), logprob: row[id]! - lse });
      const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]!).slice(0, top);
      tops.push(order.map((k) => ({ token: k, text: tokenText(tokenizer, k), logprob: row[k]! - lse })));
    });
    return { tokens, tops };
  };

  const chatPrompt = (messages: ChatMessageIn[]): number[] => {
    const system = messages.filter((m) => m.role === "system").map((m) => m.content).join("\n");
    const turns = messages.filter((m) => m.role !== "system") as ChatMessage[];
    if (turns.length === 0 || turns[turns.length - 1]!.role !== "user") throw new ApiError(400, "'messages' must end with a user message", "messages");
    let pairs: [number[], number[]][];
    try {
      pairs = encodeChatTurns(template, tokenizer, turns, system || undefined);
    } catch (error) {
      throw new ApiError(400, `cannot apply the ${template.name} chat template: ${(error as Error).message}`, "messages");
    }
    const ids = pairs.flatMap(([p, r]) => [...p, ...r]);
    // llama2.c models were trained with every sequence opening with BOS.
    if (tokenizer instanceof Llama2cTokenizer && ids[0] !== tokenizer.bosId) ids.unshift(tokenizer.bosId);
    return ids;
  };

  const chat = async (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): Promise<void> => {
    checkModel(body);
    const r0 = parseChatRequest(body, Number.MAX_SAFE_INTEGER);
    checkChars(r0.messages.reduce((a, m) => a + m.content.length, 0), "messages");
    const prompt = chatPrompt(r0.messages);
    const r = body.max_tokens === undefined && body.max_completion_tokens === undefined ? { ...r0, options: { ...r0.options, maxNewTokens: Math.max(0, seqLen - prompt.length + 1) } } : r0;
    if (prompt.length <= seqLen) checkKvBudget([prompt.length], r.options.n, r.options.maxNewTokens ?? 0);
    const seqs = makeSequences(prompt, { ...r.options, logprobs: r.logprobs, topLogprobs: r.topLogprobs });
    const head = { id: `chatcmpl-${randomUUID()}`, object: "chat.completion", created: Math.floor(Date.now() / 1000), model: modelName };
    const stream = r.options.stream;
    const chunkHead = { ...head, object: "chat.completion.chunk" };
    if (stream) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      seqs.forEach((_, index) => res.write(`data: ${JSON.stringify({ ...chunkHead, choices: [{ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] })}\n\n`));
    }
    const chunk = (seq: Sequence, index: number, text: string, from: number): unknown => ({
      ...chunkHead,
      choices: [{ index, delta: { content: text }, logprobs: r.logprobs ? chatLogprobs(seq.logprobs.slice(from), seq.topLogprobs.slice(from)) : null, finish_reason: null }],
    });
    await runJob(res, seqs, stream, chunk);
    if (res.destroyed) return;
    if (!stream) {
      const choices = seqs.map((seq, index) => ({
        index,
        message: { role: "assistant", content: seq.text },
        logprobs: r.logprobs ? chatLogprobs(seq.logprobs, seq.topLogprobs) : null,
        finish_reason: seq.finishReason ?? "length",
      }));
      sendJson(res, 200, { ...head, choices, usage: usage(seqs, prompt.length) });
      return;
    }
    seqs.forEach((seq, index) => {
      const rest = seq.takeDelta();
      res.write(`data: ${JSON.stringify({ ...chunkHead, choices: [{ index, delta: rest ? { content: rest } : {}, logprobs: null, finish_reason: seq.finishReason ?? "length" }] })}\n\n`);
    });
    res.end("data: [DONE]\n\n");
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0]!;
    try {
      if (path === "/v1/models" || path === "/models") {
        if (req.method !== "GET") throw new ApiError(405, `use GET for ${path}`);
        sendJson(res, 200, { object: "list", data: [{ id: modelName, object: "model", created, owned_by: "ktu", max_model_len: seqLen }] });
        return;
      }
      if (path === "/health") {
        sendJson(res, 200, { status: "ok", ...scheduler.load });
        return;
      }
      const routes: Record<string, typeof completions> = { "/v1/completions": completions, "/v1/chat/completions": chat };
      const route = routes[path];
      if (!route) throw new ApiError(404, `no route ${req.method} ${path}; this server has /v1/completions, /v1/chat/completions and /v1/models`, null, "not_found");
      if (req.method !== "POST") throw new ApiError(405, `use POST for ${path}`);
      await route(req, res, await readBody(req, maxBody));
    } catch (error) {
      sendError(res, error);
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  server.keepAliveTimeout = 5000;
  // A client that trickles its headers or body does not hold a connection for long.
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
