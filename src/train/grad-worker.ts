/**
 * A gradient worker thread (see grad-pool.ts): holds its own TF.js model and LoRA adapter and, per
 * request, computes the loss and adapter gradients of its share of a micro-batch.
 */
import { parentPort, workerData } from "node:worker_threads";
import { initBackend, type BackendName } from "../model/backend.ts";
import { TfLlama, type AttentionMode } from "../model/llama-tf.ts";
import type { LlamaModelData } from "../model/types.ts";
import { Rng } from "../util/rng.ts";
import { lossAndGrads } from "./batch.ts";
import type { SftExample } from "./dataset.ts";
import { LoraAdapter, type LoraSettings } from "./lora.ts";

export interface GradWorkerInit {
  model: LlamaModelData;
  lora: LoraSettings;
  backend: BackendName;
  attention: AttentionMode;
  padId: number;
}
export interface GradRequest {
  id: number;
  params: Float32Array[];
  examples: SftExample[];
  weight: number;
  seed?: number;
}
export interface GradReply {
  id: number;
  loss?: number;
  grads?: Float32Array[];
  error?: string;
}

const init = workerData as GradWorkerInit;
await initBackend(init.backend);
const model = new TfLlama(init.model, { attention: init.attention });
const adapter = LoraAdapter.create(init.model.config, init.lora, new Rng(0));
parentPort!.postMessage({ id: -1 });
parentPort!.on("message", (request: GradRequest) => {
  try {
    adapter.parameters.forEach((p, i) => p.values.set(request.params[i]!));
    adapter.sync();
    const grads = adapter.parameters.map((p) => new Float32Array(p.values.length));
    const loss = lossAndGrads(model, adapter, request.examples, request.weight, init.padId, grads, request.seed === undefined ? undefined : new Rng(request.seed));
    parentPort!.postMessage({ id: request.id, loss, grads } satisfies GradReply, grads.map((g) => g.buffer));
  } catch (error) {
    parentPort!.postMessage({ id: request.id, error: (error as Error).stack ?? String(error) } satisfies GradReply);
  }
});
