/**
 * The model's ops on the native engine: each op is one tf.customGrad on the TF.js cpu backend whose
 * forward and backward call the C++ addon (native/, API in native/README.md) on the tensors' own
 * typed arrays. On the cpu backend `dataSync()` returns a tensor's backing Float32Array and
 * `tf.tensor(array, shape)` wraps an array without copying, so no values are copied between TF.js and
 * the addon; gradient functions close over plain arrays (never tensors, which the forward scope
 * disposes). Arrays handed to TF.js are never written afterwards, except variables, which the
 * optimizer updates in place (FullTrainer) between steps.
 */
import { tf } from "./backend.ts";
import type { NativeEngine } from "./native.ts";

/** The addon's API (native/README.md); src/model/native.ts is its TypeScript face. */
export type NativeApi = NativeEngine;

let api: NativeApi | undefined;

/**
 * Loads the addon (building it when the binary is missing, as src/model/native.ts does) and returns a
 * one-line description; throws with the reason when it cannot load.
 */
export async function loadNativeOps(): Promise<string> {
  if (!api) {
    const face = await import("./native.ts");
    api = face.requireNative();
  }
  const i = api.info();
  return `${i.simd}, ${i.threads} thread${i.threads === 1 ? "" : "s"}`;
}

/** Installs an implementation of the API directly (tests: a JS reference before the addon exists). */
export function setNativeApi(impl: NativeApi): void {
  api = impl;
}

let fastAdd = false;

/**
 * Replaces the cpu backend's Add for same-shape float32 tensors with a plain loop (the stock kernel
 * computes broadcast indices per element: 0.5 ms for a 512x64 add). The tape sums gradients with Add
 * wherever a tensor feeds two ops (the residual stream, a tied embedding): 11% of a native LoRA step on
 * stories260K went there. Other shapes and dtypes go to the stock kernel.
 */
export function installFastCpuAdd(): void {
  if (fastAdd) return;
  const stock = tf.getKernel("Add", "cpu");
  if (!stock) return;
  fastAdd = true;
  tf.unregisterKernel("Add", "cpu");
  tf.registerKernel({
    kernelName: "Add",
    backendName: "cpu",
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const same = a.dtype === "float32" && b.dtype === "float32" && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
      if (!same) return stock.kernelFunc(args);
      const backend = args.backend as unknown as { data: { get(id: unknown): { values: Float32Array } }; makeTensorInfo(shape: number[], dtype: string, values: Float32Array): tf.TensorInfo };
      const av = backend.data.get(a.dataId).values;
      const bv = backend.data.get(b.dataId).values;
      const out = new Float32Array(av.length);
      for (let i = 0; i < out.length; i++) out[i] = av[i]! + bv[i]!;
      return backend.makeTensorInfo(a.shape, "float32", out);
    },
  });
}

export function nativeApi(): NativeApi {
  if (!api) throw new Error("the native engine is not loaded (initBackend picked another engine)");
  return api;
}

const f32 = (t: tf.Tensor): Float32Array => t.dataSync() as Float32Array;
const t2 = (a: Float32Array, rows: number, cols: number): tf.Tensor2D => tf.tensor2d(a, [rows, cols]);
type Args = Array<tf.Tensor | tf.GradSaveFunc>;
const grad = (dy: tf.Tensor | tf.Tensor[]): Float32Array => f32(dy as tf.Tensor);

/**
 * y = x W^T (+ residual), W [out, in]. With `trainable`, the gradient of W is returned too (a new
 * array, so accumulation across uses is TF.js's own add).
 */
