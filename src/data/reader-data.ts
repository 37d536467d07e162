/**
 * The text a reader base is trained and tested on, from the shipped files only, with the held-apart
 * parts kept out of training: the ASQA ambiguous questions of the benchmark's test split (the same
 * split as `ktu data split`: corrected filter, seed 42, 30%) and every HotpotQA question and paragraph
 * of the held-apart file (extractive QA is measured there).
 */
import { readdirSync } from "node:fs";
import { dataPath } from "../util/paths.ts";
import { readAsqa, type AsqaItem } from "./asqa.ts";
import { buildBenchmark, NO_CONTEXT, passageWithHeader, type BenchmarkRow } from "./benchmark.ts";
import { readHotpotAll, type HotpotSample } from "./hotpot.ts";
import { splitBenchmark, DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION } from "./split.ts";

/** A question whose answer is a span of its context. */
export interface SpanQa {
  question: string;
  context: string;
  answer: string;
  source: "hotpot" | "asqa" | "squad";
  /** Group for cluster bootstraps: the HotpotQA id or the ASQA ambiguous question. */
  group: string;
}

export interface ReaderData {
  /** Documents for language-model pretraining (no held-apart text). */
  corpus: string[];
  qaTrain: SpanQa[];
  /** Extractive QA on the held-apart HotpotQA file (its paragraphs are not in the corpus). */
  qaTest: SpanQa[];
  benchmarkTrain: BenchmarkRow[];
  benchmarkTest: BenchmarkRow[];
}

export const READER_HELD_OUT_HOTPOT = "rpt_hf_distractor_validation_dev.jsonl";

const paragraph = (title: string, sentences: readonly string[]): string => `${title}: ${sentences.join("").trim()}`;

/** The supporting paragraphs of a HotpotQA question, each as "title: text", and whether the answer is a span of them. */
export function hotpotSpanQa(s: HotpotSample): SpanQa | undefined {
  const titles = new Set(s.supporting_facts.map(([t]) => t));
  const context = s.context.filter(([t]) => titles.has(t)).map(([t, sent]) => paragraph(t, sent)).join("\n");
  const answer = s.answer.trim();
  if (!answer || /^(yes|no)$/i.test(answer) || !context.includes(answer)) return undefined;
  return { question: s.question, context, answer, source: "hotpot", group: s.id };
}

/** ASQA disambiguated questions whose short answer appears in their own passage. */
export function asqaSpanQa(items: readonly AsqaItem[]): SpanQa[] {
  const out: SpanQa[] = [];
  for (const item of items) {
    for (const pair of item.qa_pairs) {
      if (pair.context === NO_CONTEXT) continue;
      const context = passageWithHeader(pair);
      const answer = pair.short_answers.find((a) => a.trim() && context.includes(a.trim()))?.trim();
      if (answer) out.push({ question: pair.question, context, answer, source: "asqa", group: item.sample_id });
    }
  }
  return out;
}

export async function loadReaderData(): Promise<ReaderData> {
  const { items } = await readAsqa(dataPath("asqa", "asqa_dev_first400.jsonl"));
  const { rows } = buildBenchmark(items, { filter: "corrected" });
  const split = splitBenchmark(rows, { seed: DEFAULT_SPLIT_SEED, testFraction: DEFAULT_TEST_FRACTION });
  const testIds = new Set(split.test.map((r) => r.sample_id));
  const trainItems = items.filter((i) => !testIds.has(i.sample_id));

  const files = readdirSync(dataPath("hotpotqa")).filter((f) => /\.jsonl?$/.test(f)).sort();
  const heldSamples = await readHotpotAll(dataPath("hotpotqa", READER_HELD_OUT_HOTPOT));
  const heldParagraphs = new Set(heldSamples.flatMap((s) => s.context.map(([t, sent]) => paragraph(t, sent))));
  const seen = new Set<string>();
  const corpus: string[] = [];
  const qaTrain: SpanQa[] = [];
  for (const f of files) {
    if (f === READER_HELD_OUT_HOTPOT) continue;
    for (const s of await readHotpotAll(dataPath("hotpotqa", f))) {
      for (const [t, sent] of s.context) {
        const p = paragraph(t, sent);
        if (heldParagraphs.has(p) || seen.has(p)) continue;
        seen.add(p);
        corpus.push(p);
      }
      const qa = hotpotSpanQa(s);
      if (qa && !qa.context.split("\n").some((p) => heldParagraphs.has(p))) qaTrain.push(qa);
    }
  }
  for (const item of trainItems) {
    for (const pair of item.qa_pairs) {
      if (pair.context === NO_CONTEXT) continue;
      const p = passageWithHeader(pair);
      if (!seen.has(p)) {
        seen.add(p);
        corpus.push(p);
      }
    }
  }
  qaTrain.push(...asqaSpanQa(trainItems));
  const qaTest = heldSamples.map(hotpotSpanQa).filter((q): q is SpanQa => q !== undefined);
  return { corpus, qaTrain, qaTest, benchmarkTrain: split.train, benchmarkTest: split.test };
}
