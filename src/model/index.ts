export {};
export { loadLlama2c, saveLlama2c } from "./llama2c.ts";
export { Llama2cTokenizer, printablePiece } from "./llama2c-tokenizer.ts";
export type { Tokenizer } from "./tokenizer.ts";
export type { LlamaConfig, LlamaLayerWeights, LlamaModelData, LlamaWeights, LlamaProjection } from "./types.ts";
