/**
 * Models out to the Hugging Face layout that transformers' AutoModelForCausalLM / AutoTokenizer and
 * LLaMA-Factory load: config.json + model.safetensors (saveHfModel), generation_config.json,
 * tokenizer.json + tokenizer_config.json (with the chat template where there is one), and LoRA
 * adapters in PEFT's layout (adapter_config.json + adapter_model.safetensors).
 *
 * A llama2.c tokenizer.bin becomes a SentencePiece-style BPE tokenizer.json (the layout of Llama 2's
 * own): "▁" for spaces, a "▁" prepended to non-empty text (run.c's dummy prefix), byte fallback to
 * the <0xNN> tokens, and merges ranked by the score of the merged piece, so that tokenizers' BPE
 * (lowest rank first) picks what run.c's encode (highest score first) picks.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { chatTemplateJinja, getChatTemplate } from "./chat-templates.ts";
import { interleavedToRotateHalf, saveHfModel } from "./hf.ts";
import type { Llama2cTokenizer } from "./llama2c-tokenizer.ts";
import type { LlamaModelData } from "./types.ts";

const SPACE = "\u2581"; // ▁
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const SPECIALS = ["<unk>", "<s>", "</s>"] as const;

/** The vocabulary string of a llama2.c piece: specials by name, spaces as ▁. */
function tokenString(tokenizer: Llama2cTokenizer, id: number): string {
  if (id < 3) return SPECIALS[id]!;
  return tokenizer.piece(id).replaceAll(" ", SPACE);
}

/** tokenizer.json (and tokenizer_config.json) for a llama2.c tokenizer, encoding exactly as run.c does. */
export function llama2cTokenizerJson(tokenizer: Llama2cTokenizer, options: { chatTemplate?: string; modelMaxLength?: number } = {}): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const vocab: Record<string, number> = {};
  const strings: string[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    let s = tokenString(tokenizer, id);
    // Two ids with one string cannot both live in a vocab map; keep the first (run.c's lookup does too).
    if (s in vocab) s = `<ktu_duplicate_${id}>`;
    vocab[s] = id;
    strings.push(s);
  }
  // Every split of a piece into two pieces is a merge; a merge's rank follows its result's score (best first).
  const merges: { pair: string; score: number; id: number; split: number }[] = [];
  for (let id = 3; id < strings.length; id++) {
    const s = strings[id]!;
    if (BYTE_TOKEN.test(s) || s.startsWith("<ktu_duplicate_")) continue;
    const chars = [...s];
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join("");
      const right = chars.slice(k).join("");
      const l = vocab[left];
      const r = vocab[right];
      if (l === undefined || r === undefined || l < 3 || r < 3 || BYTE_TOKEN.test(left) || BYTE_TOKEN.test(right)) continue;
      merges.push({ pair: `${left} ${right}`, score: tokenizer.scores[id]!, id, split: k });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.split - b.split);
  const added = SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const json: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: SPACE }, { type: "Replace", pattern: { String: " " }, content: SPACE }] },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: SPACE }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => m.pair),
    },
  };
  const config: Record<string, unknown> = {
    // The generic fast tokenizer: it runs tokenizer.json as written (LlamaTokenizerFast would rebuild the normalizer).
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: options.modelMaxLength ?? 2048,
    ...(options.chatTemplate ? { chat_template: options.chatTemplate } : {}),
  };
  return { tokenizer: json, config };
}

export interface HfExportOptions {
  /** The model to write (e.g. openModel(...).model, or a merge). */
  model: LlamaModelData;
  /** A llama2.c tokenizer to convert, or a folder whose tokenizer.json / tokenizer_config.json are copied. */
  tokenizer?: Llama2cTokenizer | { dir: string };
  /** A chat template by name (llama2, mistral, ...) written into tokenizer_config.json. */
  template?: string;
  dtype?: "F32" | "F16" | "BF16";
  /** Token ids that end generation (generation_config.json eos_token_id); default </s>, plus <s> for llama2.c (run.c stops there). */
  eosTokenIds?: number[];
}

/** Writes a Hugging Face model folder: config.json, model.safetensors, generation_config.json and the tokenizer files. */
export async function exportHfModel(dir: string, options: HfExportOptions): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  await saveHfModel(dir, options.model, { dtype: options.dtype });
  const written = ["config.json", "model.safetensors"];
  const chatTemplate = options.template ? chatTemplateJinja(getChatTemplate(options.template)) : undefined;
  let bos = 1;
  let eos = options.eosTokenIds ?? [2];
  const tok = options.tokenizer;
  if (tok && "dir" in tok) {
    const source = join(tok.dir, "tokenizer.json");
    if (!existsSync(source)) throw new InputError(source, undefined, undefined, "missing: the tokenizer folder needs tokenizer.json");
    copyFileSync(source, join(dir, "tokenizer.json"));
    const configPath = join(tok.dir, "tokenizer_config.json");
    const config = existsSync(configPath) ? (JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>) : {};
    if (chatTemplate) config.chat_template = chatTemplate;
    await writeFileAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
    const genPath = join(tok.dir, "generation_config.json");
    if (existsSync(genPath) && !options.eosTokenIds) {
      const gen = JSON.parse(readFileSync(genPath, "utf8")) as { bos_token_id?: number; eos_token_id?: number | number[] };
      if (typeof gen.bos_token_id === "number") bos = gen.bos_token_id;
      if (gen.eos_token_id !== undefined) eos = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : [gen.eos_token_id];
    }
    written.push("tokenizer.json", "tokenizer_config.json");
  } else if (tok) {
    const { tokenizer, config } = llama2cTokenizerJson(tok, { chatTemplate, modelMaxLength: options.model.config.seqLen });
    await writeFileAtomic(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
    await writeFileAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
    written.push("tokenizer.json", "tokenizer_config.json");
    // run.c ends a story at <s> (the training data separates stories with it), and chat models at </s>.
    if (!options.eosTokenIds) eos = [2, 1];
  }
  const generation = { _from_model_config: false, bos_token_id: bos, eos_token_id: eos.length === 1 ? eos[0] : eos, do_sample: false };
  await writeFileAtomic(join(dir, "generation_config.json"), JSON.stringify(generation, null, 2) + "\n");
  written.push("generation_config.json");
  return written;
}

/**
 * A LoRA adapter's tensors for the Hugging Face layout of its base: an adapter trained on a llama2.c
 * (interleaved RoPE) model has its q/k lora_B rows permuted as saveHfModel permutes the q/k weights,
 * so that peft on the exported model computes what ktu computes on the original.
 */
export function permuteAdapterForHf(
  tensors: Record<string, { data: Float32Array; shape: readonly number[] }>,
  config: LlamaModelData["config"],
): Record<string, { data: Float32Array; shape: readonly number[] }> {
  if (config.ropeStyle !== "interleaved") return tensors;
  const hs = config.dim / config.nHeads;
  const out: Record<string, { data: Float32Array; shape: readonly number[] }> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const q = /\.self_attn\.q_proj\.lora_B\.weight$/.test(name);
    const k = /\.self_attn\.k_proj\.lora_B\.weight$/.test(name);
    out[name] = q || k ? { data: interleavedToRotateHalf(t.data, q ? config.nHeads : config.nKvHeads, hs, t.shape[1]!), shape: t.shape } : t;
  }
  return out;
}
