/**
 * The OpenAI wire format for the server: request validation (every bad field is an HTTP 400 naming
 * the `param`, as OpenAI answers) and the response and stream-chunk shapes of /v1/completions and
 * /v1/chat/completions, including both logprobs layouts (legacy completions and chat).
 */
import type { GenerateOptions, Sequence, TokenLogprob } from "../model/generate.ts";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error",
  ) {
    super(message);
  }
  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

type Body = Record<string, unknown>;

function num(body: Body, name: string, min: number, max: number, fallback: number, integer = false): number {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new ApiError(400, `'${name}' must be ${integer ? "an integer" : "a number"} between ${min} and ${max}, got ${JSON.stringify(v)}`, name);
  }
  return v;
}

function stops(body: Body): string[] {
  const v = body.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length > 16 || !list.every((s) => typeof s === "string" && s.length > 0)) {
    throw new ApiError(400, "'stop' must be a non-empty string or an array of up to 16 non-empty strings", "stop");
  }
  return list as string[];
}

/** Sampling parameters both endpoints share. Penalties and biases are refused rather than silently ignored. */
function sampling(body: Body, maxTokensName: string, defaultMax: number): GenerateOptions & { n: number; seed: number; stream: boolean } {
  for (const name of ["presence_penalty", "frequency_penalty"]) {
    if (body[name] !== undefined && body[name] !== null && body[name] !== 0) throw new ApiError(400, `'${name}' is not supported by this server (only 0)`, name);
  }
  for (const name of ["logit_bias", "suffix", "tools", "functions", "response_format"]) {
    if (body[name] !== undefined && body[name] !== null) throw new ApiError(400, `'${name}' is not supported by this server`, name);
  }
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) throw new ApiError(400, "'best_of' is not supported by this server (only 1)", "best_of");
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") throw new ApiError(400, "'stream' must be a boolean", "stream");
  const seedRaw = body.seed;
  if (seedRaw !== undefined && seedRaw !== null && (!Number.isSafeInteger(seedRaw) || seedRaw === 0)) {
    throw new ApiError(400, "'seed' must be a nonzero integer (run.c's xorshift generator stays at 0 from seed 0)", "seed");
  }
  return {
    maxNewTokens: num(body, maxTokensName, 0, 1e9, defaultMax, true),
    temperature: num(body, "temperature", 0, 2, 1),
    topP: num(body, "top_p", 0, 1, 1),
    n: num(body, "n", 1, 16, 1, true),
    stop: stops(body),
    // Without a seed every request draws its own, as OpenAI's sampling is not reproducible by default.
    seed: typeof seedRaw === "number" ? seedRaw : Math.floor(Math.random() * 2 ** 31) + 1,
    stream: body.stream === true,
  };
}

export interface CompletionRequest {
  /** Text prompts, or token id prompts (OpenAI accepts both; lm-evaluation-harness sends ids). */
  prompts: (string | number[])[];
  options: ReturnType<typeof sampling>;
  logprobs: number | null;
  echo: boolean;
}

const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => Number.isInteger(t) && (t as number) >= 0);

export function parseCompletionRequest(body: Body, vocabSize: number): CompletionRequest {
  const p = body.prompt;
  let prompts: (string | number[])[];
  if (typeof p === "string") prompts = [p];
  else if (isIds(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.length <= 64 && p.every((x) => typeof x === "string" || isIds(x))) prompts = p as (string | number[])[];
  else throw new ApiError(400, "'prompt' must be a string, an array of token ids, or a non-empty array of up to 64 of either", "prompt");
  for (const q of prompts) {
    if (typeof q !== "string" && q.some((t) => t >= vocabSize)) throw new ApiError(400, `'prompt' has a token id outside the vocabulary (0..${vocabSize - 1})`, "prompt");
  }
  const logprobs = body.logprobs === undefined || body.logprobs === null ? null : num(body, "logprobs", 0, 20, 0, true);
  if (body.echo !== undefined && body.echo !== null && typeof body.echo !== "boolean") throw new ApiError(400, "'echo' must be a boolean", "echo");
  return { prompts, options: sampling(body, "max_tokens", 16), logprobs, echo: body.echo === true };
}

export interface ChatMessageIn {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatRequest {
  messages: ChatMessageIn[];
  options: ReturnType<typeof sampling>;
  logprobs: boolean;
  topLogprobs: number;
}

export function parseChatRequest(body: Body, defaultMax: number): ChatRequest {
  const m = body.messages;
  if (!Array.isArray(m) || m.length === 0) throw new ApiError(400, "'messages' must be a non-empty array", "messages");
  const messages = m.map((x, i) => {
    const msg = x as Record<string, unknown>;
    if (typeof msg !== "object" || msg === null || !["system", "user", "assistant"].includes(msg.role as string)) {
      throw new ApiError(400, `'messages[${i}].role' must be one of system, user, assistant`, `messages[${i}].role`);
    }
    let content = msg.content;
    // The array-of-parts form, text parts only.
    if (Array.isArray(content) && content.every((part) => (part as Record<string, unknown>)?.type === "text" && typeof (part as Record<string, unknown>).text === "string")) {
      content = content.map((part) => (part as Record<string, string>).text).join("");
    }
    if (typeof content !== "string") throw new ApiError(400, `'messages[${i}].content' must be a string`, `messages[${i}].content`);
    return { role: msg.role as ChatMessageIn["role"], content };
  });
  if (body.logprobs !== undefined && body.logprobs !== null && typeof body.logprobs !== "boolean") throw new ApiError(400, "'logprobs' must be a boolean", "logprobs");
  const topLogprobs = num(body, "top_logprobs", 0, 20, 0, true);
  if (topLogprobs > 0 && body.logprobs !== true) throw new ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
  const max = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? "max_completion_tokens" : "max_tokens";
  return { messages, options: sampling(body, max, defaultMax), logprobs: body.logprobs === true, topLogprobs };
}

/** The legacy completions logprobs object for tokens[from..to) of a sequence. */
export function completionLogprobs(
  tokens: TokenLogprob[],
  tops: TokenLogprob[][],
  startOffset: number,
): { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[]; text_offset: number[] } {
  const out = { tokens: [] as string[], token_logprobs: [] as (number | null)[], top_logprobs: [] as (Record<string, number> | null)[], text_offset: [] as number[] };
  let offset = startOffset;
  tokens.forEach((t, i) => {
    out.tokens.push(t.text);
    out.token_logprobs.push(Number.isNaN(t.logprob) ? null : t.logprob);
    const top = tops[i];
    out.top_logprobs.push(top ? Object.fromEntries(top.map((x) => [x.text, x.logprob])) : null);
    out.text_offset.push(offset);
    offset += t.text.length;
  });
  return out;
}

const bytesOf = (s: string): number[] => Array.from(new TextEncoder().encode(s));

/** The chat logprobs object ({content: [...]}) for the given tokens. */
export function chatLogprobs(tokens: TokenLogprob[], tops: TokenLogprob[][]): { content: unknown[] } {
  return {
    content: tokens.map((t, i) => ({
      token: t.text,
      logprob: t.logprob,
      bytes: bytesOf(t.text),
      top_logprobs: (tops[i] ?? []).map((x) => ({ token: x.text, logprob: x.logprob, bytes: bytesOf(x.text) })),
    })),
  };
}

export const usage = (seqs: Sequence[], promptTokens: number): { prompt_tokens: number; completion_tokens: number; total_tokens: number } => {
  const completion = seqs.reduce((a, s) => a + s.tokenIds.length, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
};
