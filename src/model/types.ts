/**
 * The contract between loaders, the TF.js model, the typed-array decoder and the trainer:
 * weights are plain Float32Arrays in row-major [out, in] layout (as llama2.c and PyTorch store
 * nn.Linear), so every consumer shares one copy without conversion.
 */
export interface LlamaConfig {
  readonly arch: "llama";
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly vocabSize: number;
  /** Maximum positions (llama2.c's seq_len, HF max_position_embeddings). */
  readonly seqLen: number;
  readonly normEps: number;
  readonly ropeTheta: number;
  /** llama2.c pairs adjacent dims (interleaved); Hugging Face Llama pairs dim i with i + headDim/2 (rotate-half). */
  readonly ropeStyle: "interleaved" | "rotate-half";
  readonly tiedEmbeddings: boolean;
}

export interface LlamaLayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Float32Array; // [nHeads*headDim, dim]
  wk: Float32Array; // [nKvHeads*headDim, dim]
  wv: Float32Array; // [nKvHeads*headDim, dim]
  wo: Float32Array; // [dim, nHeads*headDim]
  ffnNorm: Float32Array; // [dim]
  w1: Float32Array; // gate [hiddenDim, dim]
  w2: Float32Array; // down [dim, hiddenDim]
  w3: Float32Array; // up [hiddenDim, dim]
  /** Attention biases, only in architectures that have them (Qwen2; Llama with attention_bias). */
  bq?: Float32Array; // [nHeads*headDim]
  bk?: Float32Array; // [nKvHeads*headDim]
  bv?: Float32Array; // [nKvHeads*headDim]
}

export interface LlamaWeights {
  tokenEmbedding: Float32Array; // [vocabSize, dim]
  layers: LlamaLayerWeights[];
  finalNorm: Float32Array; // [dim]
  /** [vocabSize, dim]; the same array as tokenEmbedding when tied. */
  lmHead: Float32Array;
}

export interface LlamaModelData {
  config: LlamaConfig;
  weights: LlamaWeights;
}

export type LlamaProjection = "wq" | "wk" | "wv" | "wo" | "w1" | "w2" | "w3";
