/**
 * The reader's acceptance numbers, `acceptance.json` beside its weights (written by
 * recipes/reader/evaluate.ts), which the report shows as "Acceptance of the reader" when the file is
 * there. Schema "ktu-reader-acceptance/1"; accuracies and AUROCs are fractions in [0, 1], every `ci` a
 * 95% cluster-bootstrap interval [low, high] over the ASQA ambiguous questions of the test rows:
 *
 *   {
 *     "schema": "ktu-reader-acceptance/1",
 *     "model": "reader.bin",                       // the weights the numbers are for
 *     "model_sha256": "…",                         // optional
 *     "generated": "2026-12-06T09:00:00Z",         // optional
 *     "command": "recipes/reader/evaluate.ts …",   // optional: how to reproduce
 *     "test": { "rows": 94, "clusters": 27, "description": "corrected filter, split seed 42" },
 *     "metric": "strict",
 *     "word_overlap_auroc": { "value": 0.764, "ci": [0.685, 0.830] },
 *     "seeds": [
 *       { "seed": 1,
 *         "base":          { "known": { "value": 0.1, "ci": [0.05, 0.2] }, "unknown": { … } },
 *         "stage1":        { "known": { … }, "unknown": { … }, "auroc": { "value": 0.7, "ci": [0.6, 0.8] } },
 *         "stage1_stage2": { "known": { … }, "unknown": { … } } }
 *     ]
 *   }
 */
import { readJsonBesideModel } from "../model/prompt-format.ts";
import { InputError } from "../util/errors.ts";

export const ACCEPTANCE_FILE = "acceptance.json";
export const ACCEPTANCE_SCHEMA = "ktu-reader-acceptance/1";

export interface ValueWithCi {
  value: number;
  ci: [number, number];
}

export interface AcceptanceArm {
  known: ValueWithCi;
  unknown: ValueWithCi;
}

export interface ReaderAcceptance {
  schema: typeof ACCEPTANCE_SCHEMA;
  model: string;
  model_sha256?: string;
  generated?: string;
  command?: string;
  test: { rows: number; clusters: number; description?: string };
  metric: string;
  word_overlap_auroc: ValueWithCi;
  seeds: { seed: number; base: AcceptanceArm; stage1: AcceptanceArm & { auroc: ValueWithCi }; stage1_stage2: AcceptanceArm }[];
}

/** Checks a parsed acceptance.json; every problem names the file and the field. */
export function checkAcceptance(value: unknown, file: string): ReaderAcceptance {
  const bad = (field: string, problem: string): never => {
    throw new InputError(file, undefined, field, problem);
  };
  const obj = (v: unknown, field: string): Record<string, unknown> => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : bad(field, `expected an object, got ${JSON.stringify(v)?.slice(0, 60)}`));
  const fraction = (v: unknown, field: string): number => (typeof v === "number" && v >= 0 && v <= 1 ? v : bad(field, `expected a fraction in [0, 1], got ${JSON.stringify(v)}`));
  const withCi = (v: unknown, field: string): void => {
    const o = obj(v, field);
    const x = fraction(o.value, `${field}.value`);
    if (!Array.isArray(o.ci) || o.ci.length !== 2) bad(`${field}.ci`, `expected [low, high], got ${JSON.stringify(o.ci)}`);
    const [lo, hi] = (o.ci as unknown[]).map((c, i) => fraction(c, `${field}.ci[${i}]`));
    if (!(lo! <= x + 1e-9 && x <= hi! + 1e-9)) bad(`${field}.ci`, `the interval [${lo}, ${hi}] does not hold the value ${x}`);
  };
  const o = obj(value, "(top level)");
  if (o.schema !== ACCEPTANCE_SCHEMA) bad("schema", `expected "${ACCEPTANCE_SCHEMA}", got ${JSON.stringify(o.schema)}`);
  if (typeof o.model !== "string" || o.model === "") bad("model", "expected the weights' file name");
  const test = obj(o.test, "test");
  for (const k of ["rows", "clusters"]) if (!Number.isInteger(test[k]) || (test[k] as number) < 1) bad(`test.${k}`, `expected a whole number >= 1, got ${JSON.stringify(test[k])}`);
  if (typeof o.metric !== "string") bad("metric", "expected the scoring rule's name, e.g. strict");
  withCi(o.word_overlap_auroc, "word_overlap_auroc");
  if (!Array.isArray(o.seeds) || o.seeds.length === 0) bad("seeds", "expected a non-empty list of seeds");
  (o.seeds as unknown[]).forEach((s, i) => {
    const seed = obj(s, `seeds[${i}]`);
    if (!Number.isInteger(seed.seed)) bad(`seeds[${i}].seed`, `expected a whole number, got ${JSON.stringify(seed.seed)}`);
    for (const arm of ["base", "stage1", "stage1_stage2"]) {
      const a = obj(seed[arm], `seeds[${i}].${arm}`);
      withCi(a.known, `seeds[${i}].${arm}.known`);
      withCi(a.unknown, `seeds[${i}].${arm}.unknown`);
    }
    withCi(obj(seed.stage1, `seeds[${i}].stage1`).auroc, `seeds[${i}].stage1.auroc`);
  });
  return value as ReaderAcceptance;
}

/** acceptance.json beside a model's weights (inside a model folder), checked; undefined when there is none. */
export function readAcceptance(modelPath: string): { file: string; acceptance: ReaderAcceptance } | undefined {
  const found = readJsonBesideModel(modelPath, ACCEPTANCE_FILE);
  return found && { file: found.file, acceptance: checkAcceptance(found.parsed, found.file) };
}

const pct = (x: ValueWithCi): string => `${(100 * x.value).toFixed(1)} [${(100 * x.ci[0]).toFixed(1)}, ${(100 * x.ci[1]).toFixed(1)}]`;
const auc = (x: ValueWithCi): string => `${x.value.toFixed(3)} [${x.ci[0].toFixed(3)}, ${x.ci[1].toFixed(3)}]`;

/** The table rows of the report: per seed and arm, known and unknown accuracy (%) and stage 1's AUROC, with intervals. */
export function acceptanceRows(a: ReaderAcceptance): string[][] {
  const rows = a.seeds.flatMap((s) => [
    [String(s.seed), "base", pct(s.base.known), pct(s.base.unknown), "–"],
    [String(s.seed), "stage 1", pct(s.stage1.known), pct(s.stage1.unknown), auc(s.stage1.auroc)],
    [String(s.seed), "stage 1 → 2", pct(s.stage1_stage2.known), pct(s.stage1_stage2.unknown), "–"],
  ]);
  return [...rows, ["–", "word overlap (no model)", "–", "–", auc(a.word_overlap_auroc)]];
}
