import { tf } from "./backend.ts";

/**
 * TF.js building blocks with hand-written gradients, chosen for the wasm backend: it lacks gather's
 * gradient (UnsortedSegmentSum) and runs matMuls with a transpose flag on a slow path.
 */

/**
 * A frozen weight kept in both layouts: [in, out] for the forward product and [out, in] for the input
 * gradient. On the wasm backend a matMul with a transpose flag runs 7-10x slower than a plain one (it
 * takes a slow non-XNNPACK path), and autodiff of x @ W would use one in the backward pass.
 */
export class FrozenLinear {
  readonly wt: tf.Tensor2D;
  readonly w: tf.Tensor2D;
  constructor(w: Float32Array, out: number, inp: number) {
    this.w = tf.tensor2d(w, [out, inp]);
    this.wt = tf.tidy(() => tf.transpose(this.w)) as tf.Tensor2D;
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [input, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
      save([]);
      return { value: tf.matMul(input, this.wt), gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.matMul(dy as tf.Tensor2D, this.w) };
    });
    return f(x) as tf.Tensor2D;
  }

  dispose(): void {
    this.w.dispose();
    this.wt.dispose();
  }
}

/**
 * Rows (flat positions) whose logits a loss needs, picked with a gradient that works on every backend.
 * Index tensors are made from the array inside each half: tensors a gradient function closes over
 * would be disposed when the forward pass's scope ends.
 */
export function selectRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const [n, d] = x.shape;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([]);
    return {
      value: tf.gather(input, tf.tensor1d(rows, "int32")),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.scatterND(tf.tensor2d(rows, [rows.length, 1], "int32"), dy as tf.Tensor, [n, d]),
    };
  });
  return f(x) as tf.Tensor2D;
}

/**
 * Mean cross-entropy over the given targets from logits [N, V], with the gradient written out
 * (softmax - onehot) instead of through gather's gradient, which the wasm backend lacks.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array, weight: number): tf.Scalar {
  const [n, v] = logits.shape;
  if (targets.length !== n) throw new Error(`crossEntropy: ${targets.length} targets for ${n} rows`);
  const flat = new Int32Array(n);
  const pairs = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    flat[i] = i * v + targets[i]!;
    pairs[2 * i] = i;
    pairs[2 * i + 1] = targets[i]!;
  }
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const lse = tf.logSumExp(input, 1);
    const picked = tf.gather(tf.reshape(input, [-1]), tf.tensor1d(flat, "int32"));
    save([input, lse]);
    return {
      value: tf.mul(tf.sum(tf.sub(lse, picked)), weight),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [x, s] = saved as [tf.Tensor2D, tf.Tensor1D];
        const probs = tf.exp(tf.sub(x, tf.reshape(s, [-1, 1])));
        const onehot = tf.scatterND(tf.tensor2d(pairs, [n, 2], "int32"), tf.ones([n]), [n, v]);
        return tf.mul(tf.sub(probs, onehot), tf.mul(dy as tf.Tensor, weight));
      },
    };
  });
  return f(logits) as tf.Scalar;
}

/** Swaps the last two axes. */
export const swapLast = (x: tf.Tensor): tf.Tensor => tf.transpose(x, [...Array.from({ length: x.rank - 2 }, (_, i) => i), x.rank - 1, x.rank - 2]);

/**
 * a @ b with every product, forward and backward, done untransposed: the wasm backend's batched
 * matmul is about 10 times slower with transposeA/transposeB set than on explicitly transposed inputs
 * (measured: 768x128 by 128x384 in 223 ms against 20 ms plus a 4 ms transpose), and tf.matMul's own
 * gradient uses the transposed forms.
 */
export function mm(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, y, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([x, y]);
    return {
      value: tf.matMul(x, y),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, sy] = saved as [tf.Tensor, tf.Tensor];
        return [tf.matMul(dy as tf.Tensor, swapLast(sy)), tf.matMul(swapLast(sx), dy as tf.Tensor)];
      },
    };
  });
  return f(a, b);
}

/** x [N, in] times a trainable weight stored [out, in], as x W^T. */
export const linearT = (x: tf.Tensor, w: tf.Tensor): tf.Tensor2D => mm(x, tf.transpose(w)) as tf.Tensor2D;

/** Float32Arrays laid end to end in one new array. */
export function concatFloat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
