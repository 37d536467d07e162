/**
 * Text generation and scoring on the fast decoder: greedy or sampled (run.c's sampler), stop strings,
 * max new tokens, batched prompts stepping together, a streaming async iterator, and token
 * log-probabilities of given continuations (for calibration: P("Sufficient") vs P("Insufficient")).
 * `Sequence` is the step-able state behind all of them, so the server can batch requests itself.
 */
import { Decoder, type KvCache } from "./decode.ts";
import { NativeDecoder, nativeDecoderFor, type NativeKvCache, type NativeRows } from "./decode-native.ts";
import { DEFAULT_BATCH, PREFILL_ROWS_PER_PASS } from "./batch-size.ts";
import { Llama2cTokenizer } from "./llama2c-tokenizer.ts";
import { Sampler } from "./sampler.ts";
import type { Tokenizer } from "./tokenizer.ts";
import type { LlamaModelData } from "./types.ts";

/** The decoders a Sequence can run on: the WebAssembly one (decode.ts) or the native engine's (decode-native.ts). */
export type StepDecoder = Decoder | NativeDecoder;
export type DecodeModel = LlamaModelData | StepDecoder;
export { DEFAULT_BATCH, PREFILL_ROWS_PER_PASS };
/**
 * Which decoder generates: "wasm" (decode.ts, one sequence per pass unless stepped together), "native"
 * (decode-native.ts; throws when the addon cannot load) or "auto" (native when it loads, else wasm).
 */
export type DecodeEngine = "auto" | "native" | "wasm";

export interface GenerateOptions {
  /** Tokens to generate at most (default 256); also bounded by the model's context. */
  maxNewTokens?: number;
  /** 0 (default) is greedy argmax. */
  temperature?: number;
  /** Nucleus sampling threshold, 1 (default) disables it. */
  topP?: number;
  /** Seed of run.c's xorshift generator (default 1; 0 is refused when sampling, as xorshift stays at 0). */
  seed?: number | bigint;
  /** Generation ends before the first occurrence of any of these; the text excludes it. */
  stop?: string[];
  /** Token ids that end generation (default: the tokenizer's EOS and BOS, as run.c stops on BOS). */
  stopTokens?: number[];
  /** Prepend BOS to the prompt (default true). */
  bos?: boolean;
  /** Also return each generated token's log-probability and the `topLogprobs` best alternatives. */
  logprobs?: boolean;
  topLogprobs?: number;
  /** Decoder for a model given as weights: generate() defaults to "wasm", generateBatch() to "auto". */
  engine?: DecodeEngine;
}

export interface TokenLogprob {
  token: number;
  text: string;
  logprob: number;
}

export interface GenerateResult {
  text: string;
  /** Generated ids, without the stop token. */
  tokenIds: number[];
  promptTokens: number[];
  finishReason: "stop" | "length";
  /** Log-probabilities (under the model, before temperature) of tokenIds, when asked for. */
  logprobs?: TokenLogprob[];
  topLogprobs?: TokenLogprob[][];
}

const decoders = new WeakMap<LlamaModelData, Decoder>();
/** One WebAssembly Decoder (and its RoPE tables and buffers) per model (a native decoder's model too). */
export function decoderFor(model: DecodeModel): Decoder {
  if (model instanceof Decoder) return model;
  if (model instanceof NativeDecoder) return decoderFor(model.model);
  let d = decoders.get(model);
  if (!d) decoders.set(model, (d = new Decoder(model)));
  return d;
}

/** The decoder a model generates on under `engine` (a decoder given as such is used as it is). */
export function stepDecoderFor(model: DecodeModel, engine: DecodeEngine = "auto"): StepDecoder {
  if (model instanceof Decoder || model instanceof NativeDecoder) return model;
  if (engine === "wasm") return decoderFor(model);
  const native = nativeDecoderFor(model);
  if (native) return native;
  if (engine === "native") return new NativeDecoder(model); // throws, saying why
  return decoderFor(model);
}

