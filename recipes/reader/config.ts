/**
 * The reader recipe as plain data: change a number here, not in code. Training walks through a
 * curriculum's `levels` in order; a level ends when its gate task's teacher-forced exact match on a fixed set reaches `gate`
 * at two checks in a row, or after `maxSteps`. Each step draws one task by the level's `mix` weights
 * and fills a batch with it. recipes/reader/README.md gives the measurements behind each choice.
 */
export type ReaderTask = "induct" | "repeat" | "lookup" | "mlookup" | "trepeat" | "cloze" | "mcloze" | "qa" | "lm" | "babi1" | "babi" | "mbabi1" | "bind" | "bind2" | "squad";

export interface ReaderLevel {
  name: string;
  mix: Partial<Record<ReaderTask, number>>;
  /** The task whose exact match promotes, and the share needed; no gate: run `maxSteps`. */
  gate?: { task: ReaderTask; share: number };
  maxSteps: number;
  /** Random pieces come from the first `pool` word pieces (0: all of them). */
  pool: number;
  /** Pieces per plain/template repeat, drawn from this list. */
  repeatLengths: number[];
  /** Pieces a lookup question quotes around its answer (tasks.ts LookupReach; default 3 before, 2 after). */
  reach?: { before: number; after: number };
  /** Pieces in a lookup window. */
  window: number;
  /** Characters of natural passage around the question's sentence (cloze) or answer (qa). */
  chars: number;
  /** Questions per row of the multi-turn tasks (mlookup, mcloze). */
  turns: number;
  /** Rows per batch. */
  batch: number;
  /** How cloze questions are made (tasks.ts ClozeStyle; default: half fronted, 15% of words dropped). */
  cloze?: { front: number; drop: number };
  /** Peak learning rate of the level (default: the recipe's). */
  learningRate?: number;
  /** Learning rate over the level: constant, or cosine from the peak to `peak x floor` (the last level). */
  decay?: { floor: number };
}

const copyLevels: ReaderLevel[] = [
  // The copy (induction) circuit, alone and dense: from a pool of 512 pieces it forms in ~150 steps of
  // 64 (prototype run D, and every run here); mixed into other tasks it did not form in 1.6M tokens.
  { name: "repeat-512", mix: { repeat: 1 }, gate: { task: "repeat", share: 0.9 }, maxSteps: 800, pool: 512, repeatLengths: [8, 16, 24], window: 0, chars: 0, turns: 1, batch: 64 },
  { name: "repeat-all", mix: { repeat: 1 }, gate: { task: "repeat", share: 0.9 }, maxSteps: 800, pool: 0, repeatLengths: [8, 16, 24], window: 0, chars: 0, turns: 1, batch: 64 },
];

/** Lookup in the QA template on random pieces (nothing but looking back predicts the answer); the gate asks the real prompt's single question. */
const lookupLevel = (name: string, window: number, maxSteps: number, mix: ReaderLevel["mix"], repeatLengths = [8, 16, 24]): ReaderLevel => ({
  name, mix, gate: { task: "lookup", share: 0.85 }, maxSteps, pool: 0, repeatLengths, window, chars: 0, turns: Math.min(8, Math.max(2, window / 2)), batch: 64,
});
/**
 * Natural passages: sentence cloze with entity answers, the train side's real QA pairs, some LM. At the
 * copy levels' 3e-3 the natural rows undid the template copy within 500 steps (run A3: 0.25 -> 6.1), so
 * these levels run at 1e-3.
 */
const naturalLevel = (name: string, chars: number, maxSteps: number, mix: ReaderLevel["mix"], gate?: number): ReaderLevel => ({
  name, mix, gate: gate ? { task: "cloze", share: gate } : undefined, maxSteps, pool: 0, repeatLengths: [8, 16, 24], window: 32, reach: { before: 10, after: 10 }, chars, turns: 4, batch: 32, learningRate: 1e-3,
});
const lookupLevels = (mix: ReaderLevel["mix"], repeatLengths?: number[]): ReaderLevel[] => [
  // Gate-driven: run A left lookup-8 at its old limit of 1,500 steps with exact match 0.33 and fell to
  // 0.01 at 16 pieces; a window is worth doubling only once it is solved.
  lookupLevel("lookup-8", 8, 8000, mix, repeatLengths),
  lookupLevel("lookup-16", 16, 4000, mix, repeatLengths),
  // Questions quoting up to 10 pieces on each side: natural cloze questions quote a whole sentence
  // around the wh-word, and a circuit that reads only the last pieces before "?" did not carry over to
  // them (run A4: greedy " The" for every question after 1,000 natural steps).
  { ...lookupLevel("lookup-32", 32, 3000, mix, repeatLengths), reach: { before: 10, after: 10 } },
  { ...lookupLevel("lookup-64", 64, 3000, mix, repeatLengths), reach: { before: 10, after: 10 } },
];
// Cloze questions start as the lookup the random levels taught (the wh-word in place, every other word
// kept: the words before the answer are in the passage right before it), then vary as real questions do.
const naturalLevels = (mix: ReaderLevel["mix"]): ReaderLevel[] => [
  { ...naturalLevel("natural-200", 200, 1000, mix, 0.6), cloze: { front: 0, drop: 0 } },
  { ...naturalLevel("natural-400", 400, 1000, mix, 0.6), cloze: { front: 0.25, drop: 0.1 } },
  { ...naturalLevel("natural-600", 600, 1500, mix), cloze: { front: 0.5, drop: 0.15 }, decay: { floor: 0.1 } },
];

