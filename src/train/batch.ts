import { tf } from "../model/backend.ts";
import type { TfLlama } from "../model/llama-tf.ts";
import type { Rng } from "../util/rng.ts";
import { IGNORE_INDEX, type SftExample } from "./dataset.ts";
import type { LoraAdapter } from "./lora.ts";

/** A padded micro-batch: ids [B, T-1] (the last position predicts nothing) and the scored rows. */
export interface PaddedBatch {
  readonly ids: Int32Array;
  readonly batch: number;
  readonly seq: number;
  /** Flat rows b*seq + t whose next token is a label, and those labels. */
  readonly rows: Int32Array;
  readonly targets: Int32Array;
}

export function padBatch(examples: readonly SftExample[], padId: number): PaddedBatch {
  const longest = Math.max(...examples.map((e) => e.inputIds.length));
  const seq = Math.max(1, longest - 1);
  const ids = new Int32Array(examples.length * seq).fill(padId);
  const rows: number[] = [];
  const targets: number[] = [];
  examples.forEach((e, b) => {
    ids.set(e.inputIds.subarray(0, seq), b * seq);
    for (let t = 0; t + 1 < e.inputIds.length; t++) {
      const label = e.labels[t + 1]!;
      if (label !== IGNORE_INDEX) {
        rows.push(b * seq + t);
        targets.push(label);
      }
    }
  });
  return { ids, batch: examples.length, seq, rows: Int32Array.from(rows), targets: Int32Array.from(targets) };
}

/**
 * Sum of the token losses of `examples` times `weight`; with `grads`, adds the adapter's gradients
 * (in PEFT layout, one array per adapter parameter) into them. `dropoutRng` turns LoRA dropout on.
 */
export function lossAndGrads(model: TfLlama, adapter: LoraAdapter, examples: readonly SftExample[], weight: number, padId: number, grads?: Float32Array[], dropoutRng?: Rng): number {
  const b = padBatch(examples, padId);
  if (b.rows.length === 0) return 0;
  return tf.tidy(() => {
    const lossFn = (): tf.Scalar => model.loss(b.ids, b.batch, b.seq, b.rows, b.targets, weight, adapter);
    if (!grads) return lossFn().dataSync()[0]!;
    adapter.dropoutRng = dropoutRng;
    try {
      const vars = adapter.parameters.map((p) => p.variable);
      const { value, grads: g } = tf.variableGrads(lossFn, vars);
      const loss = value.dataSync()[0]!;
      if (!Number.isFinite(loss)) return loss;
      adapter.parameters.forEach((p, i) => {
        const d = g[p.variable.name]!.dataSync();
        const acc = grads[i]!;
        for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + d[j]!;
      });
      return loss;
    } finally {
      adapter.dropoutRng = undefined;
    }
  });
}