const tokenTexts = new WeakMap<Tokenizer, { anchor: number[]; prefix: string; texts: Map<number, string> }>();
/**
 * The text of a single token as it reads inside a sequence (with its leading space). SentencePiece
 * decoders drop the space of a sequence's first token, so other tokenizers decode the token after an
 * anchor token and keep what it added.
 */
export function tokenText(tokenizer: Tokenizer, id: number): string {
  if (tokenizer instanceof Llama2cTokenizer) return new TextDecoder().decode(tokenizer.decodePiece(-1, id));
  let entry = tokenTexts.get(tokenizer);
  if (!entry) {
    const anchor = tokenizer.encode("a", { bos: false, eos: false }).slice(-1);
    tokenTexts.set(tokenizer, (entry = { anchor, prefix: tokenizer.decode(anchor), texts: new Map() }));
  }
  let text = entry.texts.get(id);
  if (text === undefined) {
    const full = tokenizer.decode([...entry.anchor, id]);
    text = entry.anchor.length > 0 && full.startsWith(entry.prefix) ? full.slice(entry.prefix.length) : tokenizer.decode([id]);
    entry.texts.set(id, text);
  }
  return text;
}

/** log softmax of logits[0..n) at index `id`, and the log normaliser. */
export function logSumExp(logits: ArrayLike<number>, n = logits.length): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i]! - max);
  return max + Math.log(sum);
}

/** The `k` most likely next tokens with their log-probabilities, best first. */
export function topTokens(tokenizer: Tokenizer, logits: Float32Array, k: number, lse = logSumExp(logits)): TokenLogprob[] {
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (ids.length < k || logits[i]! > logits[ids[ids.length - 1]!]!) {
      let j = Math.min(ids.length, k - 1);
      while (j > 0 && logits[ids[j - 1]!]! < logits[i]!) j--;
      ids.splice(j, 0, i);
      if (ids.length > k) ids.pop();
    }
  }
  return ids.map((id) => ({ token: id, text: tokenText(tokenizer, id), logprob: logits[id]! - lse }));
}

/** Turns ids into text incrementally: complete UTF-8 only, the prompt's last tokens as context for spacing. */
class Detokenizer {
  private readonly ids: number[] = [];
  private emitted = "";
  private readonly stream = new TextDecoder();
  private prev: number;
  private readonly prefix: string;
  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly context: number[],
  ) {
    this.prev = context[context.length - 1] ?? -1;
    this.prefix = tokenizer instanceof Llama2cTokenizer ? "" : tokenizer.decode(context);
  }
  push(id: number): string {
    if (this.tokenizer instanceof Llama2cTokenizer) {
      const piece = id === this.tokenizer.bosId || id === this.tokenizer.eosId ? new Uint8Array(0) : this.tokenizer.decodePiece(this.prev, id);
      this.prev = id;
      return this.stream.decode(piece, { stream: true });
    }
    this.ids.push(id);
    const full = this.tokenizer.decode([...this.context, ...this.ids]);
    const text = full.startsWith(this.prefix) ? full.slice(this.prefix.length) : this.tokenizer.decode(this.ids);
    // Hold back a trailing replacement char: the next token may complete the UTF-8 sequence.
    const ready = text.endsWith("\uFFFD") ? text.slice(0, -1) : text;
    if (!ready.startsWith(this.emitted)) return "";
    const delta = ready.slice(this.emitted.length);
    this.emitted = ready;
    return delta;
  }
}

/**
 * One sequence being generated: prompt ids, KV cache, sampler, text so far and stop handling.
 * Drive it with `start()` then `feed()` (or let generate/generateBatch/the server do it).
 */
export class Sequence {
  readonly decoder: StepDecoder;
  private kv: KvCache | NativeKvCache | undefined;
  /** The prompt has been run (start() or a batched pass that included it). */
  private begun = false;
  private readonly cacheSize: number;
  readonly promptTokens: number[];
  readonly tokenIds: number[] = [];
  readonly logprobs: TokenLogprob[] = [];
  readonly topLogprobs: TokenLogprob[][] = [];
  text = "";
  /** Text not yet handed out by takeDelta() (held back while it may start a stop string). */
  private delivered = 0;
  finishReason: "stop" | "length" | undefined;
  private readonly sampler: Sampler;
  private readonly detok: Detokenizer;
  private readonly stopTokens: Set<number>;
  private readonly maxNew: number;

