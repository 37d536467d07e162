import { Rng } from "../util/rng.ts";
import type { BenchmarkRow } from "./benchmark.ts";
import type { SquadArticle } from "./squad.ts";

/**
 * The contextual-QA benchmark made from SQuAD v1.1 (src/data/README.md, "SQuAD benchmark"): one row
 * per question of each paragraph. The known question is that question on its own paragraph, with
 * all its gold answers; the unknown question is a question of ANOTHER paragraph of the same article
 * none of whose gold answers occurs in the shown paragraph (case-insensitive substring), drawn by a
 * seeded Rng. Same article, as ASQA's rows pair two disambiguations of one ambiguous question: the
 * unknown question is on the topic of the passage, not trivially off it. A question with no such
 * candidate is skipped and counted.
 */

export interface SquadBenchmarkOptions {
  seed?: number;
}

export interface SquadBenchmarkCounts {
  articles: number;
  paragraphs: number;
  questions: number;
  rows: number;
  /** Questions for which no other paragraph of the article has a question whose answers all miss the shown one. */
  skippedNoUnknown: number;
}

export const DEFAULT_SQUAD_BENCHMARK_SEED = 42;

/** The cluster unit of a SQuAD row (one paragraph): "Title#p3". */
export const squadSampleId = (title: string, paragraph: number): string => `${title}#p${paragraph}`;

export function squadBenchmarkWithCounts(articles: readonly SquadArticle[], opts: SquadBenchmarkOptions = {}): { rows: BenchmarkRow[]; counts: SquadBenchmarkCounts } {
  const rng = new Rng(opts.seed ?? DEFAULT_SQUAD_BENCHMARK_SEED);
  const rows: BenchmarkRow[] = [];
  const counts: SquadBenchmarkCounts = { articles: articles.length, paragraphs: 0, questions: 0, rows: 0, skippedNoUnknown: 0 };
  for (const article of articles) {
    article.paragraphs.forEach((paragraph, p) => {
      counts.paragraphs++;
      const shown = paragraph.context.toLowerCase();
      const candidates = article.paragraphs.flatMap((other, o) => (o === p ? [] : other.qas)).filter((qa) => qa.answers.every((a) => !shown.includes(a.text.toLowerCase())));
      for (const qa of paragraph.qas) {
        counts.questions++;
        if (candidates.length === 0) {
          counts.skippedNoUnknown++;
          continue;
        }
        const neg = rng.pick(candidates);
        rows.push({
          id: rows.length,
          context: paragraph.context,
          pos_query: qa.question,
          pos_answer: [...new Set(qa.answers.map((a) => a.text))],
          neg_query: neg.question,
          neg_answer: [...new Set(neg.answers.map((a) => a.text))],
          sample_id: squadSampleId(article.title, p),
          ambiguous_question: article.title,
          pos_wikipage: article.title,
          neg_wikipage: article.title,
          neg_context: "",
          pos_id: qa.id,
          neg_id: neg.id,
        });
      }
    });
  }
  counts.rows = rows.length;
  return { rows, counts };
}

/** One benchmark row per SQuAD question that has an unknown partner (see the file's comment). */
export const squadBenchmark = (articles: readonly SquadArticle[], opts: SquadBenchmarkOptions = {}): BenchmarkRow[] => squadBenchmarkWithCounts(articles, opts).rows;
