/**
 * SQuAD v1.1 JSON ({version, data: [{title, paragraphs: [{context, qas: [{id, question, answers:
 * [{text, answer_start}]}]}]}]}), read strictly: errors name the file, the record (article / paragraph /
 * question) and the field. Shipped: data/squad/dev-v1.1-40-articles.json.gz (40 of the dev set's 48
 * articles; the other 8 are withheld upstream for an independent check, data/squad/PROVENANCE.md).
 *
 * Our own validation side is a set of whole articles (`squadValidationTitles`), so that no paragraph,
 * topic or answer of a validation article is ever trained on.
 */
import { InputError } from "../util/errors.ts";
import { dataPath } from "../util/paths.ts";
import { Rng } from "../util/rng.ts";
import { readTextMaybeGzipSync } from "./text-input.ts";

export interface SquadAnswer {
  text: string;
  answer_start: number;
}
export interface SquadQuestion {
  id: string;
  question: string;
  answers: SquadAnswer[];
}
export interface SquadParagraph {
  context: string;
  qas: SquadQuestion[];
}
export interface SquadArticle {
  title: string;
  paragraphs: SquadParagraph[];
}

export const SQUAD_FILE = dataPath("squad", "dev-v1.1-40-articles.json.gz");

/** Articles of the validation side: 8 of the shipped 40 (a fifth), drawn by a fixed seed from the sorted titles. */
export const SQUAD_VALIDATION_ARTICLES = 8;
export const SQUAD_SPLIT_SEED = 20;

export function squadValidationTitles(articles: readonly Pick<SquadArticle, "title">[], count = SQUAD_VALIDATION_ARTICLES, seed = SQUAD_SPLIT_SEED): Set<string> {
  const titles = [...new Set(articles.map((a) => a.title))].sort();
  return new Set(new Rng(seed).shuffle(titles).slice(0, Math.min(count, Math.floor(titles.length / 2))));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses SQuAD v1.1 JSON text; every answer span is checked against its paragraph. */
export function parseSquad(text: string, file: string): SquadArticle[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new InputError(file, undefined, undefined, `not JSON (${(error as Error).message})`);
  }
  if (!isObject(raw) || !Array.isArray(raw.data)) throw new InputError(file, undefined, "data", "expected an object with a data array (SQuAD v1.1 JSON)");
  return raw.data.map((article, a): SquadArticle => {
    const where = (rest: string): string => `data[${a}]${rest}`;
    if (!isObject(article) || typeof article.title !== "string") throw new InputError(file, where(""), "title", "expected an article with a string title");
    if (!Array.isArray(article.paragraphs)) throw new InputError(file, where(""), "paragraphs", "expected an array");
    const paragraphs = article.paragraphs.map((paragraph, p): SquadParagraph => {
      if (!isObject(paragraph) || typeof paragraph.context !== "string") throw new InputError(file, where(`.paragraphs[${p}]`), "context", "expected a string");
      if (!Array.isArray(paragraph.qas)) throw new InputError(file, where(`.paragraphs[${p}]`), "qas", "expected an array");
      const context = paragraph.context;
      const qas = paragraph.qas.map((qa, q): SquadQuestion => {
        const at = where(`.paragraphs[${p}].qas[${q}]`);
        if (!isObject(qa) || typeof qa.id !== "string" || !qa.id) throw new InputError(file, at, "id", "expected a non-empty string");
        if (typeof qa.question !== "string" || !qa.question.trim()) throw new InputError(file, `${at} (id ${qa.id})`, "question", "expected a non-empty string");
        if (!Array.isArray(qa.answers) || qa.answers.length === 0) throw new InputError(file, `${at} (id ${qa.id})`, "answers", "expected a non-empty array");
        const answers = qa.answers.map((ans, k): SquadAnswer => {
          if (!isObject(ans) || typeof ans.text !== "string" || typeof ans.answer_start !== "number") throw new InputError(file, `${at}.answers[${k}] (id ${qa.id})`, "text", "expected {text: string, answer_start: number}");
          if (context.slice(ans.answer_start, ans.answer_start + ans.text.length) !== ans.text) throw new InputError(file, `${at}.answers[${k}] (id ${qa.id})`, "answer_start", `the paragraph has no ${JSON.stringify(ans.text)} at ${ans.answer_start}`);
          return { text: ans.text, answer_start: ans.answer_start };
        });
        return { id: qa.id, question: qa.question, answers };
      });
      return { context, qas };
    });
    return { title: article.title, paragraphs };
  });
}

/** Reads a SQuAD v1.1 file, plain or gzipped. */
export function readSquad(file: string = SQUAD_FILE): SquadArticle[] {
  return parseSquad(readTextMaybeGzipSync(file), file);
}

/** The shipped articles split into train and validation sides by article. */
export function readSquadSplit(file: string = SQUAD_FILE): { train: SquadArticle[]; validation: SquadArticle[] } {
  const articles = readSquad(file);
  const validation = squadValidationTitles(articles);
  return { train: articles.filter((a) => !validation.has(a.title)), validation: articles.filter((a) => validation.has(a.title)) };
}
