import * as aq from "arquero";
import type { AlpacaRow } from "./alpaca.ts";
import type { BenchmarkRow } from "./benchmark.ts";
import type { HotpotSample } from "./hotpot.ts";
import type { Stage1Row } from "./stage1.ts";
import type { Stage2Row } from "./stage2.ts";

/**
 * Every dataset as an arquero table, for display and quick analysis in notebooks. Column order
 * puts the paper's columns first; list-valued cells (answers, check marks) stay arrays.
 */

export type DataTable = ReturnType<typeof aq.from>;

const table = <T extends object>(rows: readonly T[], columns: readonly string[]): DataTable => {
  const data: Record<string, unknown[]> = Object.fromEntries(columns.map((c) => [c, [] as unknown[]]));
  for (const row of rows) for (const c of columns) data[c]!.push((row as Record<string, unknown>)[c]);
  return aq.table(data);
};

export const benchmarkTable = (rows: readonly BenchmarkRow[]): DataTable =>
  table(rows, ["id", "context", "pos_query", "pos_answer", "neg_query", "neg_answer", "sample_id", "ambiguous_question", "pos_wikipage", "neg_wikipage"]);

export const alpacaTable = (rows: readonly AlpacaRow[]): DataTable => table(rows, ["instruction", "input", "output"]);

export const stage1Table = (rows: readonly Stage1Row[]): DataTable => table(rows, ["kind", "source_id", "instruction", "input", "output"]);

export const stage2Table = (rows: readonly Stage2Row[]): DataTable =>
  table(rows, ["source_id", "instruction_id", "slot", "gold_answer", "answer", "revised", "instruction", "input", "output"]);

export const hotpotTable = (samples: readonly HotpotSample[]): DataTable =>
  table(samples.map((s) => ({ ...s, paragraphs: s.context.length })), ["id", "question", "answer", "type", "level", "paragraphs"]);
