/**
 * An AnswerSource over a model in this process: the decoder's generate / continuationLogprobs
 * (src/model/generate.ts) on a llama2.c checkpoint and tokenizer.
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { AnswerSource, CompletionWithLogprobs, DecodeOptions } from "./generator.ts";

// The decoder's surface as this adapter uses it, resolved at run time so that evaluation of
// endpoints does not load the model code.
interface DecoderModule {
  generate(model: unknown, tokenizer: unknown, prompt: string, opts: Record<string, unknown>): Promise<unknown> | unknown;
  continuationLogprobs?(model: unknown, tokenizer: unknown, prompt: string, continuations: string[]): Promise<unknown> | unknown;
}

const GENERATE_MODULE = "../model/generate.ts";

function textOf(result: unknown): string {
  if (typeof result === "string") return result;
  if (result && typeof result === "object" && typeof (result as { text?: unknown }).text === "string") return (result as { text: string }).text;
  throw new Error(`generate() returned ${typeof result}, expected a string or { text }`);
}

function logprobsOf(result: unknown): number[] | undefined {
  if (!result || typeof result !== "object") return undefined;
  const r = result as { tokenLogprobs?: unknown; logprobs?: unknown };
  const v = r.tokenLogprobs ?? r.logprobs;
  return Array.isArray(v) && v.every((x) => typeof x === "number") ? (v as number[]) : undefined;
}

export class LocalModelSource implements AnswerSource {
  constructor(
    readonly id: string,
    private readonly decoder: DecoderModule,
    private readonly model: unknown,
    private readonly tokenizer: unknown,
  ) {}

  private options(opts: DecodeOptions, logprobs = false): Record<string, unknown> {
    return { maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, topP: opts.topP, seed: opts.seed, stop: opts.stop, ...(logprobs ? { logprobs: true } : {}) };
  }

  async complete(prompts: string[], opts: DecodeOptions): Promise<string[]> {
    const out: string[] = [];
    // One at a time: the model runs on this thread, so parallel calls would only interleave.
    for (const prompt of prompts) out.push(textOf(await this.decoder.generate(this.model, this.tokenizer, prompt, this.options(opts))));
    return out;
  }

  async completeWithLogprobs(prompt: string, opts: DecodeOptions): Promise<CompletionWithLogprobs> {
    const result = await this.decoder.generate(this.model, this.tokenizer, prompt, this.options(opts, true));
    const tokenLogprobs = logprobsOf(result);
    if (!tokenLogprobs) throw new Error("generate() gave no per-token log-probs (expected { text, tokenLogprobs })");
    return { text: textOf(result), tokenLogprobs };
  }

  async continuationLogprobs(prompt: string, continuations: string[]): Promise<number[][]> {
    if (!this.decoder.continuationLogprobs) throw new Error("the decoder has no continuationLogprobs()");
    const result = (await this.decoder.continuationLogprobs(this.model, this.tokenizer, prompt, continuations)) as unknown;
    if (!Array.isArray(result)) throw new Error("continuationLogprobs() did not return an array");
    return result.map((r) => {
      if (Array.isArray(r)) return r as number[];
      const v = logprobsOf(r);
      if (!v) throw new Error("continuationLogprobs() entry has no token log-probs");
      return v;
    });
  }
}

/** Loads a llama2.c checkpoint and tokenizer and wraps them; the id names both files. */
export async function loadLocalSource(modelPath: string, tokenizerPath: string): Promise<LocalModelSource> {
  const [{ loadLlama2c }, { Llama2cTokenizer }] = await Promise.all([import("../model/llama2c.ts"), import("../model/llama2c-tokenizer.ts")]);
  let decoder: DecoderModule;
  try {
    decoder = (await import(GENERATE_MODULE)) as DecoderModule;
  } catch (error) {
    throw new Error(`in-process generation is not available (${GENERATE_MODULE}: ${(error as Error).message}); use --endpoint`);
  }
  const model = loadLlama2c(modelPath);
  const tokenizer = await Llama2cTokenizer.load(tokenizerPath);
  // Size and mtime in the id, so a retrained checkpoint at the same path does not reuse old answers.
  const stamp = (p: string) => {
    const s = statSync(p);
    return `${resolve(p)}@${s.size}:${Math.round(s.mtimeMs)}`;
  };
  return new LocalModelSource(`local:${stamp(modelPath)}:${stamp(tokenizerPath)}`, decoder, model, tokenizer);
}
