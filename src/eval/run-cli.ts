/** `ktu eval run`: generate answers for a benchmark through a model or an endpoint, then score them. */
import { join } from "node:path";
import { EVAL_PROMPT_VERSIONS, GPT_SYSTEM_MESSAGE, TASK_ASSIGNMENT, type EvalPromptVersion } from "../data/prompts.ts";
import { DEFAULT_BATCH } from "../model/batch-size.ts";
import { promptFormatPath, readPromptFormat, type PromptFormat } from "../model/prompt-format.ts";
import { defineCommand, optionalChoice, optionalNumber, requireString, type OptionValues } from "../util/command.ts";
import { UsageError } from "../util/errors.ts";
import { writeJsonAtomic, writeJsonlAtomic } from "../util/fs.ts";
import { AnswerCache } from "./cache.ts";
import { SEED_DECODE, type AnswerSource, type DecodeOptions } from "./generator.ts";
import { readBenchmark } from "./io.ts";
import { OpenAICompatibleSource } from "./openai.ts";
import { runBenchmark } from "./runner.ts";
import { scorePredictions, scoreSummary } from "./score.ts";
import { DEFAULT_METRIC, METRIC_VARIANTS } from "./scoring.ts";

/** An optional whole-number option at least `min` (limits, token counts, draws). */
export function optionalCount(values: OptionValues, name: string, command: string, min = 1): number | undefined {
  const n = optionalNumber(values, name, command);
  if (n !== undefined && (!Number.isInteger(n) || n < min)) throw new UsageError(`ktu ${command}: --${name} must be a whole number >= ${min}, got ${n}`);
  return n;
}

/** The note for prompts that an in-process model saw cut to fit its context (empty when none). */
export function cutPromptsNote(source: AnswerSource): { cut_prompts?: number } {
  const cut = (source as { cutPrompts?: number }).cutPrompts;
  if (!cut) return {};
  process.stderr.write(`note: ${cut} prompt(s) were cut from the left to fit the model's context (--no-fit-context to fail instead)\n`);
  return { cut_prompts: cut };
}

/** Builds the answer source named by the options: --endpoint, or --model with --tokenizer. */
export async function sourceFromOptions(values: OptionValues, command: string): Promise<AnswerSource> {
  const endpoint = values.endpoint;
  const model = values.model;
  if (typeof endpoint === "string" && endpoint !== "") {
    if (typeof model === "string") throw new UsageError(`ktu ${command}: give --endpoint or --model, not both (the endpoint's model is --model-name)`);
    return new OpenAICompatibleSource({
      baseUrl: endpoint,
      model: typeof values["model-name"] === "string" ? values["model-name"] : undefined,
      mode: optionalChoice(values, "mode", ["completions", "chat"] as const, command) ?? "completions",
      concurrency: optionalCount(values, "concurrency", command) ?? 4,
      timeoutMs: optionalCount(values, "timeout-ms", command) ?? 120_000,
      maxRetries: optionalCount(values, "retries", command, 0) ?? 4,
      apiKey: process.env.KTU_API_KEY ?? process.env.OPENAI_API_KEY,
      system: values.system === "seed" ? GPT_SYSTEM_MESSAGE : typeof values.system === "string" ? values.system : undefined,
      onRetry: ({ attempt, delayMs, reason }) => process.stderr.write(`retry ${attempt} in ${delayMs} ms: ${reason}\n`),
    });
  }
  if (typeof model === "string" && model !== "") {
    const tokenizer = typeof values.tokenizer === "string" && values.tokenizer !== "" ? values.tokenizer : undefined;
    // Loaded on demand, so endpoint runs never load the model code.
    const { loadLocalSource } = await import("./local-source.ts");
    // On by default: a tiny model cannot see a whole ASQA passage, and failing every row helps no
    // one; the number of cut prompts is reported and --no-fit-context makes them errors instead.
    const batch = optionalCount(values, "batch", command);
    return loadLocalSource(model, tokenizer, { fitContext: values["no-fit-context"] !== true, ...(batch === undefined ? {} : { batch }) });
  }
  throw new UsageError(`ktu ${command}: give --endpoint URL or --model FILE|DIR|hf:ORG/NAME [--tokenizer FILE]`);
}

