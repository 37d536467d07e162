/**
 * A resumable on-disk cache of answers: an append-only JSONL file, one fsync'd line per answer,
 * keyed by a hash of (model id, kind, prompt, decoding settings, sample index). A killed run
 * leaves at most one torn last line, which is skipped on reopen; every earlier answer is reused,
 * so an evaluation resumes without paying for the same answer twice.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { DecodeOptions } from "./generator.ts";

export interface CacheKeyParts {
  model: string;
  /** What was asked: "answer", "logprobs", "continuation", ... */
  kind: string;
  prompt: string;
  settings?: Partial<DecodeOptions> | Record<string, unknown>;
  /** Distinguishes the k samples drawn for one prompt at temperature > 0. */
  sample?: number;
}

/** Stable JSON: object keys sorted, so the same settings always hash alike. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export const answerCacheKey = (parts: CacheKeyParts): string => createHash("sha256").update(canonical(parts)).digest("hex");

export class AnswerCache {
  private readonly entries = new Map<string, unknown>();
  private fd: number | undefined;
  /** Lines that could not be read back (a torn last line after a kill). */
  skippedLines = 0;

  private constructor(readonly path: string) {}

  static open(path: string): AnswerCache {
    let skipped = 0;
    const lines = existsSync(path) ? readFileSync(path, "utf8").split("\n") : [];
    const cache = new AnswerCache(path);
    for (const line of lines) {
      if (line.trim() === "") continue;
      try {
        const record = JSON.parse(line) as { key?: unknown; value?: unknown };
        if (typeof record.key === "string") cache.entries.set(record.key, record.value);
        else skipped++;
      } catch {
        skipped++;
      }
    }
    cache.skippedLines = skipped;
    mkdirSync(dirname(path), { recursive: true });
    // A torn last line has no newline: start the next record on a fresh line.
    const needsNewline = lines.length > 0 && lines[lines.length - 1] !== "";
    cache.fd = openSync(path, "a");
    if (needsNewline) writeSync(cache.fd, "\n");
    return cache;
  }

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get<T>(key: string): T | undefined {
    return this.entries.get(key) as T | undefined;
  }

  /** Appends one record and fsyncs it before returning, so an answer paid for is an answer kept. */
  put(key: string, value: unknown, meta: Record<string, unknown> = {}): void {
    if (this.fd === undefined) throw new Error(`answer cache ${this.path} is closed`);
    writeSync(this.fd, JSON.stringify({ key, value, ...meta }) + "\n");
    fsyncSync(this.fd);
    this.entries.set(key, value);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Looks the answer up, or asks `compute` and records it. */
export async function cached<T>(cache: AnswerCache | undefined, parts: CacheKeyParts, compute: () => Promise<T>): Promise<T> {
  if (!cache) return compute();
  const key = answerCacheKey(parts);
  if (cache.has(key)) return cache.get<T>(key)!;
  const value = await compute();
  cache.put(key, value, { model: parts.model, kind: parts.kind, sample: parts.sample });
  return value;
}
