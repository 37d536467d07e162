/**
 * The reader curriculum's tasks (recipes/reader/README.md says why each exists and what it measured).
 * Every generator is a pure function of its Rng, so a batch is a function of (seed, step) and a resumed
 * run draws the batches an uninterrupted one would. Each returns an LmExample: token ids and the first
 * position whose prediction is scored; the loss is on the answer and EOS only (or on the copy).
 *
 * Two kinds:
 * - on random word pieces (ids, no text): the matching circuits, where nothing but looking back can
 *   predict the target (no language prior to lean on): plain repeat, and lookup inside the QA template;
 * - on the train side's natural passages (text): sentence cloze questions whose answer is an entity,
 *   date or word of one sentence, the train side's real QA pairs, and next-token prediction.
 */
import type { SpanQa } from "../../src/data/reader-data.ts";
import { cropWindow } from "../../src/data/synthetic.ts";
import type { BpeTokenizer } from "../../src/model/bpe.ts";
import { compactQaPrompt } from "../../src/pipeline/compact.ts";
import type { LmExample } from "../../src/train/pretrain.ts";
import type { Rng } from "../../src/util/rng.ts";

/** A QA prompt from (question, context): the compact TASK_QA of the pipeline, or the reader's context-first form. */
export type QaPromptBuilder = (question: string, context: string) => string;

/** The QA prompt cut into the id pieces the random-piece tasks are assembled from. */
export interface TemplateIds {
  /** BOS + the text before the first slot (e.g. "Trustworthy QA Task, else Not Provided.\nQUESTION:"). */
  prefix: number[];
  /** Between the two slots (e.g. "\nCONTEXT:"). */
  mid: number[];
  /** After the second slot (e.g. "\nANSWER:"). */
  suffix: number[];
  /** Whether the question is the first slot. */
  questionFirst: boolean;
  bos: number;
  eos: number;
  newline: number;
  what: number;
  qmark: number;
  /** Pieces " x..." that start a word with a letter, by id (lower ids merged earlier: more frequent). */
  wordPieces: number[];
}

/** The prompt's ids from question and context ids (no text round trip). */
export const assemble = (t: TemplateIds, question: readonly number[], context: readonly number[]): number[] =>
  t.questionFirst ? [...t.prefix, ...question, ...t.mid, ...context, ...t.suffix] : [...t.prefix, ...context, ...t.mid, ...question, ...t.suffix];

export function templateIds(tok: BpeTokenizer, prompt: QaPromptBuilder = compactQaPrompt): TemplateIds {
  const text = prompt("\u0000", "\u0001");
  const questionFirst = text.indexOf("\u0000") < text.indexOf("\u0001");
  const [head, tail] = text.split(questionFirst ? "\u0000" : "\u0001") as [string, string];
  const [mid, suffix] = tail.split(questionFirst ? "\u0001" : "\u0000") as [string, string];
  const one = (piece: string): number => {
    const ids = tok.encodeContinuation(piece);
    if (ids.length !== 1) throw new Error(`tokenizer: ${JSON.stringify(piece)} is ${ids.length} pieces, expected one`);
    return ids[0]!;
  };
  const wordPieces: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) if (/^ [A-Za-z]/.test(tok.piece(id))) wordPieces.push(id);
  // Each slot follows "LABEL: "; the slot's first piece carries that space, so the label ends trimmed.
  const t: TemplateIds = { prefix: tok.encode(head.trimEnd(), { bos: true }), mid: tok.encodeContinuation(mid.trimEnd()), suffix: tok.encodeContinuation(suffix), questionFirst, bos: tok.bosId, eos: tok.eosId, newline: one("\n"), what: one(" what"), qmark: one("?"), wordPieces };
  // The pieces must concatenate to the real prompt's ids (the chunker never merges across a space).
  const q = [wordPieces[10]!, t.qmark];
  const c = [wordPieces[20]!, wordPieces[30]!];
  const real = tok.encode(prompt(tok.decode(q).trimStart(), tok.decode(c).trimStart()), { bos: true });
  if (real.join() !== assemble(t, q, c).join()) throw new Error(`template pieces do not rebuild the QA prompt:\n${real}\n${assemble(t, q, c)}`);
  return t;
}