  constructor(
    model: DecodeModel,
    readonly tokenizer: Tokenizer,
    prompt: string | number[],
    readonly options: GenerateOptions = {},
  ) {
    this.decoder = stepDecoderFor(model, options.engine ?? "wasm");
    const c = this.decoder.config;
    if (tokenizer.vocabSize !== c.vocabSize) throw new RangeError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${c.vocabSize}`);
    this.promptTokens = typeof prompt === "string" ? tokenizer.encode(prompt, { bos: options.bos ?? true }) : [...prompt];
    if (this.promptTokens.length === 0) throw new RangeError("the prompt has no tokens (set bos or give some text)");
    if (this.promptTokens.length > c.seqLen) {
      throw new RangeError(`the prompt has ${this.promptTokens.length} tokens but the model's context is ${c.seqLen} positions`);
    }
    const maxNew = options.maxNewTokens ?? 256;
    if (!(Number.isInteger(maxNew) && maxNew >= 0)) throw new RangeError(`maxNewTokens must be a non-negative integer, got ${maxNew}`);
    // The last generated token is never fed back, so a full context yields seqLen - prompt + 1 tokens (as run.c).
    this.maxNew = Math.min(maxNew, c.seqLen - this.promptTokens.length + 1);
    this.cacheSize = Math.max(1, Math.min(c.seqLen, this.promptTokens.length + this.maxNew - 1));
    this.sampler = new Sampler({ vocabSize: c.vocabSize, temperature: options.temperature ?? 0, topP: options.topP ?? 1, seed: options.seed ?? 1 });
    this.stopTokens = new Set(options.stopTokens ?? [tokenizer.eosId, tokenizer.bosId]);
    this.detok = new Detokenizer(tokenizer, this.promptTokens.slice(-4));
    if (this.maxNew === 0) this.finish("length");
  }

  /** The sequence's KV cache, made on first use so that queued requests hold no cache memory. */
  get cache(): KvCache | NativeKvCache {
    return (this.kv ??= this.decoder.newCache(this.cacheSize));
  }

  /** Whether the prompt has gone through the model (by start() or a batched pass). */
  get started(): boolean {
    return this.begun;
  }

  /** This sequence's rows for the next native pass: the prompt first, then the last token. */
  nativeRows(): NativeRows {
    return { cache: this.cache as NativeKvCache, tokens: this.begun ? [this.lastToken] : this.promptTokens };
  }

  get finished(): boolean {
    return this.finishReason !== undefined;
  }

  /** The token to feed next (the last one sampled). */
  get lastToken(): number {
    return this.tokenIds[this.tokenIds.length - 1]!;
  }

  /** Runs the prompt through the model and samples the first token. */
  start(): void {
    if (this.finished || this.begun) return;
    this.begun = true;
    const d = this.decoder;
    this.accept(d instanceof NativeDecoder ? d.prefill(this.cache as NativeKvCache, this.promptTokens) : d.prefill(this.cache as KvCache, this.promptTokens));
  }

  /** Feeds the last token alone (single-sequence path); batched callers use stepTogether. */
  feed(): void {
    if (this.finished) return;
    if (!this.begun) return this.start();
    const d = this.decoder;
    this.accept(d instanceof NativeDecoder ? d.step(this.cache as NativeKvCache, this.lastToken) : d.step(this.cache as KvCache, this.lastToken));
  }

  /** Samples from the logits of a batched pass that ran this sequence's nativeRows(). */
  acceptPass(logits: Float32Array): void {
    this.begun = true;
    this.accept(logits);
  }

  /** Samples the next token from `logits`, updates text and stop state. */
  accept(logits: Float32Array): void {
    const token = this.sampler.sample(logits);
    if (this.stopTokens.has(token)) return this.finish("stop");
    if (this.options.logprobs) {
      const lse = logSumExp(logits);
      this.logprobs.push({ token, text: tokenText(this.tokenizer, token), logprob: logits[token]! - lse });
      this.topLogprobs.push(topTokens(this.tokenizer, logits, this.options.topLogprobs ?? 0, lse));
    }
    this.tokenIds.push(token);
    const before = this.text.length;
    this.text += this.detok.push(token);
    if (this.checkStop(before)) return;
    if (this.tokenIds.length >= this.maxNew) this.finish("length");
  }

  /** Ends generation and gives the KV cache's memory back at once (a server frees many). */
  private finish(reason: "stop" | "length"): void {
    this.finishReason = reason;
    this.kv?.release();
  }

  private checkStop(before: number): boolean {
    const stops = this.options.stop ?? [];
    let cut = -1;
    for (const s of stops) {
      if (s === "") continue;
      const at = this.text.indexOf(s, Math.max(0, before - s.length + 1));
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut < 0) return false;
    this.text = this.text.slice(0, cut);
    this.finish("stop");
    return true;
  }

  /** New text since the last call; while running, text that could still begin a stop string is held back. */
  takeDelta(): string {
    let end = this.text.length;
    if (!this.finished) {
      for (const s of this.options.stop ?? []) {
        for (let k = Math.min(s.length - 1, this.text.length); k > 0; k--) {
          if (this.text.endsWith(s.slice(0, k))) {
            end = Math.min(end, this.text.length - k);
            break;
          }
        }
      }
    }
    if (end <= this.delivered) return "";
    const delta = this.text.slice(this.delivered, end);
    this.delivered = end;
    return delta;
  }

  result(): GenerateResult {
    const r: GenerateResult = { text: this.text, tokenIds: this.tokenIds, promptTokens: this.promptTokens, finishReason: this.finishReason ?? "length" };
    if (this.options.logprobs) {
      r.logprobs = this.logprobs;
      r.topLogprobs = this.topLogprobs;
    }
    return r;
  }
}

