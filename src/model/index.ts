export {};
export { loadLlama2c, saveLlama2c } from "./llama2c.ts";
export { Llama2cTokenizer, printablePiece } from "./llama2c-tokenizer.ts";
export type { Tokenizer } from "./tokenizer.ts";
export type { LlamaConfig, LlamaLayerWeights, LlamaModelData, LlamaWeights, LlamaProjection } from "./types.ts";
export { Decoder, KvCache } from "./decode.ts";
export { Sampler, XorShiftRng, type SamplerOptions } from "./sampler.ts";
export {
  generate,
  generateBatch,
  generateStream,
  continuationLogprobs,
  nextTokenLogprobs,
  decoderFor,
  tokenText,
  Sequence,
  type DecodeModel,
  type GenerateOptions,
  type GenerateResult,
  type TokenLogprob,
  type StreamChunk,
  type ContinuationScore,
} from "./generate.ts";