export function nLinear(x: tf.Tensor2D, w: tf.Tensor2D, trainable: boolean, residual?: tf.Tensor2D): tf.Tensor2D {
  const n = nativeApi();
  const [N, inp] = x.shape;
  const out = w.shape[0];
  // A frozen weight is read directly, not passed as an input: no zero gradient is made for it.
  const frozen = trainable ? undefined : f32(w);
  const f = tf.customGrad((...args: Args) => {
    const save = args.at(-1) as tf.GradSaveFunc;
    save([]);
    const xa = f32(args[0] as tf.Tensor);
    const wa = frozen ?? f32(args[1] as tf.Tensor);
    const y = residual ? Float32Array.from(f32(args[trainable ? 2 : 1] as tf.Tensor)) : new Float32Array(N * out);
    n.sgemm(false, true, N, out, inp, 1, xa, inp, wa, inp, residual ? 1 : 0, y, out);
    return {
      value: t2(y, N, out),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const d = grad(dy);
        const dx = new Float32Array(N * inp);
        n.sgemm(false, false, N, inp, out, 1, d, out, wa, inp, 0, dx, inp);
        const grads: tf.Tensor[] = [t2(dx, N, inp)];
        if (trainable) {
          const dw = new Float32Array(out * inp);
          n.sgemm(true, false, out, inp, N, 1, d, out, xa, inp, 0, dw, inp);
          grads.push(t2(dw, out, inp));
        }
        if (residual) grads.push(t2(d, N, out));
        return grads;
      },
    };
  });
  const inputs = [x, ...(trainable ? [w] : []), ...(residual ? [residual] : [])];
  return (f as (...t: tf.Tensor[]) => tf.Tensor)(...inputs) as tf.Tensor2D;
}

/**
 * y = x [W_1; W_2; ...]^T for frozen weights kept as separate [out_i, in] arrays (the model's own
 * wq, wk, wv or w1, w3: no stacked copy): each product writes its column block of y (ldc = total).
 */
export function nLinearParts(x: tf.Tensor2D, parts: readonly Float32Array[], outs: readonly number[]): tf.Tensor2D {
  const n = nativeApi();
  const [N, inp] = x.shape;
  const total = outs.reduce((a, b) => a + b, 0);
  const f = tf.customGrad((...args: Args) => {
    const [xt, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([]);
    const xa = f32(xt);
    const y = new Float32Array(N * total);
    let off = 0;
    parts.forEach((w, i) => {
      n.sgemm(false, true, N, outs[i]!, inp, 1, xa, inp, w, inp, 0, y.subarray(off), total);
      off += outs[i]!;
    });
    return {
      value: t2(y, N, total),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const d = grad(dy);
        const dx = new Float32Array(N * inp);
        let at = 0;
        parts.forEach((w, i) => {
          n.sgemm(false, false, N, inp, outs[i]!, 1, d.subarray(at), total, w, inp, i === 0 ? 0 : 1, dx, inp);
          at += outs[i]!;
        });
        return t2(dx, N, inp);
      },
    };
  });
  return f(x) as tf.Tensor2D;
}

/** A LoRA term of a fused projection: scale * (x A^T) B^T into columns [offset, offset + rows of B). */
export interface NativeLowRank {
  a: tf.Tensor2D;
  b: tf.Tensor2D;
  scale: number;
  offset: number;
}

/**
 * One op for a projection and its LoRA terms: y = (residual +) x W^T + sum_i scale_i (x A_i^T) B_i^T,
 * W frozen (stacked `parts`, or `w`) or trainable (`w`, then its gradient too). Against separate ops
 * it saves a copy of y per adapter on the way in and a JS add of dx per adapter on the way back (the
 * low-rank products accumulate into dx with beta = 1).
 */
