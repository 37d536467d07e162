/**
 * Generation over several CPU cores: worker threads each open the model from its files and answer
 * batches of prompts, for evaluations that generate thousands of answers. One core decodes one token
 * of stories260K in ~0.25 ms, far too little work to split a single forward pass across threads, so
 * the work is split by prompt instead. Results equal generateBatch's (and so generate()'s), in order.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { GenerateOptions, GenerateResult } from "./generate.ts";

export interface ParallelOptions {
  /** Worker threads (default: the machine's available parallelism, at most one per batch). */
  workers?: number;
  /** Prompts per message to a worker, decoded together (default 8). */
  batch?: number;
}

/** Starts a worker running generate-worker.ts; tsx is registered inside it, as bin/ktu.js does for the CLI. */
function startWorker(model: string, tokenizer: string | undefined): Promise<Worker> {
  const tsx = import.meta.resolve("tsx/esm/api");
  const entry = new URL("./generate-worker.ts", import.meta.url).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  const worker = new Worker(code, { eval: true, workerData: { model, tokenizer } });
  return new Promise((resolve, reject) => {
    worker.once("message", () => resolve(worker));
    worker.once("error", reject);
  });
}

/**
 * Generates a continuation of every prompt, spread over worker threads; `model` and `tokenizer` are
 * paths as `ktu serve` takes them (a llama2.c .bin and tokenizer, or a Hugging Face folder).
 */
export async function generateParallel(
  files: { model: string; tokenizer?: string },
  prompts: (string | number[])[],
  options: GenerateOptions = {},
  parallel: ParallelOptions = {},
): Promise<GenerateResult[]> {
  const batch = Math.max(1, parallel.batch ?? 8);
  const batches: number[][] = [];
  for (let i = 0; i < prompts.length; i += batch) batches.push(Array.from({ length: Math.min(batch, prompts.length - i) }, (_, k) => i + k));
  const count = Math.max(1, Math.min(parallel.workers ?? availableParallelism(), batches.length));
  if (batches.length === 0) return [];
  const workers = await Promise.all(Array.from({ length: count }, () => startWorker(files.model, files.tokenizer)));
  const results: GenerateResult[] = new Array(prompts.length);
  let next = 0;
  try {
    await Promise.all(
      workers.map(async (worker) => {
        while (next < batches.length) {
          const indices = batches[next]!;
          const id = next++;
          const reply = await new Promise<{ results?: GenerateResult[]; error?: string }>((resolve, reject) => {
            const onError = (error: Error): void => reject(error);
            worker.once("error", onError);
            worker.once("message", (message: { results?: GenerateResult[]; error?: string }) => {
              worker.off("error", onError);
              resolve(message);
            });
            worker.postMessage({ id, prompts: indices.map((i) => prompts[i]!), options });
          });
          if (reply.error !== undefined) throw new RangeError(reply.error);
          reply.results!.forEach((r, k) => (results[indices[k]!] = r));
        }
      }),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