/** Generates a continuation of `prompt`. */
export function generate(model: DecodeModel, tokenizer: Tokenizer, prompt: string | number[], options: GenerateOptions = {}): GenerateResult {
  const seq = new Sequence(model, tokenizer, prompt, options);
  seq.start();
  while (!seq.finished) seq.feed();
  return seq.result();
}


export interface BatchOptions {
  /** Sequences in flight at once (default DEFAULT_BATCH); a finished one's slot goes to the next prompt. */
  batch?: number;
}

/**
 * Generates for many prompts with continuous batching: up to `batch` sequences step through the model
 * together, one token each per pass, and a finished sequence's place goes to the next prompt, whose
 * prefill joins the same pass. Each has its own cache and sampler (same options and seed), and every
 * row is computed as it would be alone, so each result equals generate() of that prompt alone on the
 * same decoder (token for token, greedy or sampled). Runs on the native engine when it loads
 * (options.engine, default "auto"), else on the WebAssembly decoder.
 */
export function generateBatch(model: DecodeModel, tokenizer: Tokenizer, prompts: (string | number[])[], options: GenerateOptions & BatchOptions = {}): GenerateResult[] {
  const decoder = stepDecoderFor(model, options.engine ?? "auto");
  const { batch, ...rest } = options;
  const seqs = prompts.map((p) => new Sequence(decoder, tokenizer, p, rest));
  stepAll(seqs, batch ?? DEFAULT_BATCH);
  return seqs.map((s) => s.result());
}

/** Steps every unfinished sequence until all are done, at most `maxBatch` in flight (continuous batching). */
export function stepAll(seqs: Sequence[], maxBatch = DEFAULT_BATCH): void {
  const limit = Math.max(1, maxBatch);
  let next = 0;
  let active: Sequence[] = [];
  for (;;) {
    while (active.length < limit && next < seqs.length) {
      const s = seqs[next++]!;
      if (!s.finished) active.push(s);
    }
    if (active.length === 0) return;
    stepTogether(active);
    active = active.filter((s) => !s.finished);
  }
}

