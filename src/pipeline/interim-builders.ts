/**
 * INTERIM benchmark builders for bAbI and SQuAD, with the names and shapes that the data branch
 * (issue 20 part 1, src/data) is writing: `babiBenchmark(questions, {task, seed})` and
 * `squadBenchmark(articles, {seed})`, rows in ASQA's BenchmarkRow shape. The main job imports them
 * from here until those land; then sources.ts imports the real ones and this file goes.
 *
 * - bAbI: the unknown question is the same question about a person or object the story never
 *   mentions (the word at the same place in another question of the same form, checked against every
 *   word of the context); a question with no such sibling gives no row. Cluster: the story.
 * - SQuAD: the unknown question is a question on another paragraph of the same article none of whose
 *   answers occurs in the shown paragraph (the nearest such paragraph first). Cluster: the paragraph.
 */
import type { BabiQuestion } from "../data/babi.ts";
import { babiContext } from "../data/babi.ts";
import type { BenchmarkRow } from "../data/benchmark.ts";
import type { SquadArticle } from "../data/squad.ts";
import { Rng } from "../util/rng.ts";

const words = (s: string): string[] => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

export function babiBenchmark(questions: readonly BabiQuestion[], opts: { task?: number; seed?: number } = {}): BenchmarkRow[] {
  const rng = new Rng(opts.seed ?? 42);
  const qs = opts.task === undefined ? questions : questions.filter((q) => q.task === opts.task);
  // Questions of the same form (all words but one), with the varying word's values.
  const forms = new Map<string, Set<string>>();
  const tokens = (q: string) => q.replace(/\?$/, "").trim().split(/\s+/);
  for (const q of qs) {
    const t = tokens(q.question);
    t.forEach((w, i) => {
      const key = [...t.slice(0, i), "_", ...t.slice(i + 1)].join(" ");
      const set = forms.get(key) ?? new Set<string>();
      set.add(w);
      forms.set(key, set);
    });
  }
  const rows: BenchmarkRow[] = [];
  let id = 0;
  for (const q of qs) {
    const context = babiContext(q);
    const seen = new Set(words(context));
    const t = tokens(q.question);
    let neg: string | null = null;
    // The last word of the question that the story mentions is the entity to swap.
    for (let i = t.length - 1; i >= 0 && neg === null; i--) {
      if (!seen.has(t[i]!.toLowerCase())) continue;
      const key = [...t.slice(0, i), "_", ...t.slice(i + 1)].join(" ");
      const others = [...(forms.get(key) ?? [])].filter((w) => words(w).every((x) => !seen.has(x))).sort();
      if (others.length) neg = [...t.slice(0, i), rng.pick(others), ...t.slice(i + 1)].join(" ") + "?";
    }
    if (neg === null) continue;
    const answer = q.answer.split(",");
    rows.push({
      id: id++,
      context,
      pos_query: q.question,
      pos_answer: answer.length > 1 ? [answer.join(" and "), ...answer] : answer,
      neg_query: neg,
      neg_answer: [],
      sample_id: `babi-${q.task}-story-${q.story}`,
      ambiguous_question: q.question,
      pos_wikipage: null,
      neg_wikipage: null,
      neg_context: "",
    });
  }
  return rows;
}

export function squadBenchmark(articles: readonly SquadArticle[], opts: { seed?: number } = {}): BenchmarkRow[] {
  const rng = new Rng(opts.seed ?? 42);
  const rows: BenchmarkRow[] = [];
  let id = 0;
  articles.forEach((a) => {
    a.paragraphs.forEach((p, pi) => {
      const shown = p.context.toLowerCase();
      // Other paragraphs, nearest first: same topic and wording style.
      const order = a.paragraphs.map((_, k) => k).filter((k) => k !== pi).sort((x, y) => Math.abs(x - pi) - Math.abs(y - pi) || x - y);
      for (const q of p.qas) {
        let neg: { question: string; answers: string[]; context: string } | null = null;
        for (const k of order) {
          const candidates = a.paragraphs[k]!.qas.filter((o) => o.answers.every((ans) => !shown.includes(ans.text.toLowerCase())));
          if (candidates.length) {
            const o = rng.pick(candidates);
            neg = { question: o.question, answers: [...new Set(o.answers.map((x) => x.text))], context: a.paragraphs[k]!.context };
            break;
          }
        }
        if (!neg) continue;
        rows.push({
          id: id++,
          context: p.context,
          pos_query: q.question,
          pos_answer: [...new Set(q.answers.map((x) => x.text))],
          neg_query: neg.question,
          neg_answer: neg.answers,
          sample_id: `squad-${a.title}-p${pi}`,
          ambiguous_question: q.question,
          pos_wikipage: a.title,
          neg_wikipage: a.title,
          neg_context: neg.context,
        });
      }
    });
  });
  return rows;
}
