import { Rng } from "../util/rng.ts";
import type { AlpacaRow } from "./alpaca.ts";
import { hotpotContext, type HotpotSample } from "./hotpot.ts";
import { INSTRUCTIONS, type CausalInstruction } from "./instructions.ts";
import { GPT_SYSTEM_MESSAGE, INSTRUCTION_SLOTS, taskPromptPrompt, taskQaPrompt, type InstructionSlot } from "./prompts.ts";
import { DEFAULT_STAGE2_LIMIT, DEFAULT_STAGE2_SEED, instructionContext } from "./stage2.ts";

/**
 * The seed's way to get stage-2 answers: ask a chat model (GPT-4 in the paper) through any
 * OpenAI-compatible endpoint, system message from the seed, temperature 0, and keep only replies
 * containing "CHECKING". A kept sample is asked again with the plain TASK_QA prompt for the
 * "direct answer" set (TrustworthyLLM_GPT_Finetuning_Dataset). Optional: the offline builder
 * in stage2.ts needs no network.
 */

export interface ChatClientOptions {
  /** e.g. https://api.openai.com/v1 (the seed used a proxy); "/chat/completions" is appended. */
  baseUrl: string;
  model: string;
  apiKey?: string;
  temperature?: number;
  timeoutMs?: number;
}

export async function chatComplete(options: ChatClientOptions, prompt: string, system = GPT_SYSTEM_MESSAGE): Promise<string> {
  const url = options.baseUrl.replace(/\/+$/, "") + "/chat/completions";
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) },
    body: JSON.stringify({
      model: options.model,
      messages: [
        { role: "system", content: system },
        { role: "user", content: prompt },
      ],
      temperature: options.temperature ?? 0,
    }),
    signal: AbortSignal.timeout(options.timeoutMs ?? 120_000),
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}: ${body.slice(0, 200)}`);
  let parsed: { choices?: { message?: { content?: unknown } }[] };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    throw new Error(`${url}: reply is not JSON: ${body.slice(0, 200)}`);
  }
  const content = parsed.choices?.[0]?.message?.content;
  if (typeof content !== "string") throw new Error(`${url}: reply has no choices[0].message.content`);
  return content;
}

export interface ClientStage2Row extends AlpacaRow {
  source_id: string;
  instruction_id: string;
  slot: InstructionSlot;
  gold_answer: string;
  /** Whether the reply's first answer (before CHECKING) passes the instruction's verifier. */
  verified: boolean;
}

export interface ClientStage2Result {
  /** TASK_PROMPT -> model reply with CHECKING (TrustworthyLLM_PromptSensitive_Finetuning_Dataset). */
  rows: ClientStage2Row[];
  /** TASK_QA -> the model's direct answer (TrustworthyLLM_GPT_Finetuning_Dataset). */
  direct: AlpacaRow[];
  /** Replies without "CHECKING". */
  rejected: number;
}

/** The text before the first "CHECKING", i.e. the model's first answer. */
export const answerBeforeChecking = (reply: string): string => reply.slice(0, Math.max(0, reply.indexOf("CHECKING"))).trim();

export async function buildStage2WithClient(
  samples: Iterable<HotpotSample>,
  client: ChatClientOptions,
  options: { seed?: number; limit?: number; instructions?: readonly CausalInstruction[] } = {},
): Promise<ClientStage2Result> {
  const rng = new Rng(options.seed ?? DEFAULT_STAGE2_SEED);
  const library = options.instructions ?? INSTRUCTIONS;
  const limit = options.limit ?? DEFAULT_STAGE2_LIMIT;
  const rows: ClientStage2Row[] = [];
  const direct: AlpacaRow[] = [];
  let rejected = 0;
  let asked = 0;
  for (const sample of samples) {
    // As the seed: `limit` counts samples asked, not replies kept.
    if (asked++ >= limit) break;
    const instruction = rng.pick(library);
    const slot = INSTRUCTION_SLOTS[rng.int(0, 4)]!;
    const context = hotpotContext(sample);
    const prompt = taskPromptPrompt(context, sample.question, instruction.text, slot);
    const reply = await chatComplete(client, prompt);
    if (!reply.includes("CHECKING")) {
      rejected++;
      continue;
    }
    rows.push({
      instruction: prompt,
      input: "",
      output: reply,
      source_id: sample.id,
      instruction_id: instruction.id,
      slot,
      gold_answer: sample.answer,
      verified: instruction.verify(answerBeforeChecking(reply), instructionContext(sample)),
    });
    const qaPrompt = taskQaPrompt(context, sample.question);
    direct.push({ instruction: qaPrompt, input: "", output: await chatComplete(client, qaPrompt) });
  }
  return { rows, direct, rejected };
}