/**
 * One pass for `active` (unfinished sequences of one decoder): each started sequence gets one token,
 * and unstarted ones run their prompt. On the native decoder both kinds share one forward pass (joining
 * prompts up to PREFILL_ROWS_PER_PASS rows, the rest wait for the next pass); on the wasm decoder
 * prompts run alone first and the others step together.
 */
export function stepTogether(active: Sequence[]): void {
  if (active.length === 0) return;
  const decoder = active[0]!.decoder;
  const vocab = decoder.config.vocabSize;
  if (decoder instanceof NativeDecoder) {
    const pass: Sequence[] = [];
    let prefill = 0;
    for (const s of active) {
      if (s.finished) continue;
      if (!s.started) {
        if (prefill > 0 && prefill + s.promptTokens.length > PREFILL_ROWS_PER_PASS) continue;
        prefill += s.promptTokens.length;
      }
      pass.push(s);
    }
    if (pass.length === 0) return;
    const logits = decoder.forward(pass.map((s) => s.nativeRows()));
    pass.forEach((s, r) => s.acceptPass(logits.subarray(r * vocab, (r + 1) * vocab)));
    return;
  }
  const stepping = active.filter((s) => s.started && !s.finished);
  for (const s of active) if (!s.started) s.start();
  if (stepping.length === 0) return;
  if (stepping.length === 1) return stepping[0]!.feed();
  const logits = decoder.stepBatch(
    stepping.map((s) => s.cache as KvCache),
    stepping.map((s) => s.lastToken),
  );
  stepping.forEach((s, r) => s.accept(logits.subarray(r * vocab, (r + 1) * vocab)));
}

interface Waiting {
  seq: Sequence;
  resolve: (r: GenerateResult) => void;
  reject: (e: unknown) => void;
}

/**
 * Continuous batching for asynchronous callers (an evaluation's concurrent requests): submit() queues a
 * prompt and resolves with its result; passes run on setImmediate ticks, so requests made while one
 * pass runs join the next. Results equal generate()'s on the same decoder.
 */
export class BatchQueue {
  readonly decoder: StepDecoder;
  private readonly waiting: Waiting[] = [];
  private active: Waiting[] = [];
  private scheduled = false;

  constructor(
    model: DecodeModel,
    private readonly tokenizer: Tokenizer,
    readonly maxBatch = DEFAULT_BATCH,
    engine: DecodeEngine = "auto",
  ) {
    this.decoder = stepDecoderFor(model, engine);
  }

  submit(prompt: string | number[], options: GenerateOptions = {}): Promise<GenerateResult> {
    return new Promise((resolve, reject) => {
      let seq: Sequence;
      try {
        seq = new Sequence(this.decoder, this.tokenizer, prompt, options);
      } catch (error) {
        return reject(error);
      }
      if (seq.finished) return resolve(seq.result());
      this.waiting.push({ seq, resolve, reject });
      this.wake();
    });
  }

  private wake(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.tick());
  }

  private tick(): void {
    this.scheduled = false;
    while (this.active.length < this.maxBatch && this.waiting.length > 0) this.active.push(this.waiting.shift()!);
    try {
      stepTogether(this.active.map((w) => w.seq));
    } catch (error) {
      // A failed pass leaves its sequences in an unknown state: fail them all (the caller retries).
      for (const w of this.active) w.reject(error);
      this.active = [];
    }
    const still: Waiting[] = [];
    for (const w of this.active) {
      if (w.seq.finished) w.resolve(w.seq.result());
      else still.push(w);
    }
    this.active = still;
    if (this.active.length > 0 || this.waiting.length > 0) this.wake();
  }
}

export interface StreamChunk {
  token: number;
  /** Text added by this token (may be "" while UTF-8 or a possible stop string is incomplete). */
  text: string;
}

/**
 * Streams tokens as they are generated, yielding to the event loop between tokens so a server or a
 * notebook stays responsive. Returns the full result when done.
 */
