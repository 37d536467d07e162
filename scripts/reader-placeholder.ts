/**
 * A PLACEHOLDER for the reader's weights: random-init weights of exactly the reader's shape (d128, 4
 * layers, 4 heads, SwiGLU 352, vocab 4096, 320 positions, tied embeddings; 1,328,256 parameters, the
 * model of recipes/reader/config.ts) in llama2.c format, so that everything around the model (npm start,
 * ktu eval run, the notebooks) runs and can be timed before the trained weights land. It reads nothing
 * and answers nothing useful. Never commit its output: the trained `final/model.bin` of
 * recipes/reader/train.ts replaces it.
 *
 * Run: node --import tsx scripts/reader-placeholder.ts [--out data/models/reader/reader.bin] [--seed 1]
 */
import { parseArgs } from "node:util";
import { saveLlama2c } from "../src/model/llama2c.ts";
import type { LlamaConfig } from "../src/model/types.ts";
import { initLlama } from "../src/train/pretrain.ts";
import { dataPath } from "../src/util/paths.ts";

/** The reader's shape, as recipes/reader/train.ts builds it from config.ts. */
export const READER_SHAPE: LlamaConfig = { arch: "llama", dim: 128, nLayers: 4, nHeads: 4, nKvHeads: 4, hiddenDim: 352, vocabSize: 4096, seqLen: 320, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };

/** Writes random-init weights of the reader's shape to `path`. */
export function writeReaderPlaceholder(path: string, seed = 1): void {
  saveLlama2c(path, initLlama(READER_SHAPE, seed));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: "string" }, seed: { type: "string" } } });
  const out = values.out ?? dataPath("models", "reader", "reader.bin");
  writeReaderPlaceholder(out, values.seed === undefined ? 1 : Number(values.seed));
  process.stdout.write(`wrote a random-init PLACEHOLDER of the reader's shape to ${out} (do not commit it)\n`);
}
