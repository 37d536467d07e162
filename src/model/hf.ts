import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { isSafeRepoFile } from "./repo-names.ts";
import { readSafetensors, serializeSafetensors, tensorToFloat32, type SafetensorsFile, type SafetensorsInput } from "./safetensors.ts";
import type { LlamaConfig, LlamaLayerWeights, LlamaModelData } from "./types.ts";

/**
 * Hugging Face model folders (config.json + model.safetensors or a sharded index) for the Llama
 * family: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM. Any float dtype is read to fp32.
 * Their RoPE is rotate-half; llama2.c weights are permuted into that layout when saved.
 */
const supported: Record<string, { modelType: string; qkvBias: boolean }> = {
  LlamaForCausalLM: { modelType: "llama", qkvBias: false },
  MistralForCausalLM: { modelType: "mistral", qkvBias: false },
  Qwen2ForCausalLM: { modelType: "qwen2", qkvBias: true },
};

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(path, undefined, undefined, `cannot read: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InputError(path, undefined, undefined, `not JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new InputError(path, undefined, undefined, `expected a JSON object, got ${JSON.stringify(value)?.slice(0, 40)}`);
  return value as Record<string, unknown>;
}

/** Upper bounds on config.json sizes (a hostile or broken file must not make ktu allocate without end). */
const CONFIG_LIMITS: Record<string, number> = {
  hidden_size: 1 << 16,
  intermediate_size: 1 << 18,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  vocab_size: 1 << 22,
  max_position_embeddings: 1 << 22,
};

export function readHfConfig(dir: string): { config: LlamaConfig; qkvBias: boolean; architecture: string } {
  const path = join(dir, "config.json");
  const raw = readJson(path);
  const architecture = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : String(raw.model_type ?? "");
  const arch = supported[architecture] ?? Object.values(supported).find((a) => a.modelType === raw.model_type && !Array.isArray(raw.architectures));
  if (!arch) throw new InputError(path, undefined, "architectures", `${JSON.stringify(raw.architectures ?? raw.model_type)} is not supported; supported: ${Object.keys(supported).join(", ")}`);
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new InputError(path, undefined, key, `must be a positive integer, got ${JSON.stringify(raw[key])}`);
    const limit = CONFIG_LIMITS[key];
    if (limit !== undefined && v > limit) throw new InputError(path, undefined, key, `${v} is more than ${limit}, the most ktu reads`);
    return v;
  };
  const dim = int("hidden_size");
  const nHeads = int("num_attention_heads");
  if (dim % nHeads !== 0) throw new InputError(path, undefined, "num_attention_heads", `${nHeads} does not divide hidden_size ${dim}`);
  const nKv = int("num_key_value_heads", nHeads);
  if (nHeads % nKv !== 0) throw new InputError(path, undefined, "num_key_value_heads", `${nKv} does not divide num_attention_heads ${nHeads}`);
  if ((dim / nHeads) % 2 !== 0) throw new InputError(path, undefined, "num_attention_heads", `the head size ${dim / nHeads} (hidden_size / num_attention_heads) must be even for RoPE`);
  if (raw.head_dim !== undefined && raw.head_dim !== null && raw.head_dim !== dim / nHeads) {
    throw new InputError(path, undefined, "head_dim", `${raw.head_dim} differs from hidden_size / num_attention_heads = ${dim / nHeads}, which is not supported`);
  }
  if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) throw new InputError(path, undefined, "rope_scaling", `RoPE scaling (${JSON.stringify(raw.rope_scaling)}) is not supported`);
  if (raw.hidden_act !== undefined && raw.hidden_act !== "silu") throw new InputError(path, undefined, "hidden_act", `only silu is supported, got ${JSON.stringify(raw.hidden_act)}`);
  const config: LlamaConfig = {
    arch: "llama",
    dim,
    hiddenDim: int("intermediate_size"),
    nLayers: int("num_hidden_layers"),
    nHeads,
    nKvHeads: nKv,
    vocabSize: int("vocab_size"),
    seqLen: int("max_position_embeddings", 2048),
    normEps: typeof raw.rms_norm_eps === "number" ? raw.rms_norm_eps : 1e-6,
    ropeTheta: typeof raw.rope_theta === "number" ? raw.rope_theta : 10000,
    ropeStyle: "rotate-half",
    tiedEmbeddings: raw.tie_word_embeddings === true,
  };
  return { config, qkvBias: arch.qkvBias || raw.attention_bias === true, architecture };
}

