/**
 * The training curves of a reader run as markdown, for the model card: loss per task and level by
 * million tokens seen (from log.jsonl), gate exact match and greedy validation QA (from eval.jsonl).
 *
 *   node --import tsx recipes/reader/curves.ts --out out/reader [--every 1]   (prints markdown)
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { out: { type: "string", default: "out/reader" }, every: { type: "string", default: "1", description: "bucket size in million tokens" } } });
const dir = resolve(values.out!);
const every = Number(values.every) * 1e6;
const rows = (name: string): Record<string, unknown>[] => readFileSync(join(dir, name), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

interface StepRow { step: number; level: string; task: string; loss: number; tokens: number; ms: number }
const steps = rows("log.jsonl") as unknown as StepRow[];
const tasks = [...new Set(steps.map((r) => r.task))];
const buckets = new Map<number, { levels: Set<string>; loss: Map<string, number[]>; lastStep: number; ms: number; tokens: number }>();
let seen = 0;
for (const r of steps) {
  seen += r.tokens;
  const key = Math.floor((seen - 1) / every);
  const b = buckets.get(key) ?? { levels: new Set<string>(), loss: new Map<string, number[]>(), lastStep: 0, ms: 0, tokens: 0 };
  b.levels.add(r.level);
  (b.loss.get(r.task) ?? b.loss.set(r.task, []).get(r.task)!).push(r.loss);
  b.lastStep = r.step;
  b.ms += r.ms;
  b.tokens = seen;
  buckets.set(key, b);
}
const mean = (xs: readonly number[]): string => (xs.length ? (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2) : "");
console.log(`Tokens seen: ${(seen / 1e6).toFixed(2)}M in ${steps.length} steps, ${(steps.reduce((n, r) => n + r.ms, 0) / 3.6e6).toFixed(2)} h of step time.\n`);
console.log(`Mean loss per answer token (per token for lm), by task, per ${values.every}M tokens:\n`);
console.log(`| tokens | last step | level | ${tasks.join(" | ")} |`);
console.log(`|---|---|---|${tasks.map(() => "---").join("|")}|`);
for (const [, b] of [...buckets].sort((a, b) => a[0] - b[0])) console.log(`| ${(b.tokens / 1e6).toFixed(1)}M | ${b.lastStep} | ${[...b.levels].join(", ")} | ${tasks.map((t) => mean(b.loss.get(t) ?? [])).join(" | ")} |`);

const evals = rows("eval.jsonl");
const gates = evals.filter((e) => "gate" in e);
if (gates.length) {
  console.log(`\nGate: teacher-forced exact match of the level's gate task on its fixed set (every check):\n`);
  console.log(`| step | tokens | level | task | exact |`);
  console.log(`|---|---|---|---|---|`);
  for (const g of gates) console.log(`| ${g.step as number} | ${((g.tokens as number) / 1e6).toFixed(2)}M | ${g.level as string} | ${g.gate as string} | ${(g.exact as number).toFixed(3)} |`);
}
const validations = evals.filter((e) => "validation" in e);
if (validations.length) {
  const keys = Object.keys(validations[0]!.validation as object);
  console.log(`\nGreedy validation (train-side QA pairs never trained on, cropped to 600 characters; natural cloze questions):\n`);
  console.log(`| step | tokens | level | ${keys.join(" | ")} |`);
  console.log(`|---|---|---|${keys.map(() => "---").join("|")}|`);
  for (const v of validations) console.log(`| ${v.step as number} | ${((v.tokens as number) / 1e6).toFixed(2)}M | ${v.level as string} | ${keys.map((k) => ((v.validation as Record<string, number>)[k] ?? NaN).toFixed(3)).join(" | ")} |`);
}
