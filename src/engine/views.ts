import * as aq from "arquero";
import type { LfJob } from "./launch.ts";
import type { TrainerLogRecord } from "./trainer-log.ts";

/**
 * What a notebook cell shows about LLaMA-Factory runs: a job table (arquero), loss curves (plain
 * plotly figure objects, rendered by src/viz), and a progress record per step.
 */
export interface LfFigure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

/**
 * One point per step, the last record of each step winning: a resumed run repeats the steps between
 * its checkpoint and where it stopped, and the resumed values are the ones that count.
 */
export function latestPerStep(records: readonly TrainerLogRecord[], field: "loss" | "eval_loss"): { step: number; value: number }[] {
  const byStep = new Map<number, number>();
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    // A restart: the earlier run's points from here on are superseded, so the curve does not zig-zag.
    if (i > 0 && record.current_steps < records[i - 1]!.current_steps) for (const step of [...byStep.keys()]) if (step >= record.current_steps) byStep.delete(step);
    const value = record[field];
    if (typeof value === "number") byStep.set(record.current_steps, value);
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([step, value]) => ({ step, value }));
}

export interface LfProgress {
  step: number;
  totalSteps: number;
  /** 0..1 */
  fraction: number;
  loss: number | undefined;
  evalLoss: number | undefined;
  lr: number | undefined;
  epoch: number | undefined;
  elapsed: string;
  remaining: string;
  /** A text bar for a terminal or a plain-text cell: "[#####.....]  50.0% 8/16 loss 1.234". */
  line: string;
}

/** The progress a record reports, with a text bar. */
export function lfProgress(record: TrainerLogRecord, width = 24): LfProgress {
  const fraction = record.total_steps > 0 ? Math.min(1, record.current_steps / record.total_steps) : 1;
  const filled = Math.round(fraction * width);
  const parts = [`[${"#".repeat(filled)}${".".repeat(width - filled)}]`, `${(fraction * 100).toFixed(1).padStart(5)}%`, `${record.current_steps}/${record.total_steps}`];
  if (record.loss !== undefined) parts.push(`loss ${record.loss.toFixed(4)}`);
  if (record.eval_loss !== undefined) parts.push(`eval_loss ${record.eval_loss.toFixed(4)}`);
  if (record.lr !== undefined) parts.push(`lr ${record.lr.toExponential(2)}`);
  if (record.epoch !== undefined) parts.push(`epoch ${record.epoch.toFixed(2)}`);
  parts.push(`${record.elapsed_time} elapsed, ${record.remaining_time} left`);
  return {
    step: record.current_steps,
    totalSteps: record.total_steps,
    fraction,
    loss: record.loss,
    evalLoss: record.eval_loss,
    lr: record.lr,
    epoch: record.epoch,
    elapsed: record.elapsed_time,
    remaining: record.remaining_time,
    line: parts.join("  "),
  };
}

const formatElapsed = (ms: number): string => {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};

/** The jobs as a table: name, status, step/total, loss, GPU (CUDA_VISIBLE_DEVICES), elapsed, output dir. */
export function lfJobsTable(jobs: readonly LfJob[]): aq.ColumnTable {
  const last = (job: LfJob) => job.records.findLast((r) => r.loss !== undefined);
  return aq.table({
    name: jobs.map((j) => j.name),
    command: jobs.map((j) => j.command),
    status: jobs.map((j) => j.status),
    step: jobs.map((j) => (j.lastRecord ? `${j.lastRecord.current_steps}/${j.lastRecord.total_steps}` : "")),
    loss: jobs.map((j) => last(j)?.loss ?? null),
    gpu: jobs.map((j) => j.gpus || "all visible"),
    elapsed: jobs.map((j) => formatElapsed(j.elapsedMs)),
    pid: jobs.map((j) => j.pid ?? null),
    output_dir: jobs.map((j) => j.outputDir),
  });
}

/** Training (and evaluation) loss against step, one trace pair per run. */
export function lfLossFigure(runs: readonly { name: string; records: readonly TrainerLogRecord[] }[] | LfJob, title = "LLaMA-Factory training loss"): LfFigure {
  // A resumed job's curve starts with the earlier run's records up to its checkpoint.
  const list = Array.isArray(runs) ? runs : [{ name: (runs as LfJob).name, records: [...(runs as LfJob).history, ...(runs as LfJob).records] }];
  const data: Record<string, unknown>[] = [];
  for (const run of list) {
    const train = latestPerStep(run.records, "loss");
    data.push({ type: "scatter", mode: "lines", name: `${run.name} loss`, x: train.map((p) => p.step), y: train.map((p) => p.value) });
    const evaluation = latestPerStep(run.records, "eval_loss");
    if (evaluation.length > 0) data.push({ type: "scatter", mode: "lines+markers", name: `${run.name} eval_loss`, x: evaluation.map((p) => p.step), y: evaluation.map((p) => p.value), line: { dash: "dot" } });
  }
  const total = Math.max(0, ...list.map((r) => r.records.at(-1)?.total_steps ?? 0));
  return {
    data,
    layout: {
      title: { text: title },
      xaxis: { title: { text: "step" }, ...(total > 0 ? { range: [0, total] } : {}) },
      yaxis: { title: { text: "loss" } },
      legend: { orientation: "h" },
      margin: { t: 40, r: 10, b: 40, l: 50 },
    },
  };
}
