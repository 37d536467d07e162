/** `ktu eval squad`: a model answers SQuAD v1.1 questions; official exact match and F1. */
import { join } from "node:path";
import { readSquad, readSquadSplit, SQUAD_FILE } from "../data/squad.ts";
import { defineCommand, requireString } from "../util/command.ts";
import { writeJsonAtomic } from "../util/fs.ts";
import { AnswerCache, cached } from "./cache.ts";
import { mapLimit } from "./generator.ts";
import { cutPromptsNote, declaredDecode, optionalCount, promptFromOptions, sourceHelp, sourceOptions, sourceFromOptions } from "./run-cli.ts";
import { questionPrompt } from "./runner.ts";
import { squadEvaluate, squadItems } from "./squad-metric.ts";

export const squadCommand = defineCommand({
  name: "eval squad",
  summary: "a model answers every question of a SQuAD v1.1 file; writes predictions.json, prints official EM and F1",
  help: `  --squad FILE        SQuAD v1.1 JSON, plain or .gz: every question of it. Default: the validation
                      articles (8 of 40, src/data/squad.ts) of the shipped
                      data/squad/dev-v1.1-40-articles.json.gz
${sourceHelp}
  --out DIR           predictions.json ({question id: answer}, the official format), scores.json,
                      answers.cache.jsonl (a rerun resumes from it)
  --limit N           only the first N questions (in file order); EM and F1 are over those N
  --prompt NAME       a paper prompt version instead of the model's own format; default: the QA
                      template of the prompt.json beside --model, the paragraph cropped to its
                      context_chars around the gold answer (as 'ktu eval run'), else llama2_chat
  --max-tokens N      answer length (default prompt.json's max_new_tokens, else 200); decoding is greedy
The last line of stdout is {"exact_match": x, "f1": y, "n": n}: evaluate-v1.1.py's numbers (percent).`,
  options: { squad: { type: "string" }, out: { type: "string" }, limit: { type: "string" }, prompt: { type: "string" }, "max-tokens": { type: "string" }, ...sourceOptions },
  async run(values) {
    const name = "eval squad";
    const out = requireString(values, "out", name);
    const file = typeof values.squad === "string" && values.squad !== "" ? values.squad : undefined;
    const articles = file ? readSquad(file) : readSquadSplit(SQUAD_FILE).validation;
    const limit = optionalCount(values, "limit", name);
    const all = squadItems(articles);
    const items = limit === undefined ? all : all.slice(0, limit);
    const { prompt, format, label } = promptFromOptions(values, name);
    const decode = declaredDecode(format, optionalCount(values, "max-tokens", name), 0);
    const source = await sourceFromOptions(values, name);
    const cachePath = join(out, "answers.cache.jsonl");
    const cache = AnswerCache.open(cachePath);
    const errors: { id: string; message: string }[] = [];
    let done = 0;
    let lastShown = 0;
    try {
      const answers = await mapLimit(items, 4, async (item) => {
        const text = questionPrompt({ id: item.id, context: item.context, pos_query: item.question, pos_answer: item.answers, neg_query: "" }, item.question, { prompt, ...(format ? { format } : {}) });
        try {
          return await cached(cache, { model: source.id, kind: "answer", prompt: text, settings: decode }, async () => {
            const [reply] = await source.complete([text], decode);
            if (typeof reply !== "string") throw new Error("the source returned no text");
            return reply;
          });
        } catch (error) {
          errors.push({ id: item.id, message: (error as Error).message });
          return undefined;
        } finally {
          done++;
          const now = Date.now();
          if (now - lastShown > 2000 || done === items.length) {
            lastShown = now;
            process.stderr.write(`answered ${done}/${items.length}\n`);
          }
        }
      });
      const predictions: Record<string, string> = {};
      items.forEach((item, i) => {
        const a = answers[i];
        if (a !== undefined) predictions[item.id] = a.trim();
      });
      await writeJsonAtomic(join(out, "predictions.json"), predictions);
      const score = squadEvaluate(items, predictions);
      const summary = { exact_match: score.exact_match, f1: score.f1, n: score.n };
      await writeJsonAtomic(join(out, "scores.json"), {
        ...score,
        errors,
        config: { squad: file ?? `${SQUAD_FILE} (validation articles)`, source: source.id, prompt: label, ...(format ? { prompt_format: format } : {}), decode, limit: limit ?? null, ...cutPromptsNote(source) },
      });
      process.stdout.write(JSON.stringify(summary) + "\n");
      if (errors.length > 0) throw new Error(`${errors.length} answer(s) failed; first: id ${JSON.stringify(errors[0]!.id)}: ${errors[0]!.message}. Unanswered questions scored 0; rerun to resume from ${cachePath}`);
    } finally {
      cache.close();
      await source.close?.();
    }
  },
});