/** Every tensor of the folder: one model.safetensors, or the shards a model.safetensors.index.json names. */
function openWeights(dir: string): (name: string) => { file: SafetensorsFile; name: string } | undefined {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  if (existsSync(single)) {
    const file = readSafetensors(single);
    return (name) => (file.tensors.has(name) ? { file, name } : undefined);
  }
  if (existsSync(index)) {
    const map = readJson(index).weight_map;
    if (map === null || typeof map !== "object" || Array.isArray(map)) throw new InputError(index, undefined, "weight_map", `must be an object of tensor name -> shard file, got ${JSON.stringify(map)?.slice(0, 100)}`);
    for (const [tensor, shard] of Object.entries(map)) {
      if (!isSafeRepoFile(shard)) throw new InputError(index, tensor, "weight_map", `the shard ${JSON.stringify(shard)?.slice(0, 200)} is not a relative file name inside the model folder`);
    }
    const files = new Map<string, SafetensorsFile>();
    return (name) => {
      const shard = (map as Record<string, string>)[name];
      if (!shard) return undefined;
      if (!files.has(shard)) files.set(shard, readSafetensors(join(dir, shard)));
      return { file: files.get(shard)!, name };
    };
  }
  throw new InputError(dir, undefined, undefined, "no model.safetensors or model.safetensors.index.json (PyTorch .bin weights are not supported)");
}

