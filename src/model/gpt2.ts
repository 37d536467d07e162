import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import type { Rng } from "../util/rng.ts";
import { tf } from "./backend.ts";
import { readSafetensors, requireFloatTensor, serializeSafetensors, type SafetensorsInput } from "./safetensors.ts";

/**
 * GPT-2 (learned positions, pre-LayerNorm blocks with biases, fused qkv, GELU-tanh MLP, head tied to
 * the token embedding) in TF.js, with a KV cache for incremental decoding. Matrices keep Hugging
 * Face's Conv1D layout [in, out], which is also the fast layout for x @ W.
 */
export interface Gpt2Config {
  readonly arch: "gpt2";
  readonly nLayer: number;
  readonly nHead: number;
  readonly nEmbd: number;
  readonly vocabSize: number;
  readonly nPositions: number;
  readonly layerNormEps: number;
}

export interface Gpt2LayerWeights {
  ln1G: Float32Array; ln1B: Float32Array;
  attnW: Float32Array; attnB: Float32Array; // [d, 3d], [3d]
  attnProjW: Float32Array; attnProjB: Float32Array; // [d, d], [d]
  ln2G: Float32Array; ln2B: Float32Array;
  fcW: Float32Array; fcB: Float32Array; // [d, 4d], [4d]
  mlpProjW: Float32Array; mlpProjB: Float32Array; // [4d, d], [d]
}

export interface Gpt2ModelData {
  config: Gpt2Config;
  weights: { wte: Float32Array; wpe: Float32Array; layers: Gpt2LayerWeights[]; lnfG: Float32Array; lnfB: Float32Array };
}

const layerShapes = (c: Gpt2Config): Record<keyof Gpt2LayerWeights, number[]> => {
  const d = c.nEmbd;
  return {
    ln1G: [d], ln1B: [d], attnW: [d, 3 * d], attnB: [3 * d], attnProjW: [d, d], attnProjB: [d],
    ln2G: [d], ln2B: [d], fcW: [d, 4 * d], fcB: [4 * d], mlpProjW: [4 * d, d], mlpProjB: [d],
  };
};
const hfLayerNames: Record<keyof Gpt2LayerWeights, string> = {
  ln1G: "ln_1.weight", ln1B: "ln_1.bias", attnW: "attn.c_attn.weight", attnB: "attn.c_attn.bias", attnProjW: "attn.c_proj.weight", attnProjB: "attn.c_proj.bias",
  ln2G: "ln_2.weight", ln2B: "ln_2.bias", fcW: "mlp.c_fc.weight", fcB: "mlp.c_fc.bias", mlpProjW: "mlp.c_proj.weight", mlpProjB: "mlp.c_proj.bias",
};

/** GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer), LayerNorms at 1/0. */
export function randomGpt2(config: Gpt2Config, rng: Rng): Gpt2ModelData {
  const normal = (n: number, std: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * std);
  const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
  const shapes = layerShapes(config);
  const resid = 0.02 / Math.sqrt(2 * config.nLayer);
  const layers = Array.from({ length: config.nLayer }, () => {
    const l = {} as Gpt2LayerWeights;
    for (const [key, shape] of Object.entries(shapes) as [keyof Gpt2LayerWeights, number[]][]) {
      l[key] = key.endsWith("G") ? new Float32Array(size(shape)).fill(1) : key.endsWith("B") ? new Float32Array(size(shape)) : normal(size(shape), key.endsWith("ProjW") ? resid : 0.02);
    }
    return l;
  });
  return {
    config,
    weights: { wte: normal(config.vocabSize * config.nEmbd, 0.02), wpe: normal(config.nPositions * config.nEmbd, 0.01), layers, lnfG: new Float32Array(config.nEmbd).fill(1), lnfB: new Float32Array(config.nEmbd) },
  };
}

/** Keys and values of every layer so far: [B, heads, t, hs] each. */
export interface Gpt2Cache {
  k: tf.Tensor4D[];
  v: tf.Tensor4D[];
  length: number;
}

export class TfGpt2 {
  readonly config: Gpt2Config;
  private readonly t: { wte: tf.Tensor2D; wteT: tf.Tensor2D; wpe: tf.Tensor2D; lnfG: tf.Tensor1D; lnfB: tf.Tensor1D; layers: Record<keyof Gpt2LayerWeights, tf.Tensor>[] };

