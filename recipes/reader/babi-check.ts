/**
 * Greedy known-question accuracy (strict) of a reader checkpoint on the bAbI benchmark's validation rows
 * (the rows `ktu start --source babi` tests on), and the share of unknown questions it answers with a
 * location (the base never learned to refuse): a quick check between training levels.
 *
 *   node --import tsx recipes/reader/babi-check.ts --model OUT/checkpoint/model.bin --tokenizer OUT/tokenizer.bin [--task 1] [--limit 300] [--order context-first|question-first]
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { babiBenchmarkSides } from "../../src/data/sources.ts";
import { goldAnswers, isKnownCorrect } from "../../src/eval/scoring.ts";
import { initBackend } from "../../src/model/backend.ts";
import { BpeTokenizer } from "../../src/model/bpe.ts";
import { loadLlama2c } from "../../src/model/llama2c.ts";
import { renderTemplate } from "../../src/model/prompt-format.ts";
import { greedyAnswers, readerPromptFormat } from "./common.ts";

const { values } = parseArgs({ options: { model: { type: "string" }, tokenizer: { type: "string" }, task: { type: "string", default: "1" }, limit: { type: "string", default: "300" }, order: { type: "string", default: "context-first", description: "the prompt order the run was trained with: context-first or question-first" } } });
if (values.order !== "context-first" && values.order !== "question-first") throw new Error(`--order: context-first or question-first, not ${values.order}`);
const qaTemplate = (readerPromptFormat(values.order).templates as { qa: string }).qa;
await initBackend();
const model = loadLlama2c(resolve(values.model!));
const tok = BpeTokenizer.load(resolve(values.tokenizer!), model.config.vocabSize);
const rows = babiBenchmarkSides({ task: Number(values.task) }).validation.rows.slice(0, Number(values.limit));
const answers = greedyAnswers(model, tok, rows.map((r) => renderTemplate(qaTemplate, { question: r.pos_query, context: r.context })));
const right = rows.filter((r, i) => isKnownCorrect(answers[i]!, goldAnswers(r.pos_answer, "strict"), "strict")).length;
console.log(JSON.stringify({ task: Number(values.task), rows: rows.length, known_strict: right / rows.length }));