export function loadHfModel(dir: string): LlamaModelData {
  const { config: c, qkvBias } = readHfConfig(dir);
  const find = openWeights(dir);
  const hs = c.dim / c.nHeads;
  const kv = c.nKvHeads * hs;
  const tensor = (name: string, shape: number[], optional = false): Float32Array | undefined => {
    const hit = find(name);
    if (!hit) {
      if (optional) return undefined;
      throw new InputError(join(dir, "model.safetensors"), name, "tensor", "missing");
    }
    const entry = hit.file.tensors.get(name)!;
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new InputError(hit.file.path, name, "shape", `expected ${JSON.stringify(shape)} from config.json, got ${JSON.stringify(entry.shape)}`);
    }
    return tensorToFloat32(entry, hit.file.path, name);
  };
  const req = (name: string, shape: number[]): Float32Array => tensor(name, shape)!;
  const tokenEmbedding = req("model.embed_tokens.weight", [c.vocabSize, c.dim]);
  const layers: LlamaLayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}.`;
    const layer: LlamaLayerWeights = {
      attnNorm: req(`${p}input_layernorm.weight`, [c.dim]),
      wq: req(`${p}self_attn.q_proj.weight`, [c.dim, c.dim]),
      wk: req(`${p}self_attn.k_proj.weight`, [kv, c.dim]),
      wv: req(`${p}self_attn.v_proj.weight`, [kv, c.dim]),
      wo: req(`${p}self_attn.o_proj.weight`, [c.dim, c.dim]),
      ffnNorm: req(`${p}post_attention_layernorm.weight`, [c.dim]),
      w1: req(`${p}mlp.gate_proj.weight`, [c.hiddenDim, c.dim]),
      w2: req(`${p}mlp.down_proj.weight`, [c.dim, c.hiddenDim]),
      w3: req(`${p}mlp.up_proj.weight`, [c.hiddenDim, c.dim]),
    };
    if (qkvBias) {
      layer.bq = req(`${p}self_attn.q_proj.bias`, [c.dim]);
      layer.bk = req(`${p}self_attn.k_proj.bias`, [kv]);
      layer.bv = req(`${p}self_attn.v_proj.bias`, [kv]);
    }
    layers.push(layer);
  }
  const head = tensor("lm_head.weight", [c.vocabSize, c.dim], c.tiedEmbeddings);
  return { config: c, weights: { tokenEmbedding, layers, finalNorm: req("model.norm.weight", [c.dim]), lmHead: head ?? tokenEmbedding } };
}

/** llama2.c's interleaved q/k rows to Hugging Face's rotate-half order (convert_llama_weights_to_hf's permute). */
export function interleavedToRotateHalf(w: Float32Array, heads: number, headDim: number, inDim: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < headDim / 2; i++)
      for (let two = 0; two < 2; two++) {
        const src = h * headDim + 2 * i + two;
        const dst = h * headDim + two * (headDim / 2) + i;
        out.set(w.subarray(src * inDim, (src + 1) * inDim), dst * inDim);
      }
  return out;
}

/**
 * Writes a Hugging Face LlamaForCausalLM folder (config.json + model.safetensors, fp32 unless `dtype`),
 * e.g. for a merged model that LLaMA-Factory or transformers should load.
 */
export async function saveHfModel(dir: string, model: LlamaModelData, options: { dtype?: "F32" | "F16" | "BF16"; architecture?: keyof typeof supported } = {}): Promise<void> {
  const c = model.config;
  const w = model.weights;
  const hs = c.dim / c.nHeads;
  const permute = c.ropeStyle === "interleaved";
  const arch = options.architecture ?? "LlamaForCausalLM";
  const tensors: Record<string, SafetensorsInput> = {};
  const put = (name: string, data: Float32Array, shape: number[]): void => {
    tensors[name] = { data, shape, dtype: options.dtype ?? "F32" };
  };
  put("model.embed_tokens.weight", w.tokenEmbedding, [c.vocabSize, c.dim]);
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    const kv = c.nKvHeads * hs;
    put(`${p}input_layernorm.weight`, l.attnNorm, [c.dim]);
    put(`${p}self_attn.q_proj.weight`, permute ? interleavedToRotateHalf(l.wq, c.nHeads, hs, c.dim) : l.wq, [c.dim, c.dim]);
    put(`${p}self_attn.k_proj.weight`, permute ? interleavedToRotateHalf(l.wk, c.nKvHeads, hs, c.dim) : l.wk, [kv, c.dim]);
    put(`${p}self_attn.v_proj.weight`, l.wv, [kv, c.dim]);
    put(`${p}self_attn.o_proj.weight`, l.wo, [c.dim, c.dim]);
    if (l.bq && l.bk && l.bv) {
      put(`${p}self_attn.q_proj.bias`, permute ? interleavedToRotateHalf(l.bq, c.nHeads, hs, 1) : l.bq, [c.dim]);
      put(`${p}self_attn.k_proj.bias`, permute ? interleavedToRotateHalf(l.bk, c.nKvHeads, hs, 1) : l.bk, [kv]);
      put(`${p}self_attn.v_proj.bias`, l.bv, [kv]);
    }
    put(`${p}post_attention_layernorm.weight`, l.ffnNorm, [c.dim]);
    put(`${p}mlp.gate_proj.weight`, l.w1, [c.hiddenDim, c.dim]);
    put(`${p}mlp.down_proj.weight`, l.w2, [c.dim, c.hiddenDim]);
    put(`${p}mlp.up_proj.weight`, l.w3, [c.hiddenDim, c.dim]);
  });
  put("model.norm.weight", w.finalNorm, [c.dim]);
  if (!c.tiedEmbeddings) put("lm_head.weight", w.lmHead, [c.vocabSize, c.dim]);
  const modelType = supported[arch]!.modelType;
  const config = {
    architectures: [arch],
    model_type: modelType,
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedEmbeddings,
    hidden_act: "silu",
    torch_dtype: options.dtype === "F16" ? "float16" : options.dtype === "BF16" ? "bfloat16" : "float32",
    ...(modelType === "llama" ? { attention_bias: Boolean(w.layers[0]?.bq) } : {}),
  };
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, "model.safetensors"), serializeSafetensors(tensors, { format: "pt" }));
  await writeFileAtomic(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
}
