/**
 * Batching constants, in a module of their own so that command-line help can show them without loading
 * the model code.
 *
 * DEFAULT_BATCH: sequences decoded together by default (generateBatch, `ktu eval run --batch`), chosen by
 * measurement with bench/eval-batch.ts on the reader's shape (README "Batched generation").
 */
export const DEFAULT_BATCH = 32;

/** Prompt rows one native pass takes from sequences that are joining (their prefill); at least one prompt. */
export const PREFILL_ROWS_PER_PASS = 2048;
