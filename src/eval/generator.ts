/**
 * Where answers come from. The runners only see an AnswerSource: an OpenAI-compatible endpoint
 * (openai.ts) or a model in this process (local-source.ts). `id` names the model in the answer
 * cache, so two sources with the same id must give the same answers for the same settings.
 */

export interface DecodeOptions {
  maxNewTokens: number;
  /** 0 = greedy, as every seed evaluation except the sampling baseline. */
  temperature: number;
  topP?: number;
  seed?: number;
  stop?: string[];
}

/** The seed's evaluation decoding: greedy, max_tokens 200 (bf69a38; 150 in c8c6666, 512 in e02920d). */
export const SEED_DECODE: Readonly<DecodeOptions> = Object.freeze({ maxNewTokens: 200, temperature: 0 });

export interface CompletionWithLogprobs {
  text: string;
  /** Natural-log probability of each generated token, stop token excluded, at temperature 1. */
  tokenLogprobs: number[];
}

export interface AnswerSource {
  readonly id: string;
  /** Requests worth keeping in flight (a batching local model); runners use it when given no concurrency. */
  readonly parallel?: number;
  complete(prompts: string[], opts: DecodeOptions): Promise<string[]>;
  /** Teacher-forced token log-probs of each continuation after the prompt (calibration sources a, b). */
  continuationLogprobs?(prompt: string, continuations: string[]): Promise<number[][]>;
  /** A generation with the log-prob of every generated token (calibration source c). */
  completeWithLogprobs?(prompt: string, opts: DecodeOptions): Promise<CompletionWithLogprobs>;
  close?(): Promise<void>;
}

/** Runs `task` over items with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
