/**
 * Causal grouped-query attention with RoPE as one fused typed-array kernel, forward and backward, for
 * the CPU-side TF.js backends (wasm, cpu). There, batched matMul over [B, heads] runs at a fraction of
 * the 2-D speed, and the graph version needs ~20 small ops per layer (rope, transposes, mask, softmax);
 * here it is one pass that also skips the masked half of the scores. The backward recomputes the
 * probabilities from the saved row log-sum-exp (as flash attention does) instead of storing them.
 *
 * Layouts are the projections' own: q [N, H*hs], k and v [N, KV*hs], N = batch*seq rows, row n at
 * position n % seq. Query head h reads kv head floor(h / (H/KV)).
 */
export interface AttentionShape {
  readonly batch: number;
  readonly seq: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

export interface RopeTable {
  /** [seq, hs]: each pair's angle at both members' slots. */
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  /** partner[d] = the other member of d's pair; sign[d] = -1 for the first member, +1 for the second. */
  readonly partner: Int32Array;
  readonly sign: Float32Array;
}

/** x (rows of `heads` heads) rotated in place by position. */
function rope(x: Float32Array, s: AttentionShape, heads: number, t: RopeTable, transpose: boolean): void {
  const hs = s.headDim;
  const tmp = new Float32Array(hs);
  for (let n = 0; n < s.batch * s.seq; n++) {
    const pos = n % s.seq;
    const cos = pos * hs;
    for (let h = 0; h < heads; h++) {
      const base = (n * heads + h) * hs;
      for (let d = 0; d < hs; d++) tmp[d] = x[base + d]!;
      for (let d = 0; d < hs; d++) {
        const p = t.partner[d]!;
        // forward: out[d] = x[d] cos + sign[d] x[p] sin; transpose: dx[d] = dy[d] cos - sign[d] dy[p] sin (sin equal in a pair).
        x[base + d] = tmp[d]! * t.cos[cos + d]! + (transpose ? -1 : 1) * t.sign[d]! * tmp[p]! * t.sin[cos + p]!;
      }
    }
  }
}

export interface AttentionForward {
  readonly out: Float32Array;
  /** Saved for the backward pass: rotated q and k and v, head-major ([B, heads, T, hs]), and each row's log-sum-exp. */
  readonly qh: Float32Array;
  readonly kh: Float32Array;
  readonly vh: Float32Array;
  readonly oh: Float32Array;
  readonly lse: Float32Array;
}

/** [B*T, heads*hs] -> [B, heads, T, hs], so each head's rows are contiguous for the inner loops. */
function toHeadMajor(x: Float32Array, B: number, T: number, heads: number, hs: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < heads; h++) {
        const src = ((b * T + t) * heads + h) * hs;
        out.set(x.subarray(src, src + hs), ((b * heads + h) * T + t) * hs);
      }
  return out;
}

function fromHeadMajor(x: Float32Array, B: number, T: number, heads: number, hs: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < T; t++) {
        const src = ((b * heads + h) * T + t) * hs;
        out.set(x.subarray(src, src + hs), ((b * T + t) * heads + h) * hs);
      }
  return out;
}

export function attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, s: AttentionShape, t: RopeTable): AttentionForward {
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: hs } = s;
  const g = H / KV;
  const scale = 1 / Math.sqrt(hs);
  const qr = Float32Array.from(q);
  const kr = Float32Array.from(k);
  rope(qr, s, H, t, false);
  rope(kr, s, KV, t, false);
  const qh = toHeadMajor(qr, B, T, H, hs);
  const kh = toHeadMajor(kr, B, T, KV, hs);
  const vh = toHeadMajor(v, B, T, KV, hs);
  const oh = new Float32Array(qh.length);
  const lse = new Float32Array(B * H * T);
  const scores = new Float32Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kBase = (b * KV + Math.floor(h / g)) * T * hs;
      for (let i = 0; i < T; i++) {
        const qo = ((b * H + h) * T + i) * hs;
        let max = -Infinity;
        for (let j = 0, ko = kBase; j <= i; j++, ko += hs) {
          let dot = 0;
          for (let d = 0; d < hs; d += 4) dot += qh[qo + d]! * kh[ko + d]! + qh[qo + d + 1]! * kh[ko + d + 1]! + qh[qo + d + 2]! * kh[ko + d + 2]! + qh[qo + d + 3]! * kh[ko + d + 3]!;
          dot *= scale;
          scores[j] = dot;
          if (dot > max) max = dot;
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          const e = Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let j = 0, vo = kBase; j <= i; j++, vo += hs) {
          const p = scores[j]! * inv;
          for (let d = 0; d < hs; d += 4) {
            oh[qo + d] = oh[qo + d]! + p * vh[vo + d]!;
            oh[qo + d + 1] = oh[qo + d + 1]! + p * vh[vo + d + 1]!;
            oh[qo + d + 2] = oh[qo + d + 2]! + p * vh[vo + d + 2]!;
            oh[qo + d + 3] = oh[qo + d + 3]! + p * vh[vo + d + 3]!;
          }
        }
        lse[(b * H + h) * T + i] = max + Math.log(sum);
      }
    }
  }
  return { out: fromHeadMajor(oh, B, T, H, hs), qh, kh, vh, oh, lse };
}

export function attentionBackward(dOut: Float32Array, saved: AttentionForward, s: AttentionShape, t: RopeTable): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: hs } = s;
  const { qh, kh, vh, oh, lse } = saved;
  const g = H / KV;
  const scale = 1 / Math.sqrt(hs);
  const doh = toHeadMajor(dOut, B, T, H, hs);
  const dqh = new Float32Array(qh.length);
  const dkh = new Float32Array(kh.length);
  const dvh = new Float32Array(vh.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kBase = (b * KV + Math.floor(h / g)) * T * hs;
      for (let i = 0; i < T; i++) {
        const qo = ((b * H + h) * T + i) * hs;
        const rowLse = lse[(b * H + h) * T + i]!;
        // sum_j p_j dP_j = dO . O, so the softmax backward needs no second pass over j.
        let dOdotO = 0;
        for (let d = 0; d < hs; d++) dOdotO += doh[qo + d]! * oh[qo + d]!;
        for (let j = 0, ko = kBase; j <= i; j++, ko += hs) {
          let dot = 0;
          let dP = 0;
          for (let d = 0; d < hs; d += 4) {
            dot += qh[qo + d]! * kh[ko + d]! + qh[qo + d + 1]! * kh[ko + d + 1]! + qh[qo + d + 2]! * kh[ko + d + 2]! + qh[qo + d + 3]! * kh[ko + d + 3]!;
            dP += doh[qo + d]! * vh[ko + d]! + doh[qo + d + 1]! * vh[ko + d + 1]! + doh[qo + d + 2]! * vh[ko + d + 2]! + doh[qo + d + 3]! * vh[ko + d + 3]!;
          }
          const p = Math.exp(dot * scale - rowLse);
          const ds = p * (dP - dOdotO) * scale;
          for (let d = 0; d < hs; d++) {
            const kd = ko + d;
            const qd = qo + d;
            dvh[kd] = dvh[kd]! + p * doh[qd]!;
            dqh[qd] = dqh[qd]! + ds * kh[kd]!;
            dkh[kd] = dkh[kd]! + ds * qh[qd]!;
          }
        }
      }
    }
  }
  const dq = fromHeadMajor(dqh, B, T, H, hs);
  const dk = fromHeadMajor(dkh, B, T, KV, hs);
  rope(dq, s, H, t, true);
  rope(dk, s, KV, t, true);
  return { dq, dk, dv: fromHeadMajor(dvh, B, T, KV, hs) };
}
