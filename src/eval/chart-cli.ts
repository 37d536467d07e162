/** `ktu eval chart`: the temp.py-style bar chart and a results table from scores.json files, next to the authors' numbers. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand, type Command } from "../util/command.ts";
import { InputError, UsageError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { authorsResultRows, resultRow, resultsTable, type ResultRow } from "./results.ts";
// The CLI is glue: it draws with src/viz what src/eval computed.
import { accuracyBarChart, accuracyRowFromScores, outcomeTable, TEMP_PY_ROWS } from "../viz/bars.ts";
import { saveFigures } from "../viz/save.ts";

/** Reads `LABEL=PATH` pairs: a scores.json written by `ktu eval run` (or its directory). */
function readScores(spec: string): { label: string; path: string; scores: Record<string, unknown> } {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new UsageError(`ktu eval chart: --scores takes LABEL=PATH, got ${JSON.stringify(spec)}`);
  const label = spec.slice(0, eq);
  let path = spec.slice(eq + 1);
  if (!path.endsWith(".json")) path = join(path, "scores.json");
  let scores: Record<string, unknown>;
  try {
    scores = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new InputError(path, undefined, undefined, (error as Error).message);
  }
  for (const field of ["n", "known_acc", "unknown_acc"]) {
    if (typeof scores[field] !== "number") throw new InputError(path, undefined, field, "missing or not a number (expected a scores.json from ktu eval run)");
  }
  return { label, path, scores };
}

const chart = defineCommand({
  name: "eval chart",
  summary: "bar chart of known / unknown / overall accuracy like the authors' temp.py, our runs beside their numbers",
  help: `  --scores LABEL=PATH  a scores.json (or its run directory) from 'ktu eval run'; repeatable
  --no-authors         leave out the authors' seven temp.py rows
  --ylim LO,HI         y range (default 50,100 as temp.py; bars below LO are cut, as in theirs)
  --out DIR            accuracy.html, accuracy.png (with Chromium), results.csv
  --no-png             HTML only`,
  options: { scores: { type: "string", multiple: true }, "no-authors": { type: "boolean" }, ylim: { type: "string" }, out: { type: "string" }, "no-png": { type: "boolean" } },
  async run(values) {
    const out = typeof values.out === "string" ? values.out : undefined;
    if (!out) throw new UsageError("ktu eval chart: --out is required");
    const specs = (values.scores as string[] | undefined) ?? [];
    const runs = specs.map(readScores);
    const withAuthors = values["no-authors"] !== true;
    if (!withAuthors && runs.length === 0) throw new UsageError("ktu eval chart: nothing to draw (give --scores, or keep the authors' rows)");
    const ylim = typeof values.ylim === "string" ? (values.ylim.split(",").map(Number) as [number, number]) : undefined;
    if (ylim && (ylim.length !== 2 || ylim.some((v) => !Number.isFinite(v)))) throw new UsageError(`ktu eval chart: --ylim takes LO,HI, got ${JSON.stringify(values.ylim)}`);
    const bars = [
      ...(withAuthors ? TEMP_PY_ROWS : []),
      ...runs.map((r) => accuracyRowFromScores(r.label, { known_acc: r.scores.known_acc as number, unknown_acc: r.scores.unknown_acc as number }, `ours (${String(r.scores.metric ?? "2024-08")})`)),
    ];
    const rows: ResultRow[] = [
      ...(withAuthors ? authorsResultRows() : []),
      ...runs.map((r) =>
        resultRow(r.label, String((r.scores.config as { prompt?: string } | undefined)?.prompt ?? "run"), {
          n: r.scores.n as number,
          known_acc: r.scores.known_acc as number,
          unknown_acc: r.scores.unknown_acc as number,
          overall: 0,
          known_correct: (r.scores.known_correct as number) ?? 0,
          known_wrong: (r.scores.known_wrong as number) ?? 0,
          known_refused: (r.scores.known_refused as number) ?? 0,
          unknown_correct: (r.scores.unknown_correct as number) ?? 0,
          metric: String(r.scores.metric ?? "2024-08"),
        }),
      ),
    ];
    const figures = [{ name: "accuracy", figure: accuracyBarChart(bars, { ylim }) }];
    for (const r of runs) {
      if (typeof r.scores.known_correct === "number") {
        const s = r.scores as Record<string, number>;
        figures.push({ name: `outcomes-${r.label.replace(/[^\w.-]+/g, "_")}`, figure: outcomeTable({ n: s.n!, known_acc: s.known_acc!, unknown_acc: s.unknown_acc!, overall: 0, known_correct: s.known_correct!, known_wrong: s.known_wrong!, known_refused: s.known_refused!, unknown_correct: s.unknown_correct! }, { title: `Outcomes: ${r.label}` }) });
      }
    }
    const saved = await saveFigures(out, figures, { html: "accuracy.html", title: "Known, unknown and overall accuracy", png: values["no-png"] !== true });
    await writeFileAtomic(join(out, "results.csv"), resultsTable(rows).toCSV());
    for (const note of saved.notes) process.stderr.write(note + "\n");
    process.stdout.write(JSON.stringify({ rows: rows.length, files: [...saved.files, join(out, "results.csv")] }) + "\n");
  },
});

export const chartCommands: Command[] = [chart];