export function nProject(x: tf.Tensor2D, weight: { w?: tf.Tensor2D; parts?: { arrays: readonly Float32Array[]; outs: readonly number[] } }, trainable: boolean, loras: readonly NativeLowRank[], residual?: tf.Tensor2D): tf.Tensor2D {
  const n = nativeApi();
  const [N, inp] = x.shape;
  const parts = weight.parts ?? { arrays: [] as Float32Array[], outs: [weight.w!.shape[0]] };
  const total = parts.outs.reduce((a, b) => a + b, 0);
  const frozenW = !trainable && !weight.parts ? f32(weight.w!) : undefined;
  const f = tf.customGrad((...args: Args) => {
    const save = args.at(-1) as tf.GradSaveFunc;
    save([]);
    let k = 0;
    const xa = f32(args[k++] as tf.Tensor);
    const wa = trainable ? f32(args[k++] as tf.Tensor) : frozenW;
    const res = residual ? f32(args[k++] as tf.Tensor) : undefined;
    const fac = loras.map(() => ({ a: f32(args[k++] as tf.Tensor), b: f32(args[k++] as tf.Tensor) }));
    const y = res ? Float32Array.from(res) : new Float32Array(N * total);
    const beta = res ? 1 : 0;
    if (wa) n.sgemm(false, true, N, total, inp, 1, xa, inp, wa, inp, beta, y, total);
    else {
      let off = 0;
      parts.arrays.forEach((w, i) => {
        n.sgemm(false, true, N, parts.outs[i]!, inp, 1, xa, inp, w, inp, beta, y.subarray(off), total);
        off += parts.outs[i]!;
      });
    }
    const lows = loras.map((l, i) => {
      const r = l.a.shape[0];
      const out = l.b.shape[0];
      const low = new Float32Array(N * r);
      n.sgemm(false, true, N, r, inp, 1, xa, inp, fac[i]!.a, inp, 0, low, r);
      n.sgemm(false, true, N, out, r, l.scale, low, r, fac[i]!.b, r, 1, y.subarray(l.offset), total);
      return low;
    });
    return {
      value: t2(y, N, total),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const d = grad(dy);
        const dx = new Float32Array(N * inp);
        if (wa) n.sgemm(false, false, N, inp, total, 1, d, total, wa, inp, 0, dx, inp);
        else {
          let at = 0;
          parts.arrays.forEach((w, i) => {
            n.sgemm(false, false, N, inp, parts.outs[i]!, 1, d.subarray(at), total, w, inp, i === 0 ? 0 : 1, dx, inp);
            at += parts.outs[i]!;
          });
        }
        const grads: tf.Tensor[] = [];
        if (trainable) {
          const dw = new Float32Array(total * inp);
          n.sgemm(true, false, total, inp, N, 1, d, total, xa, inp, 0, dw, inp);
          grads.push(t2(dw, total, inp));
        }
        if (residual) grads.push(t2(d, N, total));
        loras.forEach((l, i) => {
          const r = l.a.shape[0];
          const out = l.b.shape[0];
          const view = d.subarray(l.offset);
          const db = new Float32Array(out * r);
          n.sgemm(true, false, out, r, N, l.scale, view, total, lows[i]!, r, 0, db, r);
          const dLow = new Float32Array(N * r);
          n.sgemm(false, false, N, r, out, l.scale, view, total, fac[i]!.b, r, 0, dLow, r);
          const da = new Float32Array(r * inp);
          n.sgemm(true, false, r, inp, N, 1, dLow, r, xa, inp, 0, da, inp);
          n.sgemm(false, false, N, inp, r, 1, dLow, r, fac[i]!.a, inp, 1, dx, inp);
          grads.push(t2(da, r, inp), t2(db, out, r));
        });
        return [t2(dx, N, inp), ...grads];
      },
    };
  });
  const inputs: tf.Tensor[] = [x, ...(trainable ? [weight.w!] : []), ...(residual ? [residual] : []), ...loras.flatMap((l) => [l.a, l.b])];
  return (f as (...t: tf.Tensor[]) => tf.Tensor)(...inputs) as tf.Tensor2D;
}

