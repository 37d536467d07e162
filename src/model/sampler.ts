/**
 * run.c's sampler, ported so that a seed gives the same tokens as llama2.c: the xorshift* generator on
 * a 64-bit state (BigInt, exact), temperature, softmax, top-p with run.c's (1-p)/(n-1) pre-filter and
 * descending sort, and multinomial sampling. Arithmetic is rounded to float32 where run.c uses float,
 * so that cumulative sums cross the coin at the same index.
 */

const MASK64 = (1n << 64n) - 1n;
const MULT = 0x2545f4914f6cdd1dn;
const f = Math.fround;

/** run.c's random_u32 / random_f32 (xorshift*), state a uint64. */
export class XorShiftRng {
  state: bigint;
  constructor(seed: bigint | number) {
    // run.c reads the seed with atoi into an unsigned long long: negatives wrap around.
    this.state = BigInt.asUintN(64, BigInt(seed));
  }
  nextU32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s = (s ^ (s << 25n)) & MASK64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * MULT) & MASK64) >> 32n);
  }
  /** Uniform in [0, 1) with 24 bits, as random_f32. */
  nextF32(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }
}

export interface SamplerOptions {
  vocabSize: number;
  /** 0 means greedy argmax. */
  temperature: number;
  /** Nucleus threshold; values <= 0 or >= 1 sample from the full distribution, as run.c. */
  topP: number;
  seed: bigint | number;
}

/** First index of the largest value (run.c's sample_argmax). */
export function argmax(values: ArrayLike<number>, n = values.length): number {
  let best = 0;
  let max = values[0]!;
  for (let i = 1; i < n; i++) {
    if (values[i]! > max) {
      max = values[i]!;
      best = i;
    }
  }
  return best;
}

/** In-place float32 softmax of x[0..n), as run.c's softmax. */
export function softmaxF32(x: Float32Array, n = x.length): void {
  let max = x[0]!;
  for (let i = 1; i < n; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = f(Math.exp(f(x[i]! - max)));
    x[i] = e;
    sum = f(sum + e);
  }
  for (let i = 0; i < n; i++) x[i] = f(x[i]! / sum);
}

export class Sampler {
  readonly rng: XorShiftRng;
  readonly temperature: number;
  readonly topP: number;
  private readonly probs: Float32Array;
  private readonly order: number[] = [];

  constructor(readonly options: SamplerOptions) {
    if (!(options.temperature >= 0)) throw new RangeError(`temperature must be >= 0, got ${options.temperature}`);
    if (!(options.topP >= 0 && options.topP <= 1)) throw new RangeError(`top-p must be in [0, 1], got ${options.topP}`);
    this.temperature = f(options.temperature);
    this.topP = f(options.topP);
    this.rng = new XorShiftRng(options.seed);
    // xorshift never leaves state 0 (run.c swaps a 0 seed for the clock): every coin would be 0.
    if (this.rng.state === 0n && this.temperature !== 0) throw new RangeError("seed 0 leaves run.c's xorshift generator stuck at 0; use a nonzero seed");
    this.probs = new Float32Array(options.vocabSize);
  }

  /** The next token from `logits` (not modified). */
  sample(logits: Float32Array): number {
    const n = this.options.vocabSize;
    if (this.temperature === 0) return argmax(logits, n);
    const p = this.probs;
    for (let i = 0; i < n; i++) p[i] = f(logits[i]! / this.temperature);
    softmaxF32(p, n);
    const coin = this.rng.nextF32();
    if (this.topP <= 0 || this.topP >= 1) return sampleMult(p, n, coin);
    return this.sampleTopP(p, n, coin);
  }

  private sampleTopP(p: Float32Array, n: number, coin: number): number {
    const cutoff = f(f(1 - this.topP) / (n - 1));
    const order = this.order;
    order.length = 0;
    for (let i = 0; i < n; i++) if (p[i]! >= cutoff) order.push(i);
    // glibc's qsort is a merge sort here, so equal probabilities keep index order, as Array.sort does.
    order.sort((a, b) => p[b]! - p[a]!);
    let cumulative = 0;
    let last = order.length - 1;
    for (let i = 0; i < order.length; i++) {
      cumulative = f(cumulative + p[order[i]!]!);
      if (cumulative > this.topP) {
        last = i;
        break;
      }
    }
    const r = f(coin * cumulative);
    let cdf = 0;
    for (let i = 0; i <= last; i++) {
      cdf = f(cdf + p[order[i]!]!);
      if (r < cdf) return order[i]!;
    }
    return order[last]!;
  }
}

function sampleMult(p: Float32Array, n: number, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < n; i++) {
    cdf = f(cdf + p[i]!);
    if (coin < cdf) return i;
  }
  return n - 1;
}
