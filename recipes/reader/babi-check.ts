/**
 * Greedy known-question accuracy (strict) of a reader checkpoint on the bAbI benchmark's validation rows
 * (the rows `ktu start --source babi` tests on), and the share of unknown questions it answers with a
 * location (the base never learned to refuse): a quick check between training levels.
 *
 *   node --import tsx recipes/reader/babi-check.ts --model OUT/checkpoint/model.bin --tokenizer OUT/tokenizer.bin [--task 1] [--limit 300]
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { babiBenchmarkSides } from "../../src/data/sources.ts";
import { goldAnswers, isKnownCorrect } from "../../src/eval/scoring.ts";
import { initBackend } from "../../src/model/backend.ts";
import { BpeTokenizer } from "../../src/model/bpe.ts";
import { loadLlama2c } from "../../src/model/llama2c.ts";
import { greedyAnswers } from "./common.ts";
import { CONTEXT_FIRST_QA } from "./config.ts";
import { renderTemplate } from "../../src/model/prompt-format.ts";

const { values } = parseArgs({ options: { model: { type: "string" }, tokenizer: { type: "string" }, task: { type: "string", default: "1" }, limit: { type: "string", default: "300" } } });
await initBackend();
const model = loadLlama2c(resolve(values.model!));
const tok = BpeTokenizer.load(resolve(values.tokenizer!), model.config.vocabSize);
const rows = babiBenchmarkSides({ task: Number(values.task) }).validation.rows.slice(0, Number(values.limit));
const answers = greedyAnswers(model, tok, rows.map((r) => renderTemplate(CONTEXT_FIRST_QA, { question: r.pos_query, context: r.context })));
const right = rows.filter((r, i) => isKnownCorrect(answers[i]!, goldAnswers(r.pos_answer, "strict"), "strict")).length;
console.log(JSON.stringify({ task: Number(values.task), rows: rows.length, known_strict: right / rows.length }));
