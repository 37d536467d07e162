import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { TfLlama } from "../model/llama-tf.ts";
import { Rng } from "../util/rng.ts";
import { lossAndGrads } from "./batch.ts";
import type { SftExample } from "./dataset.ts";
import type { GradReply, GradRequest, GradWorkerInit } from "./grad-worker.ts";
import type { LoraAdapter } from "./lora.ts";

/**
 * Data parallelism over CPU cores: TF.js's wasm backend runs one thread, so a micro-batch is split
 * into `size` contiguous shares, one computed on the calling thread and the others in worker threads
 * with their own model copy; losses and gradients are summed in a fixed order, so a run is
 * reproducible for a given pool size (but not bit-identical across sizes).
 */
export class GradPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: GradReply) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  readonly ready: Promise<void>;

  constructor(readonly size: number, init: GradWorkerInit) {
    // Each worker loads tsx itself, so it runs whether the parent was started with --import tsx or not.
    const tsxApi = import.meta.resolve("tsx/esm/api");
    const entry = pathToFileURL(new URL("./grad-worker.ts", import.meta.url).pathname).href;
    const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
    const starts: Promise<void>[] = [];
    for (let i = 1; i < size; i++) {
      const worker = new Worker(boot, { eval: true, execArgv: [], workerData: init });
      worker.unref();
      starts.push(
        new Promise<void>((resolve, reject) => {
          worker.once("error", reject);
          worker.on("message", (reply: GradReply) => {
            if (reply.id === -1) return resolve();
            const waiter = this.pending.get(reply.id);
            this.pending.delete(reply.id);
            if (reply.error !== undefined) waiter?.reject(new Error(`gradient worker: ${reply.error}`));
            else waiter?.resolve(reply);
          });
        }),
      );
      this.workers.push(worker);
    }
    this.ready = Promise.all(starts).then(() => undefined);
  }

  /** Like lossAndGrads for the whole micro-batch, with the shares computed in parallel. */
  async lossAndGrads(model: TfLlama, adapter: LoraAdapter, examples: readonly SftExample[], weight: number, padId: number, grads: Float32Array[], dropoutRng?: Rng): Promise<number> {
    this.workers.forEach((w) => w.ref());
    try {
      await this.ready;
    } finally {
      this.workers.forEach((w) => w.unref());
    }
    const shares: SftExample[][] = [];
    const per = Math.ceil(examples.length / this.size);
    for (let i = 0; i < examples.length; i += per) shares.push(examples.slice(i, i + per));
    const seeds = shares.map(() => (dropoutRng ? dropoutRng.int(0, 0x7fffffff) : undefined));
    const params = adapter.parameters.map((p) => p.values);
    const remote = shares.slice(1).map((share, k) => {
      const id = this.nextId++;
      const request: GradRequest = { id, params, examples: share, weight, seed: seeds[k + 1] };
      const worker = this.workers[k]!;
      // Referenced only while a request is out: an idle pool must not keep the process alive, a busy one must.
      worker.ref();
      return new Promise<GradReply>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        worker.postMessage(request);
      }).finally(() => worker.unref());
    });
    let loss = lossAndGrads(model, adapter, shares[0]!, weight, padId, grads, seeds[0] === undefined ? undefined : new Rng(seeds[0]));
    for (const reply of await Promise.all(remote)) {
      loss += reply.loss!;
      reply.grads!.forEach((g, i) => {
        const acc = grads[i]!;
        for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + g[j]!;
      });
    }
    return loss;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const waiter of this.pending.values()) waiter.reject(new Error("gradient pool closed"));
    this.pending.clear();
  }
}
