/**
 * Data-parallel gradients for FullTrainer over worker threads. The wasm backend is single-threaded in
 * Node, so on a 2-core machine a second thread with its own TF.js instance computes half of each batch:
 * the main thread sends the current weights and a sub-batch, both sides compute the gradient of
 * (their token losses / all scored tokens), and the sums are added in a fixed order, so a run is
 * deterministic for a given worker count (and equal to the single-thread one up to float rounding).
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { LlamaModelData } from "../model/types.ts";
import { FullTrainer, splitLmBatch, type LmBatch, type TrainStepResult } from "./pretrain.ts";

interface GradRequest {
  params: Float32Array[];
  batch: LmBatch;
  scale: number;
}

export class GradientPool {
  private readonly workers: Worker[];
  private ready: Promise<void>[];

  /** `threads` extra worker threads (the calling thread computes a share too). */
  constructor(model: LlamaModelData, threads: number) {
    // Workers do not inherit the tsx loader; the bootstrap registers it, then loads this module.
    const bootstrap = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); });`;
    this.workers = Array.from({ length: threads }, () => new Worker(bootstrap, { eval: true, workerData: { model } }));
    this.ready = this.workers.map((w) => new Promise<void>((resolve, reject) => {
      w.once("message", () => resolve());
      w.once("error", reject);
    }));
  }

  private ask(w: Worker, request: GradRequest): Promise<{ loss: number; values: Float32Array[] }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      w.once("error", onError);
      w.once("message", (m: { loss: number; values: Float32Array[] }) => {
        w.off("error", onError);
        resolve(m);
      });
      w.postMessage(request);
    });
  }

  /** One AdamW step of `trainer` on `batch`, its gradient computed across the threads. */
  async trainStep(trainer: FullTrainer, batch: LmBatch): Promise<TrainStepResult> {
    const t0 = performance.now();
    await Promise.all(this.ready);
    const parts = splitLmBatch(batch, this.workers.length + 1);
    const scale = 1 / Math.max(1, batch.rows.length);
    const params = trainer.parameterValues();
    const remote = parts.slice(1).map((part, i) => this.ask(this.workers[i]!, { params, batch: part, scale }));
    const local = trainer.gradients(parts[0]!, scale);
    const results = [local, ...(await Promise.all(remote))];
    const values = local.values;
    let loss = local.loss;
    for (const r of results.slice(1)) {
      loss += r.loss;
      r.values.forEach((g, i) => {
        const acc = values[i]!;
        for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + g[j]!;
      });
    }
    return trainer.applyGradients(loss, values, batch.tokens, t0);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

if (!isMainThread && parentPort && (workerData as { model?: LlamaModelData } | undefined)?.model) {
  const port = parentPort;
  const { initBackend } = await import("../model/backend.ts");
  await initBackend();
  const trainer = new FullTrainer((workerData as { model: LlamaModelData }).model);
  port.postMessage("ready");
  port.on("message", (request: GradRequest) => {
    trainer.setParameterValues(request.params);
    const { loss, values } = trainer.gradients(request.batch, request.scale);
    port.postMessage({ loss, values }, values.map((v) => v.buffer as ArrayBuffer));
  });
}
