import { getChatTemplate } from "../../src/model/chat-templates.ts";
import { loadLlama2c } from "../../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../../src/model/llama2c-tokenizer.ts";
import { encodeSftRows, type SftRow } from "../../src/train/dataset.ts";
import { dataPath } from "../../src/util/paths.ts";

/** A tiny stage-1-like task on the real stories260K model: the label depends on the question. */
export const tinyRows: SftRow[] = [
  { instruction: "Can the cat see the ball?", output: "Sufficient" },
  { instruction: "Who was the king of the moon?", output: "Insufficient" },
  { instruction: "Did Lily play in the park?", output: "Sufficient" },
  { instruction: "Who was the king of the sea?", output: "Insufficient" },
  { instruction: "Can the dog see the tree?", output: "Sufficient" },
  { instruction: "Who was the king of the sky?", output: "Insufficient" },
  { instruction: "Did Tom play with the ball?", output: "Sufficient" },
  { instruction: "Who was the king of the stars?", output: "Insufficient" },
];

export function tinySetup() {
  const model = loadLlama2c(dataPath("models/stories260K/stories260K.bin"));
  const tokenizer = Llama2cTokenizer.load(dataPath("models/stories260K/tok512.bin"), model.config.vocabSize);
  const template = getChatTemplate("llama2");
  const encoded = encodeSftRows(tinyRows, template, tokenizer, 64);
  return { model, tokenizer, template, encoded };
}
