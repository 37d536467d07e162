import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tf } from "../model/backend.ts";
import { projectionShape, type ProjectionAdapter } from "../model/llama-tf.ts";
import { readSafetensors, requireFloatTensor, serializeSafetensors, type SafetensorsInput } from "../model/safetensors.ts";
import type { LlamaConfig, LlamaLayerWeights, LlamaModelData, LlamaProjection } from "../model/types.ts";
import { InputError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import type { Rng } from "../util/rng.ts";

/**
 * LoRA (Hu et al. 2021) as PEFT implements it: y = x W^T + (alpha / r) * dropout(x) A^T B^T, with
 * A [r, in] Kaiming-uniform and B [out, r] zero at the start, so a fresh adapter leaves the model
 * unchanged. Parameters live in Float32Arrays (the optimizer's truth, saved bit-exact in checkpoints)
 * mirrored into tf.Variables for the graph.
 */
export interface LoraSettings {
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly targets: readonly LlamaProjection[];
  /** rsLoRA scaling alpha / sqrt(r) instead of alpha / r. */
  readonly useRslora?: boolean;
}

export const loraDefaults: Readonly<LoraSettings> = Object.freeze({ rank: 8, alpha: 16, dropout: 0, targets: Object.freeze(["wq", "wv"]) as readonly LlamaProjection[] });

/** Our projection names and the Hugging Face module names PEFT adapters use. */
export const hfModuleNames: Readonly<Record<LlamaProjection, string>> = Object.freeze({
  wq: "self_attn.q_proj",
  wk: "self_attn.k_proj",
  wv: "self_attn.v_proj",
  wo: "self_attn.o_proj",
  w1: "mlp.gate_proj",
  w2: "mlp.down_proj",
  w3: "mlp.up_proj",
});
const allProjections = Object.keys(hfModuleNames) as LlamaProjection[];

/**
 * Reads a lora_target value as LLaMA-Factory accepts it: "all", or names like q_proj,v_proj (our wq,wv
 * also work).
 */
export function parseLoraTargets(value: string | readonly string[]): LlamaProjection[] {
  const names = (typeof value === "string" ? value.split(",") : [...value]).map((s) => s.trim()).filter(Boolean);
  if (names.length === 1 && names[0] === "all") return [...allProjections];
  return names.map((name) => {
    const ours = allProjections.find((p) => p === name || hfModuleNames[p].endsWith(`.${name}`) || hfModuleNames[p] === name);
    if (!ours) throw new Error(`unknown LoRA target ${JSON.stringify(name)}; use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all`);
    return ours;
  });
}

export interface LoraParameter {
  readonly layer: number;
  readonly projection: LlamaProjection;
  readonly kind: "A" | "B";
  readonly shape: readonly [number, number];
  /** The values; change them only through setValues so the variable follows. */
  readonly values: Float32Array;
  readonly variable: tf.Variable;
  /** PEFT tensor name. */
  readonly peftName: string;
}

const key = (layer: number, p: LlamaProjection): string => `${layer}.${p}`;
export const peftTensorName = (layer: number, p: LlamaProjection, kind: "A" | "B"): string =>
  `base_model.model.model.layers.${layer}.${hfModuleNames[p]}.lora_${kind}.weight`;

export class LoraAdapter implements ProjectionAdapter {
  readonly scale: number;
  readonly parameters: LoraParameter[] = [];
  private readonly pairs = new Map<string, { a: LoraParameter; b: LoraParameter }>();
  /** Set by the trainer while it computes a training loss; dropout is off otherwise. */
  dropoutRng: Rng | undefined;

  private constructor(readonly config: LlamaConfig, readonly settings: LoraSettings, init: (p: Omit<LoraParameter, "values" | "variable">) => Float32Array) {
    if (!Number.isInteger(settings.rank) || settings.rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${settings.rank}`);
    if (!(settings.dropout >= 0 && settings.dropout < 1)) throw new Error(`LoRA dropout must be in [0, 1), got ${settings.dropout}`);
    if (settings.targets.length === 0) throw new Error("LoRA needs at least one target projection");
    this.scale = settings.useRslora ? settings.alpha / Math.sqrt(settings.rank) : settings.alpha / settings.rank;
    for (let layer = 0; layer < config.nLayers; layer++) {
      for (const projection of allProjections.filter((p) => settings.targets.includes(p))) {
        const [out, inp] = projectionShape(config, projection);
        const make = (kind: "A" | "B", shape: [number, number]): LoraParameter => {
          const meta = { layer, projection, kind, shape, peftName: peftTensorName(layer, projection, kind) } as const;
          const values = init(meta);
          return { ...meta, values, variable: tf.tidy(() => tf.variable(tf.tensor2d(values, shape), true)) };
        };
        const a = make("A", [settings.rank, inp]);
        const b = make("B", [out, settings.rank]);
        this.parameters.push(a, b);
        this.pairs.set(key(layer, projection), { a, b });
      }
    }
  }

  /** A fresh adapter: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform with a=sqrt(5)), B = 0. */
  static create(config: LlamaConfig, settings: LoraSettings, rng: Rng): LoraAdapter {
    return new LoraAdapter(config, settings, (p) => {
      const values = new Float32Array(p.shape[0] * p.shape[1]);
      if (p.kind === "A") {
        const bound = 1 / Math.sqrt(p.shape[1]);
        for (let i = 0; i < values.length; i++) values[i] = (2 * rng.next() - 1) * bound;
      }
      return values;
    });
  }

  /** An adapter from given tensors (PEFT names), e.g. a loaded file; shapes are checked by the caller. */
  static fromTensors(config: LlamaConfig, settings: LoraSettings, get: (name: string, shape: readonly [number, number]) => Float32Array): LoraAdapter {
    return new LoraAdapter(config, settings, (p) => get(p.peftName, p.shape));
  }

  has(layer: number, projection: LlamaProjection): boolean {
    return this.pairs.has(key(layer, projection));
  }

  /**
   * scale * (x A^T) B^T as one op with its gradient written out in plain products and explicit small
   * transposes: autodiff of the same expression would use transposed matMuls, which the wasm backend
   * runs on a slow path.
   */
  delta(layer: number, projection: LlamaProjection, x: tf.Tensor2D): tf.Tensor2D {
    const pair = this.pairs.get(key(layer, projection))!;
    const input = this.dropout(x);
    const scale = this.scale;
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [xin, a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
      const aT = tf.transpose(a); // [in, r]
      const low = tf.matMul(xin, aT); // [N, r]
      save([xin, a, b, low]);
      return {
        value: tf.mul(tf.matMul(low, tf.transpose(b)), scale),
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const [xs, as, bs, lows] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
          const dyScaled = tf.mul(dy as tf.Tensor2D, scale);
          const dLow = tf.matMul(dyScaled, bs); // [N, r]
          return [
            tf.matMul(dLow, as), // dx [N, in]
            tf.matMul(tf.transpose(dLow), xs), // dA [r, in]
            tf.matMul(tf.transpose(dyScaled), lows), // dB [out, r]
          ];
        },
      };
    });
    return f(input, pair.a.variable, pair.b.variable) as tf.Tensor2D;
  }

  /** The factors for an engine that fuses the term into the projection (llama-tf's native path). */
  lowRank(layer: number, projection: LlamaProjection): { a: tf.Tensor2D; b: tf.Tensor2D; scale: number; input?(x: tf.Tensor2D): tf.Tensor2D } {
    const pair = this.pairs.get(key(layer, projection))!;
    const dropping = this.settings.dropout > 0 && this.dropoutRng !== undefined;
    return { a: pair.a.variable as unknown as tf.Tensor2D, b: pair.b.variable as unknown as tf.Tensor2D, scale: this.scale, ...(dropping ? { input: (x: tf.Tensor2D) => this.dropout(x) } : {}) };
  }

  /** Inverted dropout of the adapter's input while training (dropoutRng set), else x itself. */
  private dropout(x: tf.Tensor2D): tf.Tensor2D {
    const p = this.settings.dropout;
    if (!(p > 0 && this.dropoutRng)) return x;
    const rng = this.dropoutRng;
    const keep = new Float32Array(x.shape[0] * x.shape[1]);
    for (let i = 0; i < keep.length; i++) keep[i] = rng.next() < p ? 0 : 1 / (1 - p);
    return tf.mul(x, tf.tensor2d(keep, x.shape));
  }

  /** Replaces one parameter's values (optimizer step, checkpoint restore) and its variable. */
  setValues(parameter: LoraParameter, values: Float32Array): void {
    if (values !== parameter.values) parameter.values.set(values);
    tf.tidy(() => parameter.variable.assign(tf.tensor2d(parameter.values, parameter.shape as [number, number])));
  }

  /** Re-uploads every parameter's values to its variable (after editing `values` in place). */
  sync(): void {
    tf.tidy(() => this.parameters.forEach((p) => p.variable.assign(tf.tensor2d(p.values, p.shape as [number, number]))));
  }

  get parameterCount(): number {
    return this.parameters.reduce((n, p) => n + p.values.length, 0);
  }

  peftTensors(): Record<string, SafetensorsInput> {
    return Object.fromEntries(this.parameters.map((p) => [p.peftName, { data: p.values, shape: p.shape }]));
  }

  peftConfig(baseModel: string): Record<string, unknown> {
    const s = this.settings;
    return {
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: baseModel,
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layers_pattern: null,
      layers_to_transform: null,
      lora_alpha: s.alpha,
      lora_dropout: s.dropout,
      modules_to_save: null,
      peft_type: "LORA",
      r: s.rank,
      rank_pattern: {},
      revision: null,
      target_modules: s.targets.map((t) => hfModuleNames[t].split(".")[1]!),
      task_type: "CAUSAL_LM",
      use_dora: false,
      use_rslora: s.useRslora ?? false,
    };
  }

  /** Writes adapter_config.json and adapter_model.safetensors (each atomically) into `dir`. */
  async save(dir: string, baseModel: string): Promise<void> {
    await writeFileAtomic(join(dir, "adapter_model.safetensors"), serializeSafetensors(this.peftTensors(), { format: "pt" }));
    await writeFileAtomic(join(dir, "adapter_config.json"), JSON.stringify(this.peftConfig(baseModel), null, 2) + "\n");
  }

  /** Loads a PEFT adapter folder for a model with this config; every mismatch names the file and field. */
  static load(dir: string, config: LlamaConfig): LoraAdapter {
    const configPath = join(dir, "adapter_config.json");
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    } catch (error) {
      throw new InputError(configPath, undefined, undefined, `cannot read the adapter config: ${(error as Error).message}`);
    }
    if (raw.peft_type !== undefined && raw.peft_type !== "LORA") throw new InputError(configPath, undefined, "peft_type", `only LORA adapters are supported, got ${JSON.stringify(raw.peft_type)}`);
    if (raw.fan_in_fan_out) throw new InputError(configPath, undefined, "fan_in_fan_out", "fan_in_fan_out adapters (GPT-2 Conv1D) do not apply to Llama projections");
    if (raw.use_dora) throw new InputError(configPath, undefined, "use_dora", "DoRA adapters are not supported");
    const rank = raw.r;
    if (!Number.isInteger(rank) || (rank as number) < 1) throw new InputError(configPath, undefined, "r", `must be a positive integer, got ${JSON.stringify(rank)}`);
    const alpha = typeof raw.lora_alpha === "number" ? raw.lora_alpha : (rank as number);
    let targets: LlamaProjection[];
    try {
      targets = parseLoraTargets(raw.target_modules as string | string[]);
    } catch (error) {
      throw new InputError(configPath, undefined, "target_modules", (error as Error).message);
    }
    const settings: LoraSettings = { rank: rank as number, alpha, dropout: typeof raw.lora_dropout === "number" ? raw.lora_dropout : 0, targets, useRslora: raw.use_rslora === true };
    const file = readSafetensors(join(dir, "adapter_model.safetensors"));
    return LoraAdapter.fromTensors(config, settings, (name, shape) => requireFloatTensor(file, name, shape));
  }

  dispose(): void {
    for (const p of this.parameters) p.variable.dispose();
  }
}

/**
 * W' = W + scale * B A for every adapted projection, as PEFT's merge_and_unload does. Returns a new
 * model whose merged matrices are new arrays; every other array is shared with `base`, which is never
 * written.
 */
export function mergeLora(base: LlamaModelData, adapter: LoraAdapter): LlamaModelData {
  const c = base.config;
  const layers = base.weights.layers.map((layer, l) => {
    const merged: LlamaLayerWeights = { ...layer };
    for (const p of allProjections) {
      if (!adapter.has(l, p)) continue;
      const a = adapter.parameters.find((x) => x.layer === l && x.projection === p && x.kind === "A")!.values;
      const b = adapter.parameters.find((x) => x.layer === l && x.projection === p && x.kind === "B")!.values;
      const [out, inp] = projectionShape(c, p);
      const r = adapter.settings.rank;
      // Accumulated in double and rounded once, so the merged weight is the nearest float to W + s B A.
      const w = Float64Array.from(layer[p]);
      for (let i = 0; i < out; i++) {
        for (let k = 0; k < r; k++) {
          const bik = b[i * r + k]! * adapter.scale;
          if (bik === 0) continue;
          const row = i * inp;
          const arow = k * inp;
          for (let j = 0; j < inp; j++) w[row + j] = w[row + j]! + bik * a[arow + j]!;
        }
      }
      merged[p] = Float32Array.from(w);
    }
    return merged;
  });
  return { config: c, weights: { ...base.weights, layers } };
}
