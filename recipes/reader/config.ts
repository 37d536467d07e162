/**
 * The reader-base recipe as plain data: change a number here, not in code. One cosine schedule runs
 * over all stages; a stage only changes what the batches are made of. `mixture` weights pick each
 * batch's task (one task per batch, so batches pad little); "lm" is next-token prediction on windows
 * of the corpus, the others are in src/data/synthetic.ts.
 */
export interface ReaderStage {
  name: string;
  steps: number;
  mixture: Partial<Record<"lm" | "copy" | "recall" | "member" | "span", number>>;
}

export const readerRecipe = {
  seed: 1,
  tokenizer: { vocabSize: 4096, minCharCount: 30 },
  model: { dim: 128, nLayers: 4, nHeads: 4, hiddenDim: 352, seqLen: 320 },
  optim: { learningRate: 2e-3, minLrRatio: 0.1, warmupSteps: 50, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, maxGradNorm: 1 },
  /** Sequences per batch, by task: short synthetic rows are cheap, passages are not. */
  batchSize: { lm: 8, copy: 16, recall: 16, member: 16, span: 8 },
  /** Tokens per "lm" window (plus one target). */
  lmWindow: 128,
  /** Passages are cropped around the answer to at most this many characters. */
  maxContextChars: 600,
  stages: [
    // Copy first: it is the induction primitive the other tasks build on. A first pilot that mixed
    // copy, recall and membership from step 0 printed " No" for every task at step 175.
    { name: "copy", steps: 300, mixture: { copy: 1 } },
    { name: "recall", steps: 500, mixture: { copy: 1, recall: 2 } },
    { name: "skills", steps: 400, mixture: { copy: 1, recall: 2, member: 2 } },
    { name: "reader", steps: 1800, mixture: { lm: 1, recall: 1, member: 1, span: 3 } },
  ] as ReaderStage[],
  checkpointEvery: 25,
  evalEvery: 50,
  /** Examples per task in each curriculum evaluation (fixed sets, drawn once from seed + 1000). */
  evalSize: 32,
} as const;

export type ReaderRecipe = typeof readerRecipe;
