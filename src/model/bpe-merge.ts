/**
 * run.c's BPE merge loop (merge the adjacent pair whose merged piece scores best, the leftmost on ties,
 * until no pair scores above float32(-1e10)) in O(n log n) instead of O(n^2): the tokens form a doubly
 * linked list, and the candidate pairs a binary heap ordered by (score descending, left position
 * ascending), as llama.cpp's and Hugging Face tokenizers' BPE do. An entry whose side has merged since it
 * was pushed is skipped when popped; a surviving entry always describes a current pair, so the pop order
 * is exactly run.c's choice. `run(deadline)` stops early so that a caller can yield to its event loop.
 */
const FLOOR = Math.fround(-1e10);

export class BpeMerge {
  private readonly tok: Int32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly alive: Uint8Array;
  // Heap entries: score, left node, right node, the two token ids when pushed, the merged id.
  private eScore: Float64Array;
  private eInts: Int32Array;
  private entries = 0;
  private heap: Int32Array;
  private size = 0;
  private finished = false;
  /** Initial pairs pushed so far (run() pushes them before merging, under its deadline too). */
  private built = 0;

  constructor(
    tokens: readonly number[],
    /** The id of the piece a+b, or -1 when the vocabulary has none. */
    private readonly pairOf: (a: number, b: number) => number,
    private readonly scores: Float32Array,
  ) {
    const n = tokens.length;
    this.tok = Int32Array.from(tokens);
    this.next = new Int32Array(n);
    this.prev = new Int32Array(n);
    this.alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      this.next[i] = i + 1 < n ? i + 1 : -1;
      this.prev[i] = i - 1;
    }
    const capacity = Math.max(16, 2 * n);
    this.eScore = new Float64Array(capacity);
    this.eInts = new Int32Array(capacity * 5);
    this.heap = new Int32Array(capacity);
  }

  private push(left: number, right: number): void {
    const a = this.tok[left]!;
    const b = this.tok[right]!;
    const id = this.pairOf(a, b);
    if (id < 0) return;
    const score = this.scores[id]!;
    if (!(score > FLOOR)) return;
    if (this.entries === this.eScore.length) {
      const grown = new Float64Array(this.entries * 2);
      grown.set(this.eScore);
      this.eScore = grown;
      const ints = new Int32Array(this.entries * 10);
      ints.set(this.eInts);
      this.eInts = ints;
    }
    const e = this.entries++;
    this.eScore[e] = score;
    const at = e * 5;
    this.eInts[at] = left;
    this.eInts[at + 1] = right;
    this.eInts[at + 2] = a;
    this.eInts[at + 3] = b;
    this.eInts[at + 4] = id;
    if (this.size === this.heap.length) {
      const grown = new Int32Array(this.size * 2);
      grown.set(this.heap);
      this.heap = grown;
    }
    // Sift up.
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(e, this.heap[parent]!)) break;
      this.heap[i] = this.heap[parent]!;
      i = parent;
    }
    this.heap[i] = e;
  }

  /** Entry x pops before entry y: higher score, then the leftmost left token. */
  private before(x: number, y: number): boolean {
    const sx = this.eScore[x]!;
    const sy = this.eScore[y]!;
    return sx > sy || (sx === sy && this.eInts[x * 5]! < this.eInts[y * 5]!);
  }

  private pop(): number {
    const top = this.heap[0]!;
    const last = this.heap[--this.size]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.size) break;
      const r = l + 1;
      const child = r < this.size && this.before(this.heap[r]!, this.heap[l]!) ? r : l;
      if (!this.before(this.heap[child]!, last)) break;
      this.heap[i] = this.heap[child]!;
      i = child;
    }
    if (this.size > 0) this.heap[i] = last;
    return top;
  }

  /** Merges until none is left (true) or performance.now() passes `deadline` (false: call again). */
  run(deadline = Infinity): boolean {
    let count = 0;
    const n = this.tok.length;
    while (this.built + 1 < n) {
      if ((++count & 1023) === 0 && performance.now() > deadline) return false;
      this.push(this.built, this.built + 1);
      this.built++;
    }
    while (this.size > 0) {
      if ((++count & 1023) === 0 && performance.now() > deadline) return false;
      const e = this.pop();
      const at = e * 5;
      const left = this.eInts[at]!;
      const right = this.eInts[at + 1]!;
      if (!this.alive[left] || !this.alive[right] || this.next[left] !== right || this.tok[left] !== this.eInts[at + 2] || this.tok[right] !== this.eInts[at + 3]) continue;
      this.tok[left] = this.eInts[at + 4]!;
      this.alive[right] = 0;
      const after = this.next[right]!;
      this.next[left] = after;
      if (after >= 0) this.prev[after] = left;
      if (this.prev[left]! >= 0) this.push(this.prev[left]!, left);
      if (after >= 0) this.push(left, after);
    }
    this.finished = true;
    return true;
  }

  /** The tokens after the merges (run() must have returned true). */
  result(): number[] {
    if (!this.finished) throw new Error("BpeMerge.result() before run() finished");
    const out: number[] = [];
    for (let i = this.tok.length > 0 ? 0 : -1; i >= 0; i = this.next[i]!) out.push(this.tok[i]!);
    return out;
  }
}

/** The merges of `tokens` at once. */
export function bpeMerge(tokens: readonly number[], pairOf: (a: number, b: number) => number, scores: Float32Array): number[] {
  const merge = new BpeMerge(tokens, pairOf, scores);
  merge.run();
  return merge.result();
}

/** Yields to the event loop (timers, sockets) before continuing. */
export const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
