/**
 * The decoder's JavaScript kernels: the path without WebAssembly SIMD (weights read in place, sums in
 * float64), and the small element-wise steps both paths share (RMSNorm, RoPE, SwiGLU, residuals).
 */
/** y[b*d + i] = sum_j w[i*n + j] x[b*n + j] for b < rows: W [d, n] row-major, four rows of W per pass. */
export function matmul(y: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number, rows = 1): void {
  let i = 0;
  for (; i + 4 <= d; i += 4) {
    const r0 = i * n;
    const r1 = r0 + n;
    const r2 = r1 + n;
    const r3 = r2 + n;
    for (let b = 0; b < rows; b++) {
      const xo = b * n;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let j = 0; j < n; j++) {
        const xv = x[xo + j]!;
        s0 += w[r0 + j]! * xv;
        s1 += w[r1 + j]! * xv;
        s2 += w[r2 + j]! * xv;
        s3 += w[r3 + j]! * xv;
      }
      const yo = b * d + i;
      y[yo] = s0;
      y[yo + 1] = s1;
      y[yo + 2] = s2;
      y[yo + 3] = s3;
    }
  }
  for (; i < d; i++) {
    const r0 = i * n;
    for (let b = 0; b < rows; b++) {
      const xo = b * n;
      let s0 = 0;
      for (let j = 0; j < n; j++) s0 += w[r0 + j]! * x[xo + j]!;
      y[b * d + i] = s0;
    }
  }
}

export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, dim: number, rows: number, eps: number): void {
  for (let b = 0; b < rows; b++) {
    const o = b * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j]! * x[o + j]!;
    const scale = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[o + j] = weight[j]! * (scale * x[o + j]!);
  }
}

/** x[b*n + i] += bias[i] for every row b (Qwen2's q/k/v projection biases). */
export function addBias(x: Float32Array, bias: Float32Array, n: number, rows: number): void {
  for (let b = 0; b < rows; b++) for (let i = 0; i < n; i++) x[b * n + i] += bias[i]!;
}

export function addInto(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i]!;
}

export function copy(dst: Float32Array, at: number, src: Float32Array, from: number, n: number): void {
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i]!;
}

/** silu(gate) * up, in place in gate. */
export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

/**
 * One head's causal attention for one row: softmax(q.k * scale) over positions 0..pos, times v, into
 * out[qo..]. Keys and values of one kv head are contiguous [pos][headSize] (see KvCache), so four
 * positions share each q load, and the value pass runs over positions in the inner loop: head sizes
 * are small (8 to 128) and long inner loops are what the JIT makes fast.
 */
export function attend(
  out: Float32Array,
  q: Float32Array,
  qo: number,
  keys: Float32Array,
  values: Float32Array,
  ko: number,
  pos: number,
  hs: number,
  scale: number,
  att: Float64Array,
): void {
  const n = pos + 1;
  let max = -Infinity;
  let t = 0;
  for (; t + 4 <= n; t += 4) {
    const k0 = ko + t * hs;
    const k1 = k0 + hs;
    const k2 = k1 + hs;
    const k3 = k2 + hs;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < hs; i++) {
      const qi = q[qo + i]!;
      s0 += qi * keys[k0 + i]!;
      s1 += qi * keys[k1 + i]!;
      s2 += qi * keys[k2 + i]!;
      s3 += qi * keys[k3 + i]!;
    }
    s0 *= scale;
    s1 *= scale;
    s2 *= scale;
    s3 *= scale;
    att[t] = s0;
    att[t + 1] = s1;
    att[t + 2] = s2;
    att[t + 3] = s3;
    max = Math.max(max, s0, s1, s2, s3);
  }
  for (; t < n; t++) {
    const k0 = ko + t * hs;
    let s0 = 0;
    for (let i = 0; i < hs; i++) s0 += q[qo + i]! * keys[k0 + i]!;
    s0 *= scale;
    att[t] = s0;
    if (s0 > max) max = s0;
  }
  let sum = 0;
  for (let t = 0; t < n; t++) {
    const e = Math.exp(att[t]! - max);
    att[t] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < hs; i++) {
    let a0 = 0;
    let a1 = 0;
    let t = 0;
    let vt = ko + i;
    for (; t + 2 <= n; t += 2, vt += 2 * hs) {
      a0 += att[t]! * values[vt]!;
      a1 += att[t + 1]! * values[vt + hs]!;
    }
    if (t < n) a0 += att[t]! * values[vt]!;
    out[qo + i] = (a0 + a1) * inv;
  }
}

export function rope(vec: Float32Array, o: number, cos: Float32Array, sin: Float32Array, to: number, half: number, interleaved: boolean): void {
  if (interleaved) {
    for (let j = 0; j < half; j++) {
      const fc = cos[to + j]!;
      const fs = sin[to + j]!;
      const v0 = vec[o + 2 * j]!;
      const v1 = vec[o + 2 * j + 1]!;
      vec[o + 2 * j] = v0 * fc - v1 * fs;
      vec[o + 2 * j + 1] = v0 * fs + v1 * fc;
    }
  } else {
    for (let j = 0; j < half; j++) {
      const fc = cos[to + j]!;
      const fs = sin[to + j]!;
      const v0 = vec[o + j]!;
      const v1 = vec[o + j + half]!;
      vec[o + j] = v0 * fc - v1 * fs;
      vec[o + j + half] = v0 * fs + v1 * fc;
    }
  }
}
