import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizerCore } from "@huggingface/tokenizers";
import { InputError } from "../util/errors.ts";
import { dataPath } from "../util/paths.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Hugging Face tokenizer.json tokenizers (through @huggingface/tokenizers, pure JS), behind the
 * project's Tokenizer interface; also the GPT-2 byte-level BPE built from OpenAI's encoder.json and
 * vocab.bpe.
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;

  constructor(
    private readonly core: HfTokenizerCore,
    ids: { bos?: number; eos?: number; vocabSize: number },
    readonly source = "<memory>",
  ) {
    this.vocabSize = ids.vocabSize;
    this.eosId = ids.eos ?? -1;
    this.bosId = ids.bos ?? this.eosId;
  }

  /** From a tokenizer.json object (and the tokenizer_config.json object naming bos/eos tokens). */
  static fromJson(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown> = {}, source = "<memory>"): HfTokenizer {
    const core = new HfTokenizerCore(tokenizerJson, tokenizerConfig);
    const model = (tokenizerJson.model ?? {}) as { vocab?: Record<string, number> | [string, number][] };
    const added = (tokenizerJson.added_tokens ?? []) as { id: number }[];
    const vocabIds = Array.isArray(model.vocab) ? model.vocab.map((_, i) => i) : Object.values(model.vocab ?? {});
    const vocabSize = Math.max(-1, ...vocabIds, ...added.map((t) => t.id)) + 1;
    const special = (key: string): number | undefined => {
      const v = tokenizerConfig[key];
      const text = typeof v === "string" ? v : v && typeof v === "object" ? (v as { content?: string }).content : undefined;
      return text === undefined ? undefined : core.token_to_id(text);
    };
    return new HfTokenizer(core, { bos: special("bos_token"), eos: special("eos_token"), vocabSize }, source);
  }

  /** From a model folder's tokenizer.json (+ tokenizer_config.json when present). */
  static fromDir(dir: string): HfTokenizer {
    const path = join(dir, "tokenizer.json");
    if (!existsSync(path)) throw new InputError(path, undefined, undefined, "missing (SentencePiece tokenizer.model files need converting to tokenizer.json)");
    const configPath = join(dir, "tokenizer_config.json");
    const json = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    const config = existsSync(configPath) ? (JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>) : {};
    return HfTokenizer.fromJson(json, config, path);
  }

  /** GPT-2's tokenizer from encoder.json + vocab.bpe (default: the copy in data/models/gpt2-tokenizer). */
  static gpt2(dir = dataPath("models", "gpt2-tokenizer")): HfTokenizer {
    return HfTokenizer.fromJson(gpt2TokenizerJson(dir), gpt2TokenizerConfig, join(dir, "encoder.json"));
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = text.length ? this.core.encode(text, { add_special_tokens: false }).ids : [];
    if (opts.bos && this.bosId >= 0) ids.unshift(this.bosId);
    if (opts.eos && this.eosId >= 0) ids.push(this.eosId);
    return ids;
  }

  decode(ids: number[]): string {
    return this.core.decode(ids, { skip_special_tokens: true });
  }

  tokenToId(token: string): number | undefined {
    return this.core.token_to_id(token);
  }

  /**
   * Fails when the tokenizer can produce ids the model has no row for, naming the tokenizer file. A
   * model vocabulary larger than the tokenizer's is normal (padded embedding tables).
   */
  checkVocab(modelVocab: number, modelSource: string): void {
    if (this.vocabSize > modelVocab) {
      throw new InputError(this.source, undefined, "vocab", `the tokenizer has ${this.vocabSize} tokens but the model ${modelSource} has only vocab_size ${modelVocab}`);
    }
  }
}

export const gpt2TokenizerConfig = Object.freeze({ bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", unk_token: "<|endoftext|>" });

/** The tokenizer.json that Hugging Face ships for GPT-2, built from OpenAI's encoder.json and vocab.bpe. */
export function gpt2TokenizerJson(dir = dataPath("models", "gpt2-tokenizer")): Record<string, unknown> {
  const vocab = JSON.parse(readFileSync(join(dir, "encoder.json"), "utf8")) as Record<string, number>;
  const merges = readFileSync(join(dir, "vocab.bpe"), "utf8")
    .split("\n")
    .filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith("#version")));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}