/**
 * The prompt a run asks with: --prompt NAME; else the model's own format, declared in a prompt.json
 * beside --model (src/model/prompt-format.ts); else llama2_chat. `label` is what the results record.
 */
export function promptFromOptions(values: OptionValues, command: string): { prompt: EvalPromptVersion; format?: PromptFormat; label: string } {
  const named = optionalChoice(values, "prompt", EVAL_PROMPT_VERSIONS, command);
  if (named) return { prompt: named, label: named };
  const model = values.model;
  const format = typeof model === "string" && model !== "" ? readPromptFormat(model) : undefined;
  if (!format) return { prompt: "llama2_chat", label: "llama2_chat" };
  const file = promptFormatPath(model as string);
  if (values["task-assignment"]) throw new UsageError(`ktu ${command}: --task-assignment goes with the paper's prompt versions, and ${file} declares the model's own format (${format.format}); give --prompt NAME to use a paper version`);
  return { prompt: "llama2_chat", format, label: `${format.format} (declared in ${file})` };
}

/** Decoding under a declared format: its answer length (unless --max-tokens) and stop strings. */
export function declaredDecode(format: PromptFormat | undefined, maxTokens: number | undefined, temperature = SEED_DECODE.temperature): DecodeOptions {
  return {
    ...SEED_DECODE,
    maxNewTokens: maxTokens ?? format?.max_new_tokens ?? SEED_DECODE.maxNewTokens,
    temperature,
    ...(format ? { stop: [...format.stop] } : {}),
  };
}

export const sourceOptions = {
  model: { type: "string" },
  tokenizer: { type: "string" },
  endpoint: { type: "string" },
  "model-name": { type: "string" },
  mode: { type: "string" },
  concurrency: { type: "string" },
  batch: { type: "string" },
  "timeout-ms": { type: "string" },
  retries: { type: "string" },
  "fit-context": { type: "boolean" },
  "no-fit-context": { type: "boolean" },
  system: { type: "string" },
} as const;

export const sourceHelp = `  --model MODEL       run in this process: a llama2.c checkpoint, a Hugging Face folder or a hub
                      name hf:ORG/NAME[@REV]; --tokenizer FILE (default: the folder's tokenizer.json,
                      or tokenizer.bin / tok<vocab>.bin next to a llama2.c checkpoint)
  --batch N           --model: answers generated together on the native engine (continuous
                      batching, each answer as generated alone; default ${DEFAULT_BATCH}); 1 = one at a
                      time on the WebAssembly decoder
  --no-fit-context    fail on prompts longer than the model's context; by default they are cut
                      from the left (tiny models such as stories260K) and the count is reported
  --endpoint URL      an OpenAI-compatible server, up to /v1 (vLLM, llama.cpp, OpenAI, ktu serve);
                      the API key, if any, comes from KTU_API_KEY or OPENAI_API_KEY
  --model-name NAME   the endpoint's model name
  --mode MODE         completions (default: the prompt text as is) or chat (one user message)
  --system TEXT       chat mode's system message; "seed" = the seed's GPT one ("You need to
                      accomplish the provided task without outputting any other content.")
  --concurrency N     requests in flight (default 4); --timeout-ms MS (120000); --retries N (4)`;

