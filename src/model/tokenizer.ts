/**
 * What generation, scoring and serving need from a tokenizer. The llama2.c tokenizer
 * (llama2c-tokenizer.ts) and the Hugging Face tokenizer.json one both implement it.
 */
export interface Tokenizer {
  /** Token ids of `text`; `bos` prepends the begin-of-sequence id, `eos` appends the end one. */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  /** Text of `ids`, special tokens (BOS, EOS) left out. */
  decode(ids: number[]): string;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
}
