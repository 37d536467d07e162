/**
 * A worker thread of generateParallel (parallel.ts): opens the model and tokenizer from their files
 * and answers batches of prompts with generateBatch.
 */
import { parentPort, workerData } from "node:worker_threads";
import { generateBatch, type GenerateOptions } from "./generate.ts";
import { openModel } from "./open.ts";

interface Job {
  id: number;
  prompts: (string | number[])[];
  options: GenerateOptions;
}

const { model, tokenizer } = openModel(workerData.model as string, workerData.tokenizer as string | undefined);
parentPort!.on("message", (job: Job) => {
  try {
    parentPort!.postMessage({ id: job.id, results: generateBatch(model, tokenizer, job.prompts, job.options) });
  } catch (error) {
    parentPort!.postMessage({ id: job.id, error: (error as Error).message });
  }
});
parentPort!.postMessage({ ready: true });