export async function* generateStream(model: DecodeModel, tokenizer: Tokenizer, prompt: string | number[], options: GenerateOptions = {}): AsyncGenerator<StreamChunk, GenerateResult> {
  const seq = new Sequence(model, tokenizer, prompt, options);
  seq.start();
  let seen = 0;
  for (;;) {
    if (seq.tokenIds.length > seen) {
      seen = seq.tokenIds.length;
      yield { token: seq.lastToken, text: seq.takeDelta() };
    }
    if (seq.finished) break;
    await new Promise<void>((resolve) => setImmediate(resolve));
    seq.feed();
  }
  const rest = seq.takeDelta();
  if (rest !== "") yield { token: -1, text: rest };
  return seq.result();
}

export interface ContinuationScore {
  /** Token ids of the continuation (as tokenized after the prompt). */
  tokens: number[];
  logprobs: number[];
  sum: number;
  mean: number;
}

/**
 * Log-probabilities of each continuation's tokens after `prompt`. The continuation's tokens are those
 * of encode(prompt + continuation) past its common prefix with encode(prompt), as lm-eval-harness
 * does, so a tokenizer that merges across the boundary is scored on what it would really produce.
 */
export function continuationLogprobs(model: DecodeModel, tokenizer: Tokenizer, prompt: string, continuations: string[], options: { bos?: boolean } = {}): ContinuationScore[] {
  const decoder = decoderFor(model);
  const bos = options.bos ?? true;
  const ctx = tokenizer.encode(prompt, { bos });
  const wholes = continuations.map((c) => tokenizer.encode(prompt + c, { bos }));
  const longest = Math.max(...wholes.map((w) => w.length));
  if (longest > decoder.config.seqLen) throw new RangeError(`prompt and continuation need ${longest} tokens but the model's context is ${decoder.config.seqLen} positions`);
  const cache = decoder.newCache(longest);
  const V = decoder.config.vocabSize;
  const ks = wholes.map((whole) => {
    let k = 0;
    while (k < ctx.length && k < whole.length - 1 && whole[k] === ctx[k]) k++;
    if (k === 0) throw new RangeError("continuationLogprobs needs at least one context token (use bos)");
    return k;
  });
  // Logits are needed only from the earliest position a continuation is predicted from.
  const from = Math.min(...ks) - 1;
  if (from > 0) decoder.prefill(cache, ctx.slice(0, from));
  const ctxLogits = decoder.prefill(cache, ctx.slice(from), true).slice();
  // Context positions still in the cache: a continuation that re-tokenizes the prompt's tail overwrites them.
  let valid = ctx.length;
  const scores = wholes.map((whole, w) => {
    const k = ks[w]!;
    const tokens = whole.slice(k);
    const start = Math.min(valid, k);
    cache.truncate(start);
    const fed = whole.slice(start, whole.length - 1);
    const rest = fed.length > 0 ? decoder.prefill(cache, fed, true) : new Float32Array(0);
    valid = k;
    const logprobs = tokens.map((token, i) => {
      const p = k + i - 1; // the position whose logits predict this token
      const row = p < start ? ctxLogits.subarray((p - from) * V, (p - from + 1) * V) : rest.subarray((p - start) * V, (p - start + 1) * V);
      return row[token]! - logSumExp(row);
    });
    const sum = logprobs.reduce((a, b) => a + b, 0);
    return { tokens, logprobs, sum, mean: sum / tokens.length };
  });
  cache.release();
  return scores;
}

/** The `topK` most likely next tokens after `prompt`, with log-probabilities. */
export function nextTokenLogprobs(model: DecodeModel, tokenizer: Tokenizer, prompt: string, topK = 10, options: { bos?: boolean } = {}): TokenLogprob[] {
  const decoder = decoderFor(model);
  const ids = tokenizer.encode(prompt, { bos: options.bos ?? true });
  if (ids.length > decoder.config.seqLen) throw new RangeError(`the prompt has ${ids.length} tokens but the model's context is ${decoder.config.seqLen} positions`);
  const cache = decoder.newCache(ids.length);
  const top = topTokens(tokenizer, decoder.prefill(cache, ids), topK);
  cache.release();
  return top;
}