  constructor(data: Gpt2ModelData) {
    const c = (this.config = data.config);
    if (c.nEmbd % c.nHead !== 0) throw new Error(`GPT-2: n_embd ${c.nEmbd} is not a multiple of n_head ${c.nHead}`);
    const shapes = layerShapes(c);
    const w = data.weights;
    this.t = tf.tidy(() => {
      const wte = tf.tensor2d(w.wte, [c.vocabSize, c.nEmbd]);
      return {
        wte: tf.keep(wte),
        wteT: tf.keep(tf.transpose(wte)),
        wpe: tf.keep(tf.tensor2d(w.wpe, [c.nPositions, c.nEmbd])),
        lnfG: tf.keep(tf.tensor1d(w.lnfG)),
        lnfB: tf.keep(tf.tensor1d(w.lnfB)),
        layers: w.layers.map((l) => Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, tf.keep(tf.tensor(l[k as keyof Gpt2LayerWeights], s))])) as Record<keyof Gpt2LayerWeights, tf.Tensor>),
      };
    });
  }

  private layerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, this.config.layerNormEps))), g), b);
  }

  private static gelu(x: tf.Tensor): tf.Tensor {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  }

  /**
   * Logits [B*n, V] for `ids` ([B, n] row-major) at positions cache.length.., appending their keys and
   * values to `cache` when given (the caller disposes the cache's tensors with disposeCache).
   */
  forward(ids: Int32Array, batch: number, n: number, cache?: Gpt2Cache): tf.Tensor2D {
    const c = this.config;
    const past = cache?.length ?? 0;
    if (past + n > c.nPositions) throw new Error(`GPT-2: ${past + n} positions exceed n_positions ${c.nPositions}`);
    const hs = c.nEmbd / c.nHead;
    const total = past + n;
    return tf.tidy(() => {
      const positions = Int32Array.from({ length: batch * n }, (_, i) => past + (i % n));
      let x = tf.add(tf.gather(this.t.wte, tf.tensor1d(ids, "int32")), tf.gather(this.t.wpe, tf.tensor1d(positions, "int32"))) as tf.Tensor2D;
      // Query i (absolute position past+i) sees keys 0..past+i.
      const mask = new Float32Array(n * total);
      for (let i = 0; i < n; i++) for (let j = past + i + 1; j < total; j++) mask[i * total + j] = -1e9;
      const maskT = tf.tensor2d(mask, [n, total]);
      this.t.layers.forEach((L, l) => {
        const h = this.layerNorm(x, L.ln1G, L.ln1B);
        const qkv = tf.add(tf.matMul(h, L.attnW as tf.Tensor2D), L.attnB);
        const heads = (t: tf.Tensor): tf.Tensor4D => tf.transpose(tf.reshape(t, [batch, n, c.nHead, hs]), [0, 2, 1, 3]) as tf.Tensor4D;
        const [q, k, v] = tf.split(qkv, 3, 1).map(heads) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        let keys = k;
        let values = v;
        if (cache) {
          if (past > 0) {
            keys = tf.concat([cache.k[l]!, k], 2);
            values = tf.concat([cache.v[l]!, v], 2);
            cache.k[l]!.dispose();
            cache.v[l]!.dispose();
          }
          cache.k[l] = tf.keep(keys);
          cache.v[l] = tf.keep(values);
        }
        const scores = tf.add(tf.div(tf.matMul(q, keys, false, true), Math.sqrt(hs)), maskT);
        const attn = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), values), [0, 2, 1, 3]), [batch * n, c.nEmbd]) as tf.Tensor2D;
        x = tf.add(x, tf.add(tf.matMul(attn, L.attnProjW as tf.Tensor2D), L.attnProjB));
        const h2 = this.layerNorm(x, L.ln2G, L.ln2B);
        const mlp = tf.add(tf.matMul(TfGpt2.gelu(tf.add(tf.matMul(h2, L.fcW as tf.Tensor2D), L.fcB)) as tf.Tensor2D, L.mlpProjW as tf.Tensor2D), L.mlpProjB);
        x = tf.add(x, mlp);
      });
      if (cache) cache.length = total;
      return tf.matMul(this.layerNorm(x, this.t.lnfG, this.t.lnfB), this.t.wteT);
    });
  }

  newCache(): Gpt2Cache {
    return { k: [], v: [], length: 0 };
  }

  static disposeCache(cache: Gpt2Cache): void {
    tf.dispose([...cache.k, ...cache.v]);
    cache.k = [];
    cache.v = [];
    cache.length = 0;
  }

  logits(ids: Int32Array, batch: number, n: number, cache?: Gpt2Cache): Float32Array {
    const t = this.forward(ids, batch, n, cache);
    try {
      return t.dataSync() as Float32Array;
    } finally {
      t.dispose();
    }
  }

  dispose(): void {
    tf.dispose([this.t.wte, this.t.wteT, this.t.wpe, this.t.lnfG, this.t.lnfB, ...this.t.layers.flatMap((l) => Object.values(l))]);
  }
}