/** y with scale * (x A^T) B^T added at columns [offset, offset + out) of y's rows: a LoRA term into a fused projection. */
export function nLoraInto(y: tf.Tensor2D, x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, scale: number, offset: number): tf.Tensor2D {
  const n = nativeApi();
  const [N, total] = y.shape;
  const inp = x.shape[1];
  const [r] = a.shape;
  const out = b.shape[0];
  const f = tf.customGrad((...args: Args) => {
    const [yt, xt, at, bt, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    save([]);
    const xa = f32(xt);
    const aa = f32(at);
    const ba = f32(bt);
    const low = new Float32Array(N * r);
    n.sgemm(false, true, N, r, inp, 1, xa, inp, aa, inp, 0, low, r);
    const res = Float32Array.from(f32(yt));
    n.sgemm(false, true, N, out, r, scale, low, r, ba, r, 1, res.subarray(offset), total);
    return {
      value: t2(res, N, total),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const d = grad(dy);
        const view = d.subarray(offset);
        const db = new Float32Array(out * r);
        n.sgemm(true, false, out, r, N, scale, view, total, low, r, 0, db, r);
        const dLow = new Float32Array(N * r);
        n.sgemm(false, false, N, r, out, scale, view, total, ba, r, 0, dLow, r);
        const da = new Float32Array(r * inp);
        n.sgemm(true, false, r, inp, N, 1, dLow, r, xa, inp, 0, da, inp);
        const dx = new Float32Array(N * inp);
        n.sgemm(false, false, N, inp, r, 1, dLow, r, aa, inp, 0, dx, inp);
        return [t2(d, N, total), t2(dx, N, inp), t2(da, r, inp), t2(db, out, r)];
      },
    };
  });
  return f(y, x, a, b) as tf.Tensor2D;
}

export function nRmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const n = nativeApi();
  const [N, D] = x.shape;
  const f = tf.customGrad((...args: Args) => {
    const [xt, wt, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
    save([]);
    const xa = f32(xt);
    const wa = f32(wt);
    const y = new Float32Array(N * D);
    const rstd = new Float32Array(N);
    n.rmsnormForward(xa, wa, N, D, eps, y, rstd);
    return {
      value: t2(y, N, D),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const dx = new Float32Array(N * D);
        const dw = new Float32Array(D);
        n.rmsnormBackward(grad(dy), xa, wa, rstd, N, D, dx, dw);
        return [t2(dx, N, D), tf.tensor1d(dw)];
      },
    };
  });
  return f(x, w) as tf.Tensor2D;
}

export function nSwiglu(gu: tf.Tensor2D): tf.Tensor2D {
  const n = nativeApi();
  const [N, F2] = gu.shape;
  const F = F2 / 2;
  const f = tf.customGrad((...args: Args) => {
    const [gt, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([]);
    const ga = f32(gt);
    const h = new Float32Array(N * F);
    n.swigluForward(ga, N, F, h);
    return {
      value: t2(h, N, F),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const dgu = new Float32Array(N * F2);
        n.swigluBackward(grad(dy), ga, N, F, dgu);
        return t2(dgu, N, F2);
      },
    };
  });
  return f(gu) as tf.Tensor2D;
}

/** Rows `ids` of the table; with `trainable`, the table's gradient is the scatter-add of dy. */
export function nEmbed(table: tf.Tensor2D, ids: Int32Array, trainable: boolean): tf.Tensor2D {
  const n = nativeApi();
  const [V, D] = table.shape;
  const N = ids.length;
  if (!trainable) {
    const out = new Float32Array(N * D);
    n.embeddingForward(f32(table), ids, N, D, V, out);
    return t2(out, N, D);
  }
  const f = tf.customGrad((...args: Args) => {
    const [tt, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([]);
    const out = new Float32Array(N * D);
    n.embeddingForward(f32(tt), ids, N, D, V, out);
    return {
      value: t2(out, N, D),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const dt = new Float32Array(V * D);
        n.embeddingBackward(grad(dy), ids, N, D, V, dt);
        return t2(dt, V, D);
      },
    };
  });
  return f(table) as tf.Tensor2D;
}

