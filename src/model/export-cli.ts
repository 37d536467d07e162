/**
 * `ktu model export --format hf|peft|gguf`: our models (llama2.c .bin, Hugging Face folders, hub names) as
 * Hugging Face folders that transformers and LLaMA-Factory load, LoRA adapters in PEFT's layout, and
 * single GGUF files for llama.cpp, Ollama and LM Studio (gguf.ts).
 * `ktu model download hf:ORG/NAME[@REV]`: fetch a model into the shared huggingface_hub cache.
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { mergeLora, LoraAdapter } from "../train/lora.ts";
import { defineCommand, optionalChoice, requireString, type Command } from "../util/command.ts";
import { UsageError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { initBackend } from "./backend.ts";
import { serializeSafetensors } from "./safetensors.ts";
import { exportHfModel, permuteAdapterForHf } from "./hf-export.ts";
import { HfTokenizer } from "./hf-tokenizer.ts";
import { downloadHubModel, isHubSpec } from "./hub.ts";
import { writeGguf } from "./gguf.ts";
import { Llama2cTokenizer } from "./llama2c-tokenizer.ts";
import { openModel } from "./open.ts";

export interface ModelExportOptions {
  /** A llama2.c .bin, a Hugging Face folder or hf:ORG/NAME[@REV]. */
  model: string;
  /** llama2.c tokenizer .bin (default: beside the model) or a tokenizer folder. */
  tokenizer?: string;
  /** A PEFT adapter folder (ours or LLaMA-Factory's): merged into the weights ("hf") or converted ("peft"). */
  adapter?: string;
  out: string;
  /**
   * "hf": a model folder (default); "peft": the adapter alone, for the model exported with --format hf;
   * "gguf": one file, OUT/model.gguf unless `out` ends in .gguf (llama2.c-tokenizer models).
   */
  format?: "hf" | "peft" | "gguf";
  /** A chat template by name for tokenizer_config.json. */
  template?: string;
  dtype?: "F32" | "F16" | "BF16";
  /** adapter_config.json's base_model_name_or_path (default: the exported base folder's name as given). */
  baseModelName?: string;
}

/** Writes the export; returns the files written. */
export async function exportModel(o: ModelExportOptions): Promise<string[]> {
  const opened = openModel(o.model, o.tokenizer);
  const out = resolve(o.out);
  const gguf = o.format === "gguf";
  mkdirSync(gguf && out.endsWith(".gguf") ? dirname(out) : out, { recursive: true });
  if (o.adapter) await initBackend(); // a LoraAdapter keeps its tensors as tf variables
  if ((o.format ?? "hf") === "peft") {
    if (!o.adapter) throw new UsageError("ktu model export --format peft needs --adapter DIR");
    const adapter = LoraAdapter.load(o.adapter, opened.model.config);
    try {
      const tensors = permuteAdapterForHf(
        Object.fromEntries(Object.entries(adapter.peftTensors()).map(([name, t]) => [name, { data: t.data as Float32Array, shape: t.shape }])),
        opened.model.config,
      );
      await writeFileAtomic(join(out, "adapter_model.safetensors"), serializeSafetensors(tensors, { format: "pt" }));
      await writeFileAtomic(join(out, "adapter_config.json"), JSON.stringify(adapter.peftConfig(o.baseModelName ?? o.model), null, 2) + "\n");
    } finally {
      adapter.dispose();
    }
    return ["adapter_config.json", "adapter_model.safetensors"];
  }
  let model = opened.model;
  if (o.adapter) {
    const adapter = LoraAdapter.load(o.adapter, model.config);
    try {
      model = mergeLora(model, adapter);
    } finally {
      adapter.dispose();
    }
  }
  if (gguf) {
    if (!(opened.tokenizer instanceof Llama2cTokenizer)) throw new UsageError(`ktu model export --format gguf: the model's tokenizer (${opened.tokenizerPath}) is not a llama2.c tokenizer; GGUF export covers our Llama models with llama2.c tokenizers`);
    if (o.dtype === "BF16") throw new UsageError("ktu model export --format gguf: --dtype F32 or F16 (BF16 is not written)");
    const file = out.endsWith(".gguf") ? out : join(out, "model.gguf");
    const name = o.model.replace(/^.*[\\/]/, "").replace(/\.bin$/, "") + (o.adapter ? "+" + o.adapter.replace(/[\\/]+$/, "").replace(/^.*[\\/]/, "") : "");
    writeGguf(file, model, opened.tokenizer, { dtype: o.dtype ?? "F32", name });
    return [file];
  }
  // An HF tokenizer's source is its tokenizer.json: copy that folder's tokenizer files.
  const tokenizer = opened.tokenizer instanceof Llama2cTokenizer ? opened.tokenizer : opened.tokenizer instanceof HfTokenizer ? { dir: dirname(opened.tokenizerPath) } : undefined;
  return exportHfModel(out, { model, tokenizer, template: o.template, dtype: o.dtype });
}

