import { existsSync, openSync, readdirSync, readFileSync, readSync, closeSync, statSync } from "node:fs";
import { join } from "node:path";

/**
 * Module names of a local Hugging Face model folder, for checking `lora_target` before a GPU
 * run fails on it. Tensor names come from the safetensors index (or the headers of the shards),
 * so no weights are read; config.json's architecture is the fallback when only the config is there.
 */
export interface ModelModules {
  /** Module paths, e.g. "model.layers.0.self_attn.q_proj" (tensor names less ".weight"/".bias"). */
  readonly paths: readonly string[];
  /** Where the names came from, for error messages. */
  readonly source: string;
}

// Linear layers of the architectures of the paper's base models (Llama-2, Mistral, Llama-3.1, Gemma-2)
// and GPT-2, by their Hugging Face module names; used only when no weight names can be read.
const ARCHITECTURE_MODULES: Record<string, string[]> = {
  llama: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
  mistral: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
  gemma: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
  gemma2: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
  qwen2: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
  gpt2: ["c_attn", "c_proj", "c_fc", "lm_head"],
};

function safetensorsNames(file: string): string[] {
  const fd = openSync(file, "r");
  try {
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const length = Number(lengthBytes.readBigUInt64LE(0));
    if (length <= 0 || length > 100 * 1024 * 1024 || length + 8 > statSync(file).size) throw new Error(`${file}: not a safetensors file (header length ${length})`);
    const header = Buffer.alloc(length);
    readSync(fd, header, 0, length, 8);
    return Object.keys(JSON.parse(header.toString("utf8")) as Record<string, unknown>).filter((name) => name !== "__metadata__");
  } finally {
    closeSync(fd);
  }
}

const toModulePath = (tensor: string): string => tensor.replace(/\.(weight|bias)$/, "");

/** The module names of `modelDir`, or undefined when it is not a local model folder we can read. */
export function readModelModules(modelDir: string): ModelModules | undefined {
  if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) return undefined;
  for (const index of ["model.safetensors.index.json", "pytorch_model.bin.index.json"]) {
    const path = join(modelDir, index);
    if (existsSync(path)) {
      const map = (JSON.parse(readFileSync(path, "utf8")) as { weight_map?: Record<string, string> }).weight_map ?? {};
      return { paths: [...new Set(Object.keys(map).map(toModulePath))], source: path };
    }
  }
  const shards = readdirSync(modelDir).filter((name) => name.endsWith(".safetensors")).sort();
  if (shards.length > 0) {
    const names = shards.flatMap((shard) => safetensorsNames(join(modelDir, shard)));
    return { paths: [...new Set(names.map(toModulePath))], source: join(modelDir, shards[0]!) };
  }
  const configPath = join(modelDir, "config.json");
  if (existsSync(configPath)) {
    const config = JSON.parse(readFileSync(configPath, "utf8")) as { model_type?: string };
    const modules = config.model_type === undefined ? undefined : ARCHITECTURE_MODULES[config.model_type];
    if (modules) return { paths: modules, source: `${configPath} (model_type ${config.model_type})` };
  }
  return undefined;
}

/** PEFT's rule: a target matches a module whose path is the target or ends with "." + target. */
export const moduleMatches = (paths: readonly string[], target: string): boolean =>
  paths.some((path) => path === target || path.endsWith(`.${target}`));

/** The distinct last components (q_proj, v_proj, ...), for listing what the model has. */
export const moduleLeafNames = (paths: readonly string[]): string[] =>
  [...new Set(paths.map((path) => path.split(".").at(-1)!).filter((leaf) => !/^\d+$/.test(leaf)))].sort();
