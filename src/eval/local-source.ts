/**
 * An AnswerSource over a model in this process: the decoder's generate / continuationLogprobs
 * (src/model/generate.ts) on any model openModel reads: a llama2.c checkpoint, a Hugging Face folder or
 * a hub name (hf:ORG/NAME[@REV]). Answers are generated with continuous batching on the native engine
 * (BatchQueue: `batch` sequences per forward pass, each answer token for token what generate() gives
 * alone); `batch: 1` is the single-sequence WebAssembly path of before.
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { BatchQueue, continuationLogprobs, DEFAULT_BATCH, generate, stepDecoderFor, type DecodeModel, type GenerateOptions, type GenerateResult } from "../model/generate.ts";
import { openModel } from "../model/open.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { AnswerSource, CompletionWithLogprobs, DecodeOptions } from "./generator.ts";

export interface LocalSourceOptions {
  /**
   * Cut a prompt that does not fit the model's context from the left (keeping BOS and leaving a
   * quarter of the context, at most maxNewTokens, for the answer). Tiny models such as stories260K
   * (512 positions) cannot see a whole ASQA passage; without this such a prompt is an error.
   */
  fitContext?: boolean;
  /**
   * Sequences generated together (default DEFAULT_BATCH, chosen by measurement: README "Batched
   * generation"). 1 = one at a time on the WebAssembly decoder (the path before batching).
   */
  batch?: number;
}

export class LocalModelSource implements AnswerSource {
  readonly id: string;
  /** Prompts cut to fit so far, so that a run can say how many answers saw a shortened prompt. */
  cutPrompts = 0;
  /** Requests the runners should keep in flight so that batches fill (runner.ts answerJobs). */
  readonly parallel: number;
  private readonly queue: BatchQueue | undefined;

  constructor(
    id: string,
    private readonly model: DecodeModel,
    private readonly tokenizer: Tokenizer,
    private readonly options: LocalSourceOptions = {},
  ) {
    this.id = options.fitContext ? `${id}:fit-context` : id;
    const batch = options.batch ?? DEFAULT_BATCH;
    if (!(Number.isInteger(batch) && batch >= 1)) throw new RangeError(`batch must be a whole number >= 1, got ${batch}`);
    this.queue = batch > 1 ? new BatchQueue(model, tokenizer, batch) : undefined;
    // Twice the batch: a finished answer's slot is refilled from requests already waiting.
    this.parallel = batch > 1 ? 2 * batch : 1;
  }

  /** One generation: through the batch queue, or alone on the WebAssembly decoder when batch is 1. */
  private run(prompt: string | number[], options: GenerateOptions): Promise<GenerateResult> {
    if (this.queue) return this.queue.submit(prompt, options);
    return Promise.resolve(generate(this.model, this.tokenizer, prompt, { ...options, engine: "wasm" }));
  }

  /** The prompt as text, or as ids cut from the left to fit the context. */
  private fit(prompt: string, maxNewTokens: number): string | number[] {
    if (!this.options.fitContext) return prompt;
    const seqLen = stepDecoderFor(this.model, "wasm").config.seqLen;
    const ids = this.tokenizer.encode(prompt, { bos: true });
    const room = seqLen - Math.min(maxNewTokens, Math.floor(seqLen / 4));
    if (ids.length <= room) return ids;
    this.cutPrompts++;
    return [ids[0]!, ...ids.slice(ids.length - room + 1)];
  }

  async complete(prompts: string[], opts: DecodeOptions): Promise<string[]> {
    const settings = { maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, topP: opts.topP, seed: opts.seed, stop: opts.stop };
    const results = await Promise.all(prompts.map((prompt) => this.run(this.fit(prompt, opts.maxNewTokens), settings)));
    return results.map((r) => r.text);
  }

  async completeWithLogprobs(prompt: string, opts: DecodeOptions): Promise<CompletionWithLogprobs> {
    const r = await this.run(this.fit(prompt, opts.maxNewTokens), {
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP,
      seed: opts.seed,
      stop: opts.stop,
      logprobs: true,
    });
    return { text: r.text, tokenLogprobs: (r.logprobs ?? []).map((t) => t.logprob) };
  }

  async continuationLogprobs(prompt: string, continuations: string[]): Promise<number[][]> {
    let text = prompt;
    if (this.options.fitContext) {
      const longest = Math.max(...continuations.map((c) => this.tokenizer.encode(c, { bos: false }).length));
      const fitted = this.fit(prompt, longest + 1);
      if (Array.isArray(fitted)) text = this.tokenizer.decode(fitted.slice(1));
    }
    return continuationLogprobs(this.model, this.tokenizer, text, continuations).map((s) => s.logprobs);
  }
}

/**
 * Opens a model (a llama2.c file, a Hugging Face folder or `hf:ORG/NAME[@REV]`) with its tokenizer
 * (`tokenizerSpec`, else the one beside the weights) and wraps them; the id names both files.
 */
export function loadLocalSource(modelSpec: string, tokenizerSpec?: string, options: LocalSourceOptions = {}): LocalModelSource {
  const opened = openModel(modelSpec, tokenizerSpec);
  // Size and mtime in the id, so a retrained checkpoint at the same path does not reuse old answers.
  const stamp = (p: string) => {
    const s = statSync(p);
    return `${resolve(p)}@${s.size}:${Math.round(s.mtimeMs)}`;
  };
  return new LocalModelSource(`local:${stamp(opened.modelPath)}:${stamp(opened.tokenizerPath)}`, opened.model, opened.tokenizer, options);
}
