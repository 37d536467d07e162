/**
 * Ships a reader run's weights as the project's default model: OUT/{final,checkpoint}/model.bin becomes
 * data/models/reader/reader.bin, with the run's tokenizer, the prompt.json of the prompt order it was
 * trained with, and training.json (curriculum, step, tokens, promotions, the recipe's commit) for the
 * model card.
 *
 *   node --import tsx recipes/reader/ship.ts --run out/reader [--checkpoint] [--to data/models/reader]
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeFileAtomicSync } from "../../src/util/fs.ts";
import { readerPromptFormat } from "./common.ts";
import { readerCurricula } from "./config.ts";

const { values } = parseArgs({
  options: {
    run: { type: "string", default: "out/reader" },
    checkpoint: { type: "boolean", default: false, description: "ship the latest checkpoint rather than final/" },
    to: { type: "string", default: "data/models/reader" },
  },
});
const run = resolve(values.run!);
const to = resolve(values.to!);
const weights = join(run, values.checkpoint ? "checkpoint" : "final", "model.bin");
if (!existsSync(weights)) throw new Error(`${weights}: no weights (a run writes final/ after its last level; --checkpoint ships the latest checkpoint)`);
const state = JSON.parse(readFileSync(join(run, "checkpoint", "state.json"), "utf8")) as { step: number; curriculumName: string; prompt: "question-first" | "context-first"; curriculum: { level: string; promotions: unknown[] } };
const curriculum = readerCurricula[state.curriculumName];
if (!curriculum) throw new Error(`${run}: curriculum ${state.curriculumName} is not in config.ts`);
const tokens = readFileSync(join(run, "log.jsonl"), "utf8").split("\n").filter(Boolean).reduce((n, l) => n + (JSON.parse(l) as { tokens: number }).tokens, 0);
mkdirSync(to, { recursive: true });
copyFileSync(weights, join(to, "reader.bin"));
copyFileSync(join(run, "tokenizer.bin"), join(to, "tokenizer.bin"));
writeFileAtomicSync(join(to, "prompt.json"), JSON.stringify(readerPromptFormat(curriculum.prompt), null, 2) + "\n");
const commit = execFileSync("git", ["rev-parse", "HEAD"], { encoding: "utf8" }).trim();
writeFileAtomicSync(join(to, "training.json"), JSON.stringify({ curriculum: state.curriculumName, prompt: curriculum.prompt, step: state.step, level: state.curriculum.level, tokens, promotions: state.curriculum.promotions, weights: values.checkpoint ? "checkpoint" : "final", recipeCommit: commit, shipped: new Date().toISOString() }, null, 2) + "\n");
console.log(`shipped ${weights} (step ${state.step}, ${(tokens / 1e6).toFixed(2)}M tokens, curriculum ${state.curriculumName}) to ${to}`);