/** `n` pieces from the first `pool` word pieces (all when 0), distinct when `distinct`. */
function randomPieces(rng: Rng, t: TemplateIds, n: number, pool: number, distinct: boolean): number[] {
  const from = pool > 0 ? Math.min(pool, t.wordPieces.length) : t.wordPieces.length;
  const out: number[] = [];
  const seen = new Set<number>();
  while (out.length < n) {
    const id = t.wordPieces[rng.int(0, from - 1)]!;
    if (distinct && seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}

/** Plain repeat: BOS, n random pieces, newline, the same pieces; scored from the copy's second piece. */
export function repeatTask(rng: Rng, t: TemplateIds, n: number, pool: number): LmExample {
  const x = randomPieces(rng, t, n, pool, false);
  return { ids: [t.bos, ...x, t.newline, ...x], lossFrom: n + 3 };
}

/**
 * General induction: a row of random pieces in which one segment of 3-12 pieces comes again later, at
 * a random distance, with random pieces around both copies; scored on the second copy after its first
 * piece. Unlike plain repeat (always the same distance), only matching content finds the source, so a
 * copy circuit learned here does not lean on positions.
 */
export function inductionTask(rng: Rng, t: TemplateIds, length: number, pool: number): LmExample {
  const row = randomPieces(rng, t, length, pool, false);
  const n = rng.int(3, Math.min(12, Math.floor(length / 3)));
  const from = rng.int(0, length - 2 * n - 1);
  const to = rng.int(from + n + 1, length - n);
  const segment = row.slice(from, from + n);
  row.splice(to, n, ...segment);
  return { ids: [t.bos, ...row], lossFrom: 0, scored: [[to + 2, to + 1 + n]] };
}

/**
 * How many pieces a lookup question quotes before the answer (1 to `before`) and, in its cloze form,
 * after the " what" (1 to `after`). Short reaches keep the answer at a fixed distance from the end of
 * the question; natural cloze questions quote a whole sentence, so the later levels reach further.
 */
export interface LookupReach {
  before: number;
  after: number;
}

export const SHORT_REACH: LookupReach = { before: 3, after: 2 };

/**
 * Lookup inside the QA template on a window of `w` distinct random pieces: the question is the 1-3
 * pieces before the answer ("before"), or 1-2 before, " what", 1-2 after ("cloze"); the answer is the
 * one piece they point at, then EOS. Distinct pieces make the answer unique; one piece makes its end known.
 */
export function lookupTask(rng: Rng, t: TemplateIds, w: number, pool: number, reach: LookupReach = SHORT_REACH): LmExample {
  const x = randomPieces(rng, t, w, pool, true);
  const cloze = rng.next() < 0.5;
  const before = rng.int(1, Math.min(reach.before, w - 2));
  const after = cloze ? rng.int(1, Math.max(1, Math.min(reach.after, w - 1 - before))) : 0;
  const at = rng.int(before, w - 1 - after);
  const question = cloze ? [...x.slice(at - before, at), t.what, ...x.slice(at + 1, at + 1 + after), t.qmark] : [...x.slice(at - before, at), t.qmark];
  const prompt = assemble(t, question, x);
  return { ids: [...prompt, x[at]!, t.eos], lossFrom: prompt.length };
}

/** Copy inside the template: the first slot holds the pieces, the second repeats them (scored from its second piece). */
export function templateRepeatTask(rng: Rng, t: TemplateIds, n: number, pool: number): LmExample {
  const x = randomPieces(rng, t, n, pool, false);
  const first = t.questionFirst ? [...x, t.qmark] : x;
  const prompt = [...t.prefix, ...first, ...t.mid, x[0]!];
  return { ids: [...prompt, ...x.slice(1), ...(t.questionFirst ? [] : [t.qmark]), ...t.suffix], lossFrom: prompt.length };
}

// ---- natural passages ----

/** A train-side document split into sentences (once, at load). */
export interface CorpusDoc {
  text: string;
  sentences: string[];
}

export function splitDocs(corpus: readonly string[]): CorpusDoc[] {
  return corpus.map((text) => ({ text, sentences: text.split(/(?<=[.!?])\s+|\n/).map((s) => s.trim()).filter((s) => s.split(" ").length >= 6) })).filter((d) => d.sentences.length > 0);
}

/** Words that are capitalised only because they start the sentence (lower-cased behind a fronted wh-word). */
const SENTENCE_STARTERS = new Set(["The", "A", "An", "In", "On", "At", "It", "He", "She", "They", "His", "Her", "Its", "Their", "This", "That", "As", "After", "During", "From", "For", "With", "By", "Since", "When", "While", "There", "These", "Some", "One", "Many", "Most"]);

const WH_WHEN = /^(\d{3,4}|(?:\d{1,2} )?(?:January|February|March|April|May|June|July|August|September|October|November|December)(?: \d{1,2})?,? \d{4})$/;

/** Candidate answers of a sentence: runs of 1-4 capitalised words (not the first word), years and dates, numbers. */
export function answerCandidates(sentence: string): { text: string; start: number }[] {
  const out: { text: string; start: number }[] = [];
  const re = /(?:\d{1,2} )?(?:January|February|March|April|May|June|July|August|September|October|November|December)(?: \d{1,2})?,? \d{4}|\b\d[\d,.]*\b|\b[A-Z][\w'.-]*(?: (?:of |de |the |and )?[A-Z][\w'.-]*){0,3}/g;
  for (const m of sentence.matchAll(re)) {
    const text = m[0].replace(/[.,']+$/, "");
    if (m.index === 0 || text.length < 2) continue;
    out.push({ text, start: m.index! });
  }
  return out;
}

/**
 * A question built from one sentence: the answer (an entity, date or number of the sentence; a plain
 * word when it has none) is replaced by a wh-word, kept in place or moved to the front, and about 15%
 * of the other words are dropped, so that the question shares most, not all, of its words with the
 * passage, as real questions do.
 */
export interface ClozeStyle {
  /** Share of questions with the wh-word moved to the front (the rest keep it in place). */
  front: number;
  /** Share of the other words dropped. */
  drop: number;
}

export const DEFAULT_CLOZE: ClozeStyle = { front: 0.5, drop: 0.15 };

export function clozeQuestion(rng: Rng, sentence: string, style: ClozeStyle = DEFAULT_CLOZE): { question: string; answer: string } | undefined {
  const candidates = answerCandidates(sentence);
  let answer: { text: string; start: number };
  if (candidates.length > 0 && rng.next() < 0.85) answer = rng.pick(candidates);
  else {
    const words = [...sentence.matchAll(/\b[a-z]{4,}\b/g)];
    if (words.length === 0) return undefined;
    const m = rng.pick(words);
    answer = { text: m[0], start: m.index! };
  }
  const wh = WH_WHEN.test(answer.text) ? "when" : /^[\d,.]+$/.test(answer.text) ? "how many" : /^[A-Z]/.test(answer.text) ? rng.pick(["who", "what", "which"]) : "what";
  const beforeWords = sentence.slice(0, answer.start).split(" ").filter(Boolean);
  const afterWords = sentence.slice(answer.start + answer.text.length).replace(/[.!?]$/, "").split(" ").filter(Boolean);
  const drop = (ws: string[]): string[] => ws.filter(() => rng.next() >= style.drop);
  const front = rng.next() < style.front;
  const words = front ? [wh[0]!.toUpperCase() + wh.slice(1), ...drop(beforeWords).map((w, i) => (i === 0 && SENTENCE_STARTERS.has(w) ? w.toLowerCase() : w)), ...drop(afterWords)] : [...drop(beforeWords), wh, ...drop(afterWords)];
  return { question: words.join(" ").replace(/[,;:]$/, "") + "?", answer: answer.text };
}

/**
 * A cloze question (clozeQuestion) on one sentence of a passage, with a context window of about
 * `chars` characters that holds the sentence at a random offset. Undefined when it does not fit.
 */
export function clozeTask(rng: Rng, docs: readonly CorpusDoc[], chars: number, style: ClozeStyle = DEFAULT_CLOZE): { question: string; context: string; answer: string } | undefined {
  const doc = rng.pick(docs);
  const sentence = rng.pick(doc.sentences);
  if (sentence.length > chars * 0.8) return undefined;
  const q = clozeQuestion(rng, sentence, style);
  if (!q) return undefined;
  const context = cropWindow(doc.text, sentence, chars, rng);
  if (!context.includes(sentence) || !context.includes(q.answer)) return undefined;
  return { question: q.question, context, answer: q.answer };
}

/**
 * Up to `turns` cloze questions on the sentences of one passage window (different sentences, in
 * random order). With the passage first, each further question is another turn after the same
 * passage, so one row scores several answers (multiTurnExample).
 */
export function multiClozeTask(rng: Rng, docs: readonly CorpusDoc[], chars: number, turns: number, style: ClozeStyle = DEFAULT_CLOZE): { context: string; qa: { question: string; answer: string }[] } | undefined {
  const doc = rng.pick(docs);
  const anchor = rng.pick(doc.sentences);
  if (anchor.length > chars * 0.8) return undefined;
  const context = cropWindow(doc.text, anchor, chars, rng);
  const inside = rng.shuffle(doc.sentences.filter((x) => context.includes(x)));
  const qa: { question: string; answer: string }[] = [];
  for (const sentence of inside) {
    if (qa.length >= turns) break;
    const q = clozeQuestion(rng, sentence, style);
    if (q && context.includes(q.answer)) qa.push(q);
  }
  return qa.length ? { context, qa } : undefined;
}

/**
 * One passage, then several question/answer turns, each as the prompt ends after the passage
 * ("\nQUESTION: q\nANSWER:"), the answer and EOS; every answer is scored, nothing else. Only for
 * context-first prompts, whose first turn is exactly the single-question prompt.
 */
export function multiTurnExample(tok: BpeTokenizer, prompt: QaPromptBuilder, context: string, qa: readonly { question: string; answer: string }[], maxLen: number): LmExample | undefined {
  const first = tok.encode(prompt(qa[0]!.question, context), { bos: true });
  const ids = [...first];
  const scored: [number, number][] = [];
  qa.forEach((turn, i) => {
    if (i > 0) ids.push(...tok.encodeContinuation(prompt(turn.question, "\u0001").split("\u0001")[1]!));
    const start = ids.length;
    ids.push(...tok.encodeContinuation(` ${turn.answer}`), tok.eosId);
    scored.push([start, ids.length]);
  });
  // Turns that do not fit are dropped whole, from the last.
  while (ids.length > maxLen && scored.length > 1) {
    scored.pop();
    ids.length = scored[scored.length - 1]![1];
  }
  return ids.length <= maxLen ? { ids, lossFrom: first.length, scored } : undefined;
}

/**
 * Lookup with several turns after one window of `w` distinct random pieces (context-first prompts
 * only): each turn asks as lookupTask does, about a different piece.
 */
export function multiLookupTask(rng: Rng, t: TemplateIds, w: number, pool: number, turns: number): LmExample {
  if (t.questionFirst) throw new Error("multiLookupTask: the prompt puts the question first; several turns need the passage first");
  const x = randomPieces(rng, t, w, pool, true);
  const ids = [...t.prefix, ...x];
  const scored: [number, number][] = [];
  const asked = new Set<number>();
  for (let i = 0; i < Math.min(turns, w - 2); i++) {
    const cloze = rng.next() < 0.5;
    const before = rng.int(1, Math.min(3, w - 2));
    const after = cloze ? rng.int(1, 2) : 0;
    const at = rng.int(before, w - 1 - after);
    if (asked.has(at)) continue;
    asked.add(at);
    const question = cloze ? [...x.slice(at - before, at), t.what, ...x.slice(at + 1, at + 1 + after), t.qmark] : [...x.slice(at - before, at), t.qmark];
    ids.push(...t.mid, ...question, ...t.suffix);
    scored.push([ids.length, ids.length + 2]);
    ids.push(x[at]!, t.eos);
  }
  return { ids, lossFrom: scored[0]![0], scored };
}

/** Prompt + " answer" + EOS, scored on the answer; undefined when over `maxLen`. */
export function qaExample(tok: BpeTokenizer, prompt: QaPromptBuilder, question: string, context: string, answer: string, maxLen: number): LmExample | undefined {
  const promptIds = tok.encode(prompt(question, context), { bos: true });
  const ids = [...promptIds, ...tok.encodeContinuation(` ${answer}`), tok.eosId];
  return ids.length <= maxLen ? { ids, lossFrom: promptIds.length } : undefined;
}

/** One of the train side's real QA pairs, its passage cropped to `chars` around the answer at a random offset. */
export function realQaTask(rng: Rng, qa: readonly SpanQa[], chars: number): { question: string; context: string; answer: string } {
  const item = rng.pick(qa);
  return { question: item.question, context: cropWindow(item.context, item.answer, chars, rng), answer: item.answer };
}

/** Next-token prediction on a window of the corpus stream, scored everywhere. */
export function lmTask(rng: Rng, stream: Int32Array, tokens: number): LmExample {
  const start = rng.int(0, stream.length - tokens - 1);
  return { ids: Array.from(stream.subarray(start, start + tokens + 1)), lossFrom: 0 };
}

// ---- bAbI ----

/**
 * Every person of a bAbI task-1 context asked at once ("Where is X?" for each, in random order), with
 * the answer from replaying its statements (a task-1 statement ends in its person's new location).
 * Several answers per row from one passage: denser supervision of the same lookup that the single
 * questions of the train file ask. Undefined when a statement is not of task 1's form.
 */
export function babiAllPersonsTask(rng: Rng, questions: readonly { statements: string[] }[], lastMentionsOnly = false, maxPersons = Infinity, heldOut?: (context: string, question: string) => boolean): { context: string; qa: { question: string; answer: string }[] } | undefined {
  const q = rng.pick(questions);
  const where = new Map<string, { place: string; statement: string }>();
  for (const s of q.statements) {
    const m = /^([A-Z][a-z]+) (?:moved|went|journeyed|travelled|went back) to the ([a-z]+)\.$/.exec(s);
    if (!m) return undefined;
    where.delete(m[1]!);
    where.set(m[1]!, { place: m[2]!, statement: s });
  }
  // With lastMentionsOnly, each person's last statement alone (in story order): binding without
  // recency; maxPersons keeps that many of them (fewer distractors: a larger share of the gradient).
  if (lastMentionsOnly && where.size > maxPersons) {
    const keep = new Set(rng.shuffle([...where.keys()]).slice(0, maxPersons));
    for (const who of [...where.keys()]) if (!keep.has(who)) where.delete(who);
  }
  const context = lastMentionsOnly ? [...where.values()].map((w) => w.statement).join(" ") : q.statements.join(" ");
  // A short train passage can equal a validation one by chance (bAbI's vocabulary is tiny): its asked
  // pairs that are held out are left out, so the held-out rows are never trained on.
  const qa = rng.shuffle([...where].map(([who, { place }]) => ({ question: `Where is ${who}?`, answer: place }))).filter((t) => !heldOut?.(context, t.question));
  return qa.length ? { context, qa } : undefined;
}