const exportCommand = defineCommand({
  name: "model export",
  summary: "write a model as a Hugging Face folder (transformers, LLaMA-Factory) or a LoRA adapter in PEFT's layout",
  help: `  --format hf|peft|gguf hf (default): config.json, model.safetensors, generation_config.json, tokenizer.json and
                        tokenizer_config.json; peft: the --adapter alone (adapter_config.json, adapter_model.safetensors)
                        for the model exported with --format hf; gguf: one file for llama.cpp, Ollama and LM Studio
                        (OUT/model.gguf, or OUT itself when it ends in .gguf; F32 or F16; llama2.c-tokenizer models)
  --model FILE|DIR|hf:ORG/NAME[@REV]  a llama2.c .bin, a Hugging Face folder or a hub model
  --tokenizer FILE      llama2.c tokenizer .bin (default tokenizer.bin or tok<vocab>.bin beside the model)
  --adapter DIR         a LoRA adapter (PEFT layout): with --format hf it is merged into the weights
  --template NAME       chat template written into tokenizer_config.json (llama2, mistral, llama3, gemma, ...)
  --dtype F32|F16|BF16  weight type (default F32)
  --out DIR             the folder to write
`,
  options: {
    format: { type: "string" },
    model: { type: "string" },
    tokenizer: { type: "string" },
    adapter: { type: "string" },
    template: { type: "string" },
    dtype: { type: "string" },
    out: { type: "string" },
  },
  async run(values) {
    const name = "model export";
    const format = optionalChoice(values, "format", ["hf", "peft", "gguf"] as const, name) ?? "hf";
    const adapter = typeof values.adapter === "string" ? values.adapter : undefined;
    if (adapter && !existsSync(join(adapter, "adapter_config.json"))) throw new UsageError(`ktu ${name}: --adapter ${adapter} is not a LoRA adapter folder (no adapter_config.json)`);
    const out = requireString(values, "out", name);
    const files = await exportModel({
      model: requireString(values, "model", name),
      tokenizer: typeof values.tokenizer === "string" ? values.tokenizer : undefined,
      adapter,
      out,
      format,
      template: typeof values.template === "string" ? values.template : undefined,
      dtype: optionalChoice(values, "dtype", ["F32", "F16", "BF16"] as const, name),
    });
    const where = format === "gguf" ? "" : ` to ${resolve(out)}`;
    process.stderr.write(`ktu: wrote ${files.join(", ")}${where}${adapter && format !== "peft" ? ` (adapter ${adapter} merged)` : ""}\n`);
  },
});

const downloadCommand = defineCommand({
  name: "model download",
  summary: "download a model by hub name into the huggingface_hub cache that transformers shares",
  help: `  hf:ORG/NAME[@REV]     the model (positional); from $HF_ENDPOINT (default https://huggingface.co) into
                        $HF_HUB_CACHE or $HF_HOME/hub; HF_TOKEN is sent where set. Prints the snapshot folder.
`,
  options: {},
  allowPositionals: true,
  async run(_values, positionals) {
    if (positionals.length !== 1 || !isHubSpec(positionals[0]!)) throw new UsageError("ktu model download: expected one hf:ORG/NAME[@REVISION]");
    process.stdout.write(`${await downloadHubModel(positionals[0]!)}\n`);
  },
});

export const commands: Command[] = [exportCommand, downloadCommand];
