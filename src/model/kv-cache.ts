/**
 * Key/value caches, and the small allocator that places them (with the decoder's weights and work
 * buffers) in WebAssembly memory so the SIMD attention kernels can read them. Growing a wasm memory
 * detaches every view on it, so caches re-create their views lazily when the memory has moved.
 */
import type { LlamaConfig } from "./types.ts";
import type { WasmMemory } from "./wasm-kernels.ts";

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** A bump allocator with exact-size free lists over a wasm memory, growing it as needed. */
export class WasmHeap {
  private top = 0;
  private readonly free = new Map<number, number[]>();
  private readonly registry = new FinalizationRegistry<{ at: number; bytes: number }>((block) => this.release(block.at, block.bytes));
  constructor(readonly memory: WasmMemory) {}

  alloc(bytes: number): number {
    bytes = align16(bytes);
    const reuse = this.free.get(bytes)?.pop();
    if (reuse !== undefined) return reuse;
    const at = this.top;
    this.top += bytes;
    const have = this.memory.buffer.byteLength;
    if (this.top > have) this.memory.grow(Math.ceil((this.top - have) / 65536));
    return at;
  }

  release(at: number, bytes: number): void {
    bytes = align16(bytes);
    const list = this.free.get(bytes);
    if (list) list.push(at);
    else this.free.set(bytes, [at]);
  }

  /** Frees the block when `owner` is garbage-collected, unless `untrack(owner)` comes first. */
  track(owner: object, at: number, bytes: number): void {
    this.registry.register(owner, { at, bytes }, owner);
  }

  untrack(owner: object): void {
    this.registry.unregister(owner);
  }
}

/** Keys and values of one sequence: [layer][kvHead][position][headSize], so one head's history is contiguous. */
export class KvCache {
  /** Positions filled so far: the next token goes to position `length`. */
  length = 0;
  /** Byte addresses in the decoder's wasm memory, or -1 for a cache in ordinary JS memory. */
  readonly keyAt: number = -1;
  readonly valueAt: number = -1;
  private k: Float32Array;
  private v: Float32Array;
  private released = false;
  private readonly size: number;

  constructor(
    readonly config: LlamaConfig,
    readonly capacity: number = config.seqLen,
    private readonly heap?: WasmHeap,
  ) {
    const kvDim = (config.dim / config.nHeads) * config.nKvHeads;
    this.size = config.nLayers * capacity * kvDim;
    if (heap) {
      this.keyAt = heap.alloc(2 * align16(this.size * 4));
      this.valueAt = this.keyAt + align16(this.size * 4);
      heap.track(this, this.keyAt, 2 * align16(this.size * 4));
      this.k = new Float32Array(heap.memory.buffer, this.keyAt, this.size);
      this.v = new Float32Array(heap.memory.buffer, this.valueAt, this.size);
      // A recycled block holds another sequence's history; positions past `length` are never read.
    } else {
      this.k = new Float32Array(this.size);
      this.v = new Float32Array(this.size);
    }
  }

  get key(): Float32Array {
    if (this.heap && this.k.buffer !== this.heap.memory.buffer) this.remap();
    return this.k;
  }

  get value(): Float32Array {
    if (this.heap && this.v.buffer !== this.heap.memory.buffer) this.remap();
    return this.v;
  }

  get isReleased(): boolean {
    return this.released;
  }

  private remap(): void {
    if (this.released) return;
    this.k = new Float32Array(this.heap!.memory.buffer, this.keyAt, this.size);
    this.v = new Float32Array(this.heap!.memory.buffer, this.valueAt, this.size);
  }

  /** Forgets positions from `length` on (e.g. to re-use a shared prompt prefix). */
  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate a cache of ${this.length} positions to ${length}`);
    this.length = length;
  }

  /** Gives wasm memory back now rather than at garbage collection; the cache is unusable afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.length = 0;
    if (this.heap) {
      this.heap.untrack(this);
      this.heap.release(this.keyAt, 2 * align16(this.size * 4));
      this.k = this.v = new Float32Array(0);
    }
  }
}