/**
 * Real reading supervision (issue 20): after the copy levels, the bAbI train sides (task 1 on its own,
 * and a question of any of the 20 tasks), with some lookup on random pieces so the matching circuit is
 * still asked for; promoted when task 1's teacher-forced exact match holds at 0.97. Then natural
 * passages: SQuAD's train articles, the ASQA/HotpotQA train side, cloze and LM, bAbI kept in the mix.
 */
const readingLevels = (): ReaderLevel[] => [
  ...copyLevels,
  { name: "babi", mix: { babi1: 0.35, babi: 0.35, lookup: 0.15, trepeat: 0.05, repeat: 0.1 }, gate: { task: "babi1", share: 0.97 }, maxSteps: 6000, pool: 0, repeatLengths: [8, 16, 24], window: 8, chars: 0, turns: 1, batch: 64, learningRate: 2e-3 },
  { name: "read-600", mix: { babi1: 0.1, babi: 0.2, squad: 0.3, qa: 0.15, cloze: 0.15, lm: 0.1 }, maxSteps: 4000, pool: 0, repeatLengths: [8, 16, 24], window: 16, reach: { before: 10, after: 10 }, chars: 600, turns: 1, batch: 32, cloze: { front: 0.5, drop: 0.15 }, learningRate: 1e-3, decay: { floor: 0.1 } },
];

// bAbI denser (every person of a task-1 passage asked in one row) and the copy circuit kept in the mix
// (in reading-context-first, 15% copy rows at 2e-3 let plain repeat fall from 0.02 back to 3-6 nats),
// 32 rows a step at 1e-3. First the binding alone: each person's last statement only, every person
// asked (no recency shortcut).
function denseLevels(): ReaderLevel[] {
  return readingLevels().flatMap((l) => (l.name === "babi" ? [
      { ...l, name: "bind", mix: { bind: 0.5, babi1: 0.1, repeat: 0.2, trepeat: 0.2 }, gate: { task: "bind", share: 0.9 }, maxSteps: 3000, batch: 32, learningRate: 1e-3 },
      { ...l, mix: { mbabi1: 0.35, babi1: 0.15, babi: 0.1, bind: 0.1, repeat: 0.15, trepeat: 0.15 }, batch: 32, learningRate: 1e-3 },
    ] : [l]));
}

/** The compact TASK_QA with the passage before the question (the context-first curricula; not the pipeline's format). */
export const CONTEXT_FIRST_QA = "Trustworthy QA Task, else Not Provided.\nCONTEXT: {context}\nQUESTION: {question}\nANSWER:";

export interface ReaderCurriculum {
  /** The QA prompt the reader learns: compact TASK_QA (question first) or the passage first. */
  prompt: "question-first" | "context-first";
  levels: ReaderLevel[];
}

/**
 * The curricula measured so far (recipes/reader/README.md has their curves); `default` is the one
 * whose lookup learned fastest per token.
 */
