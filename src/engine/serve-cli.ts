/**
 * `ktu serve`: the in-process model over an OpenAI-compatible HTTP API (see server.ts), until SIGINT
 * or SIGTERM. Binds to 127.0.0.1 unless --host says otherwise.
 */
import { basename } from "node:path";
import { openModel } from "../model/open.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { LlamaModelData } from "../model/types.ts";
import { defineCommand, optionalNumber, requireString, type Command } from "../util/command.ts";
import { UsageError } from "../util/errors.ts";
import { startServer } from "./server.ts";

const NAME = "serve";

export interface ServedModel {
  model: LlamaModelData;
  tokenizer: Tokenizer;
  name: string;
}

/**
 * Loads what `ktu serve --model --tokenizer --adapter` names: a llama2.c .bin with its tokenizer .bin
 * (default: tokenizer.bin or tok<vocab>.bin beside the model), or a Hugging Face folder (config.json,
 * safetensors, tokenizer.json), through the model area's openModel; a PEFT adapter folder is merged
 * into the weights before serving.
 */
export async function loadServedModel(modelPath: string, tokenizerPath?: string, adapterDir?: string): Promise<ServedModel> {
  const opened = openModel(modelPath, tokenizerPath);
  let model = opened.model;
  if (adapterDir !== undefined) {
    // The trainer (and TensorFlow.js with it) loads only when an adapter is asked for.
    const { LoraAdapter, mergeLora } = await import("../train/lora.ts");
    const { initBackend } = await import("../model/backend.ts");
    await initBackend();
    const adapter = LoraAdapter.load(adapterDir, model.config);
    try {
      model = mergeLora(model, adapter);
    } finally {
      adapter.dispose();
    }
  }
  const name = basename(modelPath).replace(/\.bin$/, "") + (adapterDir ? `+${basename(adapterDir)}` : "");
  return { model, tokenizer: opened.tokenizer, name };
}

export const commands: Command[] = [
  defineCommand({
    name: NAME,
    summary: "serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models)",
    help: `  --model FILE|DIR     llama2.c checkpoint (.bin) or Hugging Face model folder
  --tokenizer FILE     llama2.c tokenizer (.bin); default tokenizer.bin or tok<vocab>.bin beside the model
  --adapter DIR        PEFT LoRA adapter folder, merged into the weights before serving
  --host ADDR          address to bind (default 127.0.0.1, loopback only)
  --port N             port (default 8000; 0 picks a free one)
  --name ID            model id reported by /v1/models (default: the file name)
  --template NAME      chat template for /v1/chat/completions: default (Human: ...\\nAssistant:),
                       alpaca, llama2, llama3, mistral, qwen, empty
  --max-batch N        sequences decoded together (default 16)
  --max-queue N        waiting requests before HTTP 429 (default 1024)
  --max-prompt-chars N longest prompt in characters, refused before tokenizing (default: context
                       length × the tokenizer's longest piece)
  --max-request-kv-mb N  KV cache one request may ask for (prompts × n × positions), in MiB
                       (default 1024, or one full-context sequence where that is more)`,
    options: {
      model: { type: "string" },
      tokenizer: { type: "string" },
      adapter: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      name: { type: "string" },
      template: { type: "string" },
      "max-batch": { type: "string" },
      "max-queue": { type: "string" },
      "max-prompt-chars": { type: "string" },
      "max-request-kv-mb": { type: "string" },
    },
    async run(values) {
      const port = optionalNumber(values, "port", NAME) ?? 8000;
      const maxBatch = optionalNumber(values, "max-batch", NAME);
      const maxQueue = optionalNumber(values, "max-queue", NAME);
      const maxPromptChars = optionalNumber(values, "max-prompt-chars", NAME);
      const maxKvMb = optionalNumber(values, "max-request-kv-mb", NAME);
      for (const [name, v] of [["port", port], ["max-batch", maxBatch], ["max-queue", maxQueue], ["max-prompt-chars", maxPromptChars], ["max-request-kv-mb", maxKvMb]] as const) {
        const [lo, hi] = name === "port" ? [0, 65535] : name === "max-prompt-chars" ? [1, 1 << 30] : [1, 1 << 20];
        if (v !== undefined && (!Number.isInteger(v) || v < lo || v > hi)) throw new UsageError(`ktu ${NAME}: --${name} must be a whole number from ${lo} to ${hi}, got ${v}`);
      }
      const served = await loadServedModel(requireString(values, "model", NAME), values.tokenizer as string | undefined, values.adapter as string | undefined);
      const host = (values.host as string | undefined) ?? "127.0.0.1";
      const server = await startServer({
        model: served.model,
        tokenizer: served.tokenizer,
        modelName: (values.name as string | undefined) ?? served.name,
        chatTemplate: (values.template as string | undefined) ?? "default",
        host,
        port,
        maxBatch,
        maxQueue,
        maxPromptChars,
        maxRequestKvBytes: maxKvMb === undefined ? undefined : maxKvMb * 1024 * 1024,
      });
      if (!["127.0.0.1", "localhost", "::1"].includes(host)) process.stderr.write(`ktu serve: warning: listening on ${host}, reachable from other machines; there is no authentication\n`);
      process.stdout.write(`ktu serve: ${served.name} on ${server.url}/v1 (Ctrl-C stops)\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          void server.close().then(resolve, resolve);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      return 0;
    },
  }),
];