/** Writes a Hugging Face GPT2LMHeadModel folder (config.json + model.safetensors). */
export async function saveGpt2(dir: string, model: Gpt2ModelData): Promise<void> {
  const c = model.config;
  const w = model.weights;
  const shapes = layerShapes(c);
  const tensors: Record<string, SafetensorsInput> = {
    "wte.weight": { data: w.wte, shape: [c.vocabSize, c.nEmbd] },
    "wpe.weight": { data: w.wpe, shape: [c.nPositions, c.nEmbd] },
  };
  w.layers.forEach((l, i) => {
    for (const key of Object.keys(shapes) as (keyof Gpt2LayerWeights)[]) tensors[`h.${i}.${hfLayerNames[key]}`] = { data: l[key], shape: shapes[key] };
  });
  tensors["ln_f.weight"] = { data: w.lnfG, shape: [c.nEmbd] };
  tensors["ln_f.bias"] = { data: w.lnfB, shape: [c.nEmbd] };
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, "model.safetensors"), serializeSafetensors(tensors, { format: "pt" }));
  const config = { architectures: ["GPT2LMHeadModel"], model_type: "gpt2", n_layer: c.nLayer, n_head: c.nHead, n_embd: c.nEmbd, vocab_size: c.vocabSize, n_positions: c.nPositions, n_ctx: c.nPositions, layer_norm_epsilon: c.layerNormEps, activation_function: "gelu_new", tie_word_embeddings: true };
  await writeFileAtomic(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
}

/** Reads a GPT2LMHeadModel folder; tensor names with or without the "transformer." prefix. */
export function loadGpt2(dir: string): Gpt2ModelData {
  const configPath = join(dir, "config.json");
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new InputError(configPath, undefined, undefined, `cannot read: ${(error as Error).message}`);
  }
  const arch = Array.isArray(raw.architectures) ? raw.architectures[0] : raw.model_type;
  if (arch !== "GPT2LMHeadModel" && arch !== "gpt2") throw new InputError(configPath, undefined, "architectures", `expected GPT2LMHeadModel, got ${JSON.stringify(arch)}`);
  if (raw.activation_function !== undefined && raw.activation_function !== "gelu_new") throw new InputError(configPath, undefined, "activation_function", `only gelu_new is supported, got ${JSON.stringify(raw.activation_function)}`);
  const int = (key: string): number => {
    const v = raw[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new InputError(configPath, undefined, key, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const config: Gpt2Config = { arch: "gpt2", nLayer: int("n_layer"), nHead: int("n_head"), nEmbd: int("n_embd"), vocabSize: int("vocab_size"), nPositions: int("n_positions"), layerNormEps: typeof raw.layer_norm_epsilon === "number" ? raw.layer_norm_epsilon : 1e-5 };
  const file = readSafetensors(join(dir, "model.safetensors"));
  const prefix = file.tensors.has("transformer.wte.weight") ? "transformer." : "";
  const get = (name: string, shape: number[]): Float32Array => requireFloatTensor(file, prefix + name, shape);
  const shapes = layerShapes(config);
  const layers = Array.from({ length: config.nLayer }, (_, i) => {
    const l = {} as Gpt2LayerWeights;
    for (const key of Object.keys(shapes) as (keyof Gpt2LayerWeights)[]) l[key] = get(`h.${i}.${hfLayerNames[key]}`, shapes[key]);
    return l;
  });
  return {
    config,
    weights: { wte: get("wte.weight", [config.vocabSize, config.nEmbd]), wpe: get("wpe.weight", [config.nPositions, config.nEmbd]), layers, lnfG: get("ln_f.weight", [config.nEmbd]), lnfB: get("ln_f.bias", [config.nEmbd]) },
  };
}
