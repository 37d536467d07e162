/**
 * `ktu generate`: run.c's generate mode. stdout is byte for byte what `run MODEL -z TOK -t T -p P
 * -s S -n N -i PROMPT` prints (prompt pieces included, safe_printf's filter, final newline); the
 * speed line goes to stderr as run.c's does.
 */
import { defineCommand, optionalNumber, requireString, type Command, type OptionValues } from "../util/command.ts";
import { UsageError } from "../util/errors.ts";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Decoder } from "./decode.ts";
import { printablePiece } from "./llama2c-tokenizer.ts";
import { openModel } from "./open.ts";
import { pieceDecoder } from "./pieces.ts";
import { Sampler } from "./sampler.ts";

const NAME = "generate";

/** Collects stdout bytes and writes them in batches: one write per token would dominate tiny models. */
class Output {
  private parts: Uint8Array[] = [];
  private size = 0;
  private last = performance.now();
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.parts.push(bytes);
    this.size += bytes.length;
    if (this.size > 4096 || performance.now() - this.last > 100) this.flush();
  }
  flush(): void {
    if (this.size > 0) process.stdout.write(Buffer.concat(this.parts));
    this.parts = [];
    this.size = 0;
    this.last = performance.now();
  }
}

function parseSeed(values: OptionValues): bigint {
  const raw = values.seed;
  if (raw === undefined) return BigInt(Math.floor(Date.now() / 1000));
  if (typeof raw !== "string" || !/^-?\d+$/.test(raw.trim())) throw new UsageError(`ktu ${NAME}: --seed must be an integer, got ${JSON.stringify(raw)}`);
  const seed = BigInt(raw.trim());
  // run.c: a seed of 0 means "seed from the clock".
  return seed === 0n ? BigInt(Math.floor(Date.now() / 1000)) : seed;
}

export interface GenerateCliOptions {
  /** A llama2.c .bin, a Hugging Face folder, or hf:ORG/NAME[@REVISION]. */
  model: string;
  /** llama2.c tokenizer .bin (default: beside the model), or a folder with tokenizer.json. */
  tokenizer?: string;
  prompt: string;
  steps: number;
  temperature: number;
  topP: number;
  seed: bigint;
}

/** run.c's generate loop; writes to stdout and stderr. Returns the number of positions run. */
/**
 * The ids that end generation: run.c stops at BOS (1) for llama2.c models; a Hugging Face folder
 * stops at its generation_config.json eos_token_id (else the tokenizer's EOS).
 */
function stopIds(format: "llama2c" | "hf", modelPath: string, eosId: number): Set<number> {
  if (format === "llama2c") return new Set([1]);
  const path = join(modelPath, "generation_config.json");
  if (existsSync(path)) {
    const eos = (JSON.parse(readFileSync(path, "utf8")) as { eos_token_id?: number | number[] }).eos_token_id;
    if (eos !== undefined && eos !== null) return new Set(Array.isArray(eos) ? eos : [eos]);
  }
  return new Set(eosId >= 0 ? [eosId] : []);
}

export function runGenerate(o: GenerateCliOptions): number {
  const opened = openModel(o.model, o.tokenizer);
  const { model, tokenizer } = opened;
  const piece = pieceDecoder(tokenizer, opened.format === "hf" ? opened.tokenizerPath : undefined);
  const stops = stopIds(opened.format, opened.modelPath, tokenizer.eosId);
  const decoder = new Decoder(model);
  const steps = o.steps === 0 || o.steps > model.config.seqLen ? model.config.seqLen : o.steps;
  const sampler = new Sampler({ vocabSize: model.config.vocabSize, temperature: o.temperature, topP: o.topP, seed: o.seed });
  const prompt = tokenizer.encode(o.prompt, { bos: true });
  const cache = decoder.newCache(steps);
  const out = new Output();
  let start = 0;
  let token = prompt[0]!;
  let pos = 0;
  // The prompt's forced positions need no logits: feed them in one batched pass.
  const forced = Math.min(prompt.length - 1, steps);
  let ended = false;
  if (forced > 0) {
    decoder.prefill(cache, prompt.slice(0, forced));
    while (pos < forced && !ended) {
      const next = prompt[pos + 1]!;
      pos++;
      if (stops.has(next)) ended = true;
      else {
        out.push(printablePiece(piece(token, next)));
        token = next;
        if (start === 0) start = performance.now();
      }
    }
  }
  while (pos < steps && !ended) {
    const logits = decoder.step(cache, token);
    const next = pos < prompt.length - 1 ? prompt[pos + 1]! : sampler.sample(logits);
    pos++;
    if (stops.has(next)) break;
    out.push(printablePiece(piece(token, next)));
    token = next;
    if (start === 0) start = performance.now();
  }
  out.push(Uint8Array.of(0x0a));
  out.flush();
  if (pos > 1) process.stderr.write(`achieved tok/s: ${((pos - 1) / ((performance.now() - start) / 1000)).toFixed(6)}\n`);
  return pos;
}

export const commands: Command[] = [
  defineCommand({
    name: NAME,
    summary: "generate text with a model, printing exactly what llama2.c's run.c prints",
    help: `  --model FILE|DIR|hf:ORG/NAME[@REV]
                       llama2.c checkpoint (.bin, v0/v1/v2), a Hugging Face folder (config.json, safetensors,
                       tokenizer.json), or a model by hub name, downloaded from $HF_ENDPOINT into the
                       huggingface_hub cache ($HF_HUB_CACHE or $HF_HOME/hub; HF_TOKEN sent, HF_HUB_OFFLINE=1: cache only)
  --tokenizer FILE     llama2.c tokenizer (.bin; default tokenizer.bin or tok<vocab>.bin beside the model);
                       a Hugging Face model uses its own tokenizer.json
  --prompt TEXT        prompt (default empty)
  --steps N            positions to run, prompt included, as run.c's -n (default 256; 0 = the model's context)
  --temperature T      0 = greedy (default 1.0, as run.c)
  --top-p P            nucleus threshold in [0, 1] (default 0.9, as run.c)
  --seed S             xorshift seed (default: the clock, as run.c)`,
    options: {
      model: { type: "string" },
      tokenizer: { type: "string" },
      prompt: { type: "string" },
      steps: { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      seed: { type: "string" },
    },
    run(values) {
      const steps = optionalNumber(values, "steps", NAME) ?? 256;
      const temperature = optionalNumber(values, "temperature", NAME) ?? 1;
      const topP = optionalNumber(values, "top-p", NAME) ?? 0.9;
      if (!Number.isInteger(steps) || steps < 0) throw new UsageError(`ktu ${NAME}: --steps must be a non-negative integer, got ${steps}`);
      if (temperature < 0) throw new UsageError(`ktu ${NAME}: --temperature must be >= 0, got ${temperature}`);
      if (topP < 0 || topP > 1) throw new UsageError(`ktu ${NAME}: --top-p must be in [0, 1], got ${topP}`);
      runGenerate({
        model: requireString(values, "model", NAME),
        tokenizer: typeof values.tokenizer === "string" ? values.tokenizer : undefined,
        prompt: typeof values.prompt === "string" ? values.prompt : "",
        steps,
        temperature,
        topP,
        seed: parseSeed(values),
      });
      return 0;
    },
  }),
];
