/**
 * Saves a small FullTrainer's checkpoint to argv[2] over and over (step 1, 2, 3, ...), printing each
 * step once it is saved: test/train-crash.test.ts kills it at random points of a save.
 */
import { initBackend } from "../../src/model/backend.ts";
import type { LlamaConfig } from "../../src/model/types.ts";
import { FullTrainer, initLlama } from "../../src/train/pretrain.ts";

const config: LlamaConfig = { arch: "llama", dim: 64, hiddenDim: 128, nLayers: 4, nHeads: 4, nKvHeads: 4, vocabSize: 300, seqLen: 64, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", tiedEmbeddings: true };
await initBackend();
const trainer = new FullTrainer(initLlama(config, 5), {});
for (let step = 1; ; step++) {
  trainer.step = step;
  trainer.save(process.argv[2]!, { note: "save-loop" });
  process.stdout.write(`saved ${step}\n`);
}