export const readerCurricula: Record<string, ReaderCurriculum> = {
  default: {
    prompt: "question-first",
    levels: [...copyLevels, ...lookupLevels({ lookup: 0.6, trepeat: 0.2, repeat: 0.2 }), ...naturalLevels({ cloze: 0.5, qa: 0.2, lookup: 0.1, trepeat: 0.05, lm: 0.15 })],
  },
  // Issue 20: copy, then bAbI (real reading supervision), then SQuAD and the natural passages.
  reading: { prompt: "question-first", levels: readingLevels() },
  "reading-context-first": { prompt: "context-first", levels: readingLevels() },
  "reading-dense": { prompt: "context-first", levels: denseLevels() },
  // reading-dense with the binding started on two persons (chance 1/2) at 2e-3, then all persons.
  "reading-bind2": {
    prompt: "context-first",
    levels: denseLevels().flatMap((l) => (l.name === "bind" ? [{ ...l, name: "bind2", mix: { bind2: 0.6, repeat: 0.2, trepeat: 0.2 }, gate: { task: "bind2", share: 0.9 }, learningRate: 2e-3 }, l] : [l])),
  },
  // reading-bind2 from its babi level on, task 1 alone (no other bAbI tasks) and the rate decaying over
  // 1,000 steps: the consolidation branch.
  "reading-focus": {
    prompt: "context-first",
    levels: denseLevels().flatMap((l) => (l.name === "bind" ? [{ ...l, name: "bind2" }, l] : l.name === "babi" ? [
      l,
      { ...l, name: "babi-focus", mix: { mbabi1: 0.5, babi1: 0.3, repeat: 0.1, trepeat: 0.1 }, maxSteps: 1000, decay: { floor: 0.1 } },
      // Task 1 alone after the decay: at 5e-4 (tail) or 1e-3 with 64 rows (tail-64).
      { ...l, name: "babi-tail", mix: { mbabi1: 0.5, babi1: 0.5 }, maxSteps: 2000, learningRate: 5e-4 },
      { ...l, name: "babi-tail-64", mix: { mbabi1: 0.5, babi1: 0.5 }, maxSteps: 2000, learningRate: 1e-3, batch: 64 },
    ] : [l])),
  },
  // The passage first, so that several questions can follow one passage: many answers scored per row.
  "context-first-multi": {
    prompt: "context-first",
    levels: [...copyLevels, ...lookupLevels({ mlookup: 0.6, lookup: 0.1, trepeat: 0.15, repeat: 0.15 }), ...naturalLevels({ mcloze: 0.4, cloze: 0.1, qa: 0.2, mlookup: 0.1, trepeat: 0.05, lm: 0.15 })],
  },
  // The lookup's answer space small first (4 pieces from a pool of 64, as the associative-recall probe
  // started from 2 pairs), then the default's levels.
  "small-first": {
    prompt: "question-first",
    levels: [
      ...copyLevels,
      { ...lookupLevel("lookup-4-pool-64", 4, 3000, { lookup: 0.6, trepeat: 0.2, repeat: 0.2 }), pool: 64 },
      { ...lookupLevel("lookup-8-pool-256", 8, 3000, { lookup: 0.6, trepeat: 0.2, repeat: 0.2 }), pool: 256 },
      ...lookupLevels({ lookup: 0.6, trepeat: 0.2, repeat: 0.2 }),
      ...naturalLevels({ cloze: 0.5, qa: 0.2, lookup: 0.1, trepeat: 0.05, lm: 0.15 }),
    ],
  },
  // Copies at random distances before any lookup: only matching content finds the source.
  "induction-first": {
    prompt: "context-first",
    levels: [
      { name: "induct-512", mix: { induct: 0.7, repeat: 0.3 }, gate: { task: "induct", share: 0.9 }, maxSteps: 1500, pool: 512, repeatLengths: [24, 36, 48], window: 0, chars: 0, turns: 1, batch: 64 },
      { name: "induct-all", mix: { induct: 0.7, repeat: 0.3 }, gate: { task: "induct", share: 0.9 }, maxSteps: 1500, pool: 0, repeatLengths: [24, 36, 48], window: 0, chars: 0, turns: 1, batch: 64 },
      lookupLevel("lookup-4", 4, 1500, { mlookup: 0.5, lookup: 0.1, trepeat: 0.2, induct: 0.2 }, [24, 36, 48]),
      ...lookupLevels({ mlookup: 0.5, lookup: 0.1, trepeat: 0.2, induct: 0.2 }, [24, 36, 48]),
      ...naturalLevels({ mcloze: 0.4, cloze: 0.1, qa: 0.2, mlookup: 0.1, trepeat: 0.05, lm: 0.15 }),
    ],
  },
};

export const readerRecipe = {
  seed: 1,
  tokenizer: { vocabSize: 4096, minCharCount: 30 },
  model: { dim: 128, nLayers: 4, nHeads: 4, hiddenDim: 352, seqLen: 320 },
  optim: { learningRate: 3e-3, warmupSteps: 100, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, maxGradNorm: 1 },
  /** Characters of passage the evaluation crops to (evaluate.ts, the pipeline's crop is the same size). */
  maxContextChars: 600,
  lmTokens: 128,
  checkpointEvery: 50,
  gateEvery: 50,
  gateSize: 96,
  /** Greedy QA on the validation pairs (train side, never trained on) every this many steps. */
  validateEvery: 500,
  /** Share of the train side's QA groups kept apart for validation. */
  validationShare: 0.1,
} as const;

export type ReaderRecipe = typeof readerRecipe;
