/**
 * The server's scheduler: decoding is CPU-bound and synchronous, so every request goes through one
 * bounded queue, and up to `maxBatch` sequences step together, one token each per tick (continuous
 * batching: a waiting request joins between ticks). Each tick is one batched forward pass followed by
 * setImmediate, so the event loop keeps accepting connections and streaming chunks meanwhile.
 */
import { stepTogether, type Sequence } from "../model/generate.ts";
import { ApiError } from "./server-openai.ts";

export interface Job {
  seqs: Sequence[];
  cancelled: boolean;
  /** Called after every tick in which this job's sequences advanced. */
  progress(): void;
  done(error?: unknown): void;
}

export class Scheduler {
  private readonly queue: Job[] = [];
  private readonly active: Job[] = [];
  private scheduled = false;
  constructor(
    private readonly maxBatch: number,
    private readonly maxQueue: number,
  ) {}

  submit(job: Job): void {
    if (this.queue.length >= this.maxQueue) throw new ApiError(429, `the server is busy: ${this.queue.length} requests are waiting; retry later`, null, "queue_full");
    this.queue.push(job);
    this.wake();
  }

  /** Requests ended early because their client went away (or their generation failed). */
  private cancelled = 0;

  get load(): { queued: number; active: number; cancelled: number } {
    return { queued: this.queue.length, active: this.active.length, cancelled: this.cancelled };
  }

  private wake(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.tick());
  }

  private rows(): number {
    return this.active.reduce((a, j) => a + j.seqs.filter((s) => !s.finished).length, 0);
  }

  private tick(): void {
    this.scheduled = false;
    try {
      // Admit one waiting request per tick (its prefill is the expensive part) while rows are free.
      const next = this.queue[0];
      if (next && (this.active.length === 0 || this.rows() + next.seqs.length <= this.maxBatch)) {
        this.queue.shift();
        if (next.cancelled) {
          this.cancelled++;
          next.done();
        }
        else {
          this.run(next, () => next.seqs.forEach((s) => s.start()));
          this.active.push(next);
        }
      }
      const live = this.active.filter((j) => !j.cancelled);
      const rows = live.flatMap((j) => j.seqs.filter((s) => !s.finished));
      for (let i = 0; i < rows.length; i += this.maxBatch) stepTogether(rows.slice(i, i + this.maxBatch));
      for (const job of live) this.run(job, () => job.progress());
    } finally {
      for (let i = this.active.length - 1; i >= 0; i--) {
        const job = this.active[i]!;
        if (job.cancelled || job.seqs.every((s) => s.finished)) {
          this.active.splice(i, 1);
          if (job.cancelled) this.cancelled++;
          job.done();
        }
      }
      if (this.active.length > 0 || this.queue.length > 0) this.wake();
    }
  }

  private run(job: Job, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      job.cancelled = true;
      job.done(error);
    }
  }
}