/** Rows of a [N, D] tensor (the positions a loss scores), with the scatter gradient. */
export function nSelectRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const [N, D] = x.shape;
  const R = rows.length;
  const f = tf.customGrad((...args: Args) => {
    const [xt, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([]);
    const xa = f32(xt);
    const out = new Float32Array(R * D);
    for (let i = 0; i < R; i++) out.set(xa.subarray(rows[i]! * D, rows[i]! * D + D), i * D);
    return {
      value: t2(out, R, D),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const d = grad(dy);
        const dx = new Float32Array(N * D);
        for (let i = 0; i < R; i++) {
          const at = rows[i]! * D;
          for (let j = 0; j < D; j++) dx[at + j] = dx[at + j]! + d[i * D + j]!;
        }
        return t2(dx, N, D);
      },
    };
  });
  return f(x) as tf.Tensor2D;
}

export interface NativeAttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  cos: Float32Array;
  sin: Float32Array;
  ropeStyle: 0 | 1;
}

/** Causal GQA attention with RoPE from the fused projection qkv [N, (H + 2 KV) hs] to [N, H hs]. */
export function nAttention(qkv: tf.Tensor2D, s: NativeAttentionShape): tf.Tensor2D {
  const n = nativeApi();
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: hd } = s;
  const N = B * T;
  const qd = H * hd;
  const kd = KV * hd;
  const width = qd + 2 * kd;
  const f = tf.customGrad((...args: Args) => {
    const [xt, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([]);
    // q, k and v are strided views of the fused projection: no split copy, and the gradient is one dqkv.
    const all = f32(xt);
    const q = all;
    const k = all.subarray(qd);
    const v = all.subarray(qd + kd);
    const out = new Float32Array(N * qd);
    const lse = new Float32Array(B * H * T);
    n.attentionForward(q, k, v, B, T, H, KV, hd, s.cos, s.sin, s.ropeStyle, out, lse, width, width);
    return {
      value: t2(out, N, qd),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const d = new Float32Array(N * width);
        n.attentionBackward(grad(dy), q, k, v, out, lse, B, T, H, KV, hd, s.cos, s.sin, s.ropeStyle, d, d.subarray(qd), d.subarray(qd + kd), width, width);
        return t2(d, N, width);
      },
    };
  });
  return f(qkv) as tf.Tensor2D;
}

/**
 * weight * (sum of token losses) of logits h W^T at the scored rows of h, fused: the logits and their
 * gradient share one [R, V] array (the cross-entropy writes the gradient over the logits), which
 * the backward multiplies out into dh and (when trainable) dW.
 */
export function nHeadLoss(h: tf.Tensor2D, w: tf.Tensor2D, targets: Int32Array, weight: number, trainable: boolean): tf.Scalar {
  const n = nativeApi();
  const [R, D] = h.shape;
  const V = w.shape[0];
  if (targets.length !== R) throw new Error(`headLoss: ${targets.length} targets for ${R} rows`);
  const frozen = trainable ? undefined : f32(w);
  const f = tf.customGrad((...args: Args) => {
    const save = args.at(-1) as tf.GradSaveFunc;
    save([]);
    const ha = f32(args[0] as tf.Tensor);
    const wa = frozen ?? f32(args[1] as tf.Tensor);
    const logits = new Float32Array(R * V);
    n.sgemm(false, true, R, V, D, 1, ha, D, wa, D, 0, logits, V);
    const loss = n.crossEntropy(logits, targets, R, V, weight, logits);
    return {
      value: tf.scalar(loss),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        // dy is the scalar seed (1 for a loss); the stored gradient already carries `weight`.
        const k = grad(dy)[0]!;
        const dh = new Float32Array(R * D);
        n.sgemm(false, false, R, D, V, k, logits, V, wa, D, 0, dh, D);
        if (!trainable) return [t2(dh, R, D)];
        const g = new Float32Array(V * D);
        n.sgemm(true, false, V, D, R, k, logits, V, ha, D, 0, g, D);
        return [t2(dh, R, D), t2(g, V, D)];
      },
    };
  });
  return (trainable ? f(h, w) : f(h)) as tf.Scalar;
}