export const runCommand = defineCommand({
  name: "eval run",
  summary: "answer a benchmark with a model or an endpoint; writes predictions.jsonl and scores.json",
  help: `  --benchmark FILE    benchmark.jsonl (or the authors' layout as .csv/.json)
${sourceHelp}
  --out DIR           predictions.jsonl, scores.json, errors.jsonl, answers.cache.jsonl go here
  --limit N           only the first N rows
  --prompt NAME       ${EVAL_PROMPT_VERSIONS.join(", ")}; default: the model's own format when a
                      prompt.json sits beside --model (data/models/reader has one: its QA template,
                      passages cropped to its context_chars around the known answer, its stop
                      strings and answer length), else llama2_chat
  --task-assignment   prepend the US-Tuning task assignment (for the tuned models; paper prompts only)
  --max-tokens N      (default prompt.json's max_new_tokens, else 200) --temperature T (default 0: greedy)
  --metric NAME       ${METRIC_VARIANTS.join(", ")} (default ${DEFAULT_METRIC})
  --cache FILE        answer cache (default OUT/answers.cache.jsonl); a rerun resumes from it
The last line of stdout is the score summary JSON. Failed answers are listed in errors.jsonl, the
finished rows are kept, and the command exits 1 naming the first failed id and field.`,
  options: {
    benchmark: { type: "string" },
    out: { type: "string" },
    limit: { type: "string" },
    prompt: { type: "string" },
    "task-assignment": { type: "boolean" },
    "max-tokens": { type: "string" },
    temperature: { type: "string" },
    metric: { type: "string" },
    cache: { type: "string" },
    ...sourceOptions,
  },
  async run(values) {
    const name = "eval run";
    const benchmarkPath = requireString(values, "benchmark", name);
    const out = requireString(values, "out", name);
    const metric = optionalChoice(values, "metric", METRIC_VARIANTS, name) ?? DEFAULT_METRIC;
    const { prompt, format, label } = promptFromOptions(values, name);
    const limit = optionalCount(values, "limit", name);
    const decode = declaredDecode(format, optionalCount(values, "max-tokens", name), optionalNumber(values, "temperature", name));
    const rows = readBenchmark(benchmarkPath);
    const source = await sourceFromOptions(values, name);
    const cachePath = typeof values.cache === "string" ? values.cache : join(out, "answers.cache.jsonl");
    const cache = AnswerCache.open(cachePath);
    const cachedBefore = cache.size;
    let lastShown = 0;
    try {
      const { predictions, errors } = await runBenchmark(rows, source, {
        prompt,
        ...(format ? { format } : {}),
        taskAssignment: values["task-assignment"] ? TASK_ASSIGNMENT : "",
        decode,
        limit,
        cache,
        onProgress: (done, total) => {
          const now = Date.now();
          if (now - lastShown > 2000 || done === total) {
            lastShown = now;
            process.stderr.write(`answered ${done}/${total}\n`);
          }
        },
      });
      const picked = limit === undefined ? rows : rows.slice(0, limit);
      await writeJsonlAtomic(join(out, "predictions.jsonl"), predictions);
      await writeJsonlAtomic(join(out, "errors.jsonl"), errors);
      const report = scorePredictions(picked, predictions, { metric, partial: true, files: { benchmark: benchmarkPath, predictions: join(out, "predictions.jsonl") } });
      const summary = scoreSummary(report);
      const config = {
        benchmark: benchmarkPath,
        source: source.id,
        prompt: label,
        ...(format ? { prompt_format: format } : {}),
        task_assignment: values["task-assignment"] === true,
        decode,
        limit: limit ?? null,
        metric,
        cache: cachePath,
        answers_cached_before: cachedBefore,
        answers_cached_after: cache.size,
        ...cutPromptsNote(source),
      };
      await writeJsonAtomic(join(out, "scores.json"), { ...summary, errors: errors.length, config, rows: report.rows });
      process.stdout.write(JSON.stringify(summary) + "\n");
      if (errors.length > 0) {
        const first = errors[0]!;
        throw new Error(`${errors.length} answer(s) failed; first: id ${JSON.stringify(first.id)}, field ${first.field}: ${first.message}. ${predictions.length} finished rows kept in ${out}; rerun to resume from the cache`);
      }
    } finally {
      cache.close();
      await source.close?.();
    }
  },
});
