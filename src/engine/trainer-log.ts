import { open, stat } from "node:fs/promises";
import { InputError } from "../util/errors.ts";

/**
 * One line of LLaMA-Factory's output_dir/trainer_log.jsonl, written by LogCallback.on_log
 * (src/llamafactory/train/callbacks.py) every logging_steps on rank 0, with null values dropped.
 * Evaluation lines carry eval_loss and no loss.
 */
export interface TrainerLogRecord {
  current_steps: number;
  total_steps: number;
  loss?: number;
  eval_loss?: number;
  predict_loss?: number;
  reward?: number;
  accuracy?: number;
  lr?: number;
  epoch?: number;
  percentage: number;
  /** "H:MM:SS", Python's str(timedelta). */
  elapsed_time: string;
  remaining_time: string;
  throughput?: number;
  total_tokens?: number;
  vram_allocated?: number;
  vram_reserved?: number;
}

export const LF_TRAINER_LOG = "trainer_log.jsonl";

export interface TailOptions {
  /** Stop after draining what is there once this settles (e.g. the process exited). */
  until?: Promise<unknown>;
  signal?: AbortSignal;
  /** How often to look at the file; default 200 ms. */
  pollMs?: number;
}

function parseRecord(file: string, lineNo: number, line: string): TrainerLogRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new InputError(file, lineNo, undefined, `not a JSON object: ${line.slice(0, 80)}`);
  }
  const record = value as TrainerLogRecord;
  if (typeof record !== "object" || record === null || typeof record.current_steps !== "number" || typeof record.total_steps !== "number") {
    throw new InputError(file, lineNo, "current_steps", "a trainer_log.jsonl record needs numeric current_steps and total_steps");
  }
  return record;
}

/**
 * Follows trainer_log.jsonl as LLaMA-Factory appends to it: waits for the file to appear, keeps a
 * partial last line until its newline arrives, and starts over when the file is truncated or
 * replaced (LLaMA-Factory deletes it at start-up when overwrite_output_dir is set).
 */
export async function* tailTrainerLog(file: string, options: TailOptions = {}): AsyncGenerator<TrainerLogRecord> {
  const pollMs = options.pollMs ?? 200;
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  options.until?.then(stop, stop);
  options.signal?.addEventListener("abort", stop, { once: true });
  if (options.signal?.aborted) stopped = true;

  let offset = 0;
  let identity: string | undefined;
  let pending = Buffer.alloc(0);
  let lineNo = 0;
  for (;;) {
    // Read once more after the stop signal: the writer may have flushed its last lines just before exiting.
    const last = stopped;
    const info = await stat(file).catch(() => undefined);
    if (info) {
      const id = `${info.dev}:${info.ino}:${info.birthtimeMs}`;
      if (id !== identity || info.size < offset) {
        identity = id;
        offset = 0;
        pending = Buffer.alloc(0);
        lineNo = 0;
      }
      if (info.size > offset) {
        const handle = await open(file, "r");
        try {
          const chunk = Buffer.alloc(info.size - offset);
          const { bytesRead } = await handle.read(chunk, 0, chunk.length, offset);
          offset += bytesRead;
          pending = Buffer.concat([pending, chunk.subarray(0, bytesRead)]);
        } finally {
          await handle.close();
        }
        let newline: number;
        while ((newline = pending.indexOf(0x0a)) >= 0) {
          const line = pending.subarray(0, newline).toString("utf8").trim();
          pending = pending.subarray(newline + 1);
          lineNo++;
          if (line !== "") yield parseRecord(file, lineNo, line);
        }
      }
    } else if (identity !== undefined) {
      identity = undefined; // deleted: the next file to appear is read from its start
      offset = 0;
      pending = Buffer.alloc(0);
      lineNo = 0;
    }
    if (last) return;
    if (stopped) continue;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, pollMs);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wake = undefined;
  }
}

/** Every complete record in a finished trainer_log.jsonl (a missing file gives none). */
export async function readTrainerLog(file: string): Promise<TrainerLogRecord[]> {
  const records: TrainerLogRecord[] = [];
  for await (const record of tailTrainerLog(file, { until: Promise.resolve() })) records.push(record);
  return records;
}
