/**
 * A client for OpenAI-compatible servers (vLLM, llama.cpp server, OpenAI, `ktu serve`):
 * completions or chat, a concurrency limit, retries with exponential backoff on 429 and 5xx
 * (honouring Retry-After), a timeout per attempt through AbortController, and errors that say
 * which request and which field of the reply went wrong.
 */
import type { AnswerSource, CompletionWithLogprobs, DecodeOptions } from "./generator.ts";

export interface OpenAIClientOptions {
  /** Base URL up to and including /v1, e.g. http://localhost:8000/v1. */
  baseUrl: string;
  model?: string;
  apiKey?: string;
  /** completions sends the prompt text as is; chat sends it as one user message. Default completions. */
  mode?: "completions" | "chat";
  /** System message for chat mode (the seed's GPT runs used GPT_SYSTEM_MESSAGE). */
  system?: string;
  concurrency?: number;
  /** Retries after the first attempt, for 429, 5xx, network errors and timeouts. Default 4. */
  maxRetries?: number;
  timeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  fetch?: typeof fetch;
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

export class EndpointError extends Error {
  override name = "EndpointError";
  constructor(
    message: string,
    readonly status?: number,
    readonly retryable = false,
    /** The server's Retry-After, in milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A small semaphore, so that all calls of one client share its concurrency limit. */
class Limiter {
  private active = 0;
  private queue: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

type Json = Record<string, unknown>;

export class OpenAICompatibleSource implements AnswerSource {
  readonly id: string;
  readonly options: Required<Omit<OpenAIClientOptions, "apiKey" | "system" | "onRetry" | "model">> & Pick<OpenAIClientOptions, "apiKey" | "system" | "onRetry" | "model">;
  private readonly limiter: Limiter;

  constructor(options: OpenAIClientOptions) {
    this.options = {
      mode: "completions",
      concurrency: 4,
      maxRetries: 4,
      timeoutMs: 120_000,
      initialBackoffMs: 500,
      maxBackoffMs: 30_000,
      fetch: globalThis.fetch,
      ...options,
      baseUrl: options.baseUrl.replace(/\/+$/, ""),
    };
    this.limiter = new Limiter(Math.max(1, this.options.concurrency));
    this.id = `openai:${this.options.baseUrl}:${this.options.model ?? "default"}:${this.options.mode}${this.options.system ? ":sys=" + this.options.system : ""}`;
  }

  /** POSTs JSON with retries; returns the parsed reply. */
  async post(path: string, body: Json): Promise<Json> {
    const url = `${this.options.baseUrl}${path}`;
    let lastReason = "";
    for (let attempt = 0; ; attempt++) {
      let delayMs = Math.min(this.options.maxBackoffMs, this.options.initialBackoffMs * 2 ** attempt);
      try {
        return await this.limiter.run(() => this.once(url, body));
      } catch (error) {
        const e = error instanceof EndpointError ? error : new EndpointError(`${url}: ${(error as Error).message}`, undefined, true);
        lastReason = e.message;
        if (!e.retryable || attempt >= this.options.maxRetries) {
          throw attempt > 0 ? new EndpointError(`${e.message} (after ${attempt + 1} attempts)`, e.status, false) : e;
        }
        // The server's own wait wins over our backoff, within reason.
        if (e.retryAfterMs !== undefined) delayMs = Math.min(e.retryAfterMs, Math.max(this.options.maxBackoffMs, 60_000));
        this.options.onRetry?.({ attempt: attempt + 1, delayMs, reason: lastReason });
        await sleep(delayMs);
      }
    }
  }

  private async once(url: string, body: Json): Promise<Json> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs);
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
      let response: Response;
      let text: string;
      try {
        response = await this.options.fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: controller.signal });
        text = await response.text();
      } catch (error) {
        if (controller.signal.aborted) throw new EndpointError(`${url}: timed out after ${this.options.timeoutMs} ms`, undefined, true);
        throw new EndpointError(`${url}: ${(error as Error).message}`, undefined, true);
      }
      if (!response.ok) {
        const retryable = response.status === 429 || response.status >= 500;
        throw new EndpointError(`${url}: HTTP ${response.status} ${text.slice(0, 200).trim()}`, response.status, retryable, parseRetryAfter(response.headers.get("retry-after")));
      }
      try {
        const parsed = JSON.parse(text) as unknown;
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
        return parsed as Json;
      } catch (error) {
        throw new EndpointError(`${url}: malformed JSON reply (${(error as Error).message}): ${JSON.stringify(text.slice(0, 120))}`, response.status, false);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private requestBody(prompt: string, opts: DecodeOptions, extra: Json = {}): [string, Json] {
    const common: Json = {
      ...(this.options.model ? { model: this.options.model } : {}),
      max_tokens: opts.maxNewTokens,
      temperature: opts.temperature,
      ...(opts.topP !== undefined ? { top_p: opts.topP } : {}),
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
      ...(opts.stop?.length ? { stop: opts.stop } : {}),
    };
    if (this.options.mode === "chat") {
      const messages = [...(this.options.system ? [{ role: "system", content: this.options.system }] : []), { role: "user", content: prompt }];
      return ["/chat/completions", { ...common, messages, ...extra }];
    }
    return ["/completions", { ...common, prompt, ...extra }];
  }

  private choiceText(reply: Json, url: string): string {
    const choice = (reply.choices as Json[] | undefined)?.[0];
    const text = this.options.mode === "chat" ? (choice?.message as Json | undefined)?.content : choice?.text;
    if (typeof text !== "string") {
      const field = this.options.mode === "chat" ? "choices[0].message.content" : "choices[0].text";
      throw new EndpointError(`${this.options.baseUrl}${url}: reply has no string ${field}: ${JSON.stringify(reply).slice(0, 160)}`);
    }
    return text;
  }

  async complete(prompts: string[], opts: DecodeOptions): Promise<string[]> {
    return Promise.all(
      prompts.map(async (prompt) => {
        const [path, body] = this.requestBody(prompt, opts);
        return this.choiceText(await this.post(path, body), path);
      }),
    );
  }

  async completeWithLogprobs(prompt: string, opts: DecodeOptions): Promise<CompletionWithLogprobs> {
    const chat = this.options.mode === "chat";
    const [path, body] = this.requestBody(prompt, opts, chat ? { logprobs: true } : { logprobs: 1 });
    const reply = await this.post(path, body);
    const text = this.choiceText(reply, path);
    const choice = (reply.choices as Json[])[0]!;
    const lp = choice.logprobs as Json | undefined;
    const values = chat ? ((lp?.content as Json[] | undefined)?.map((t) => t.logprob) ?? undefined) : (lp?.token_logprobs as unknown[] | undefined);
    if (!Array.isArray(values) || !values.every((v) => typeof v === "number")) {
      throw new EndpointError(`${this.options.baseUrl}${path}: reply has no numeric ${chat ? "choices[0].logprobs.content[].logprob" : "choices[0].logprobs.token_logprobs"}`);
    }
    return { text, tokenLogprobs: values as number[] };
  }

  /**
   * Teacher-forced log-probs of each continuation through the completions API's echo: the
   * prompt + continuation is echoed with its token log-probs, and the tokens from the prompt's
   * length on (by text_offset) are the continuation's.
   */
  async continuationLogprobs(prompt: string, continuations: string[]): Promise<number[][]> {
    return Promise.all(
      continuations.map(async (continuation) => {
        const body: Json = { ...(this.options.model ? { model: this.options.model } : {}), prompt: prompt + continuation, max_tokens: 0, echo: true, logprobs: 1, temperature: 0 };
        const reply = await this.post("/completions", body);
        const lp = (reply.choices as Json[] | undefined)?.[0]?.logprobs as Json | undefined;
        const offsets = lp?.text_offset as number[] | undefined;
        const values = lp?.token_logprobs as (number | null)[] | undefined;
        if (!Array.isArray(offsets) || !Array.isArray(values)) {
          throw new EndpointError(`${this.options.baseUrl}/completions: echo reply has no choices[0].logprobs.text_offset / token_logprobs (the server may not support echo)`);
        }
        const out: number[] = [];
        values.forEach((v, k) => {
          if (offsets[k]! >= prompt.length && typeof v === "number") out.push(v);
        });
        return out;
      }),
    );
  }
}
