export {};
export { loadLlama2c, saveLlama2c } from "./llama2c.ts";
export { Llama2cTokenizer, printablePiece } from "./llama2c-tokenizer.ts";
export type { Tokenizer } from "./tokenizer.ts";
export type { LlamaConfig, LlamaLayerWeights, LlamaModelData, LlamaWeights, LlamaProjection } from "./types.ts";
export { Decoder, KvCache } from "./decode.ts";
export { NativeDecoder, NativeKvCache, nativeDecoderFor, type NativeRows } from "./decode-native.ts";
export { writeGguf, readGguf, ggufTensors, type GgufExportOptions, type GgufFile } from "./gguf.ts";
export { Sampler, XorShiftRng, type SamplerOptions } from "./sampler.ts";
export {
  generate,
  generateBatch,
  generateStream,
  continuationLogprobs,
  nextTokenLogprobs,
  decoderFor,
  stepDecoderFor,
  stepTogether,
  tokenText,
  Sequence,
  BatchQueue,
  DEFAULT_BATCH,
  type BatchOptions,
  type DecodeEngine,
  type StepDecoder,
  type DecodeModel,
  type GenerateOptions,
  type GenerateResult,
  type TokenLogprob,
  type StreamChunk,
  type ContinuationScore,
} from "./generate.ts";
// TF.js side (training, batch scoring), loaders and formats.
export { initBackend, initEngine, currentBackend, currentEngine, describeBackend, describeEngine, backendOrder, engineOrder, type BackendName, type BackendInfo, type EngineName, type EngineInfo } from "./backend.ts";
export { FrozenLinear, crossEntropy, selectRows } from "./tf-ops.ts";
export { TfLlama, checkLlamaModelData, projectionShape, ropeTables, type ProjectionAdapter, type ForwardOptions, type TfLlamaOptions, type AttentionMode } from "./llama-tf.ts";
export { parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors, tensorToFloat32, requireFloatTensor, type SafetensorsFile, type SafetensorsEntry, type SafetensorsInput, type SafetensorsDtype } from "./safetensors.ts";
export { loadHfModel, saveHfModel, readHfConfig, interleavedToRotateHalf } from "./hf.ts";
export { HfTokenizer } from "./hf-tokenizer.ts";
export { chatTemplates, getChatTemplate, encodeChatTurns, renderChat, chatTemplateJinja, alpacaPrompt, templateEosId, type ChatTemplateSpec, type ChatMessage } from "./chat-templates.ts";
export { openModel, type OpenedModel } from "./open.ts";
export { exportHfModel, llama2cTokenizerJson, permuteAdapterForHf, type HfExportOptions } from "./hf-export.ts";
export { exportModel, type ModelExportOptions } from "./export-cli.ts";
export {
  downloadHubModel,
  resolveHubModelSync,
  resolveModelPath,
  parseHubSpec,
  isHubSpec,
  hubCacheDir,
  hubEndpoint,
  cachedSnapshot,
  cachedRevisions,
  wantedFiles,
  HubError,
  type HubModelRef,
  type HubDownloadOptions,
} from "./hub.ts";
export { pieceDecoder, tokenizerJsonPieces, type PieceDecoder } from "./pieces.ts";
export { TfGpt2, randomGpt2, saveGpt2, loadGpt2, type Gpt2Config, type Gpt2ModelData, type Gpt2LayerWeights, type Gpt2Cache } from "./gpt2.ts";
export { generateParallel, type ParallelOptions } from "./parallel.ts";
export { BpeTokenizer, trainBpe, serializeBpe, saveBpe, charsPerToken, type BpeVocab, type BpeTrainOptions } from "./bpe.ts";
export { readPromptFormat, checkPromptFormat, promptFormatPath, renderTemplate, qaPrompt, cognitionPrompt, promptSensitivePrompt, checkingTarget, PROMPT_FORMAT_FILE, type PromptFormat, type PromptTemplates, type PromptTexts } from "./prompt-format.ts";
export { describeModel, countParams, formatParams, type ModelDescription } from "./describe.ts";
