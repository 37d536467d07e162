import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { InputError } from "../util/errors.ts";
import { loadHfModel } from "./hf.ts";
import { HfTokenizer } from "./hf-tokenizer.ts";
import { isHubSpec, resolveHubModelSync } from "./hub.ts";
import { loadLlama2c } from "./llama2c.ts";
import { Llama2cTokenizer } from "./llama2c-tokenizer.ts";
import type { Tokenizer } from "./tokenizer.ts";
import type { LlamaModelData } from "./types.ts";

export interface OpenedModel {
  readonly model: LlamaModelData;
  readonly tokenizer: Tokenizer;
  readonly format: "llama2c" | "hf";
  readonly modelPath: string;
  readonly tokenizerPath: string;
}

/**
 * A model and its tokenizer from one path: a llama2.c .bin (tokenizer: `tokenizerPath`, else
 * tokenizer.bin or tok<vocab>.bin beside it) or a Hugging Face folder (config.json, safetensors,
 * tokenizer.json), or a model by hub name, `hf:ORG/NAME[@REVISION]`, downloaded into (or found in)
 * huggingface_hub's cache (src/model/hub.ts). A tokenizer whose ids do not fit the model is an error
 * naming the file.
 */
export function openModel(spec: string, tokenizerSpec?: string): OpenedModel {
  const path = isHubSpec(spec) ? resolveHubModelSync(spec) : spec;
  const tokenizerPath = tokenizerSpec !== undefined && isHubSpec(tokenizerSpec) ? resolveHubModelSync(tokenizerSpec) : tokenizerSpec;
  if (!existsSync(path)) throw new InputError(path, undefined, undefined, "no such model file or folder");
  if (statSync(path).isDirectory()) {
    if (!existsSync(join(path, "config.json"))) throw new InputError(path, undefined, undefined, "a model folder needs config.json (Hugging Face layout)");
    const model = loadHfModel(path);
    const tokenizer = tokenizerPath ? HfTokenizer.fromDir(tokenizerPath) : HfTokenizer.fromDir(path);
    tokenizer.checkVocab(model.config.vocabSize, join(path, "config.json"));
    return { model, tokenizer, format: "hf", modelPath: path, tokenizerPath: tokenizer.source };
  }
  const model = loadLlama2c(path);
  const candidates = tokenizerPath ? [tokenizerPath] : [join(dirname(path), "tokenizer.bin"), join(dirname(path), `tok${model.config.vocabSize}.bin`)];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new InputError(path, undefined, "tokenizer", `no llama2.c tokenizer found (looked for ${candidates.join(", ")})`);
  return { model, tokenizer: Llama2cTokenizer.load(found, model.config.vocabSize), format: "llama2c", modelPath: path, tokenizerPath: found };
}
