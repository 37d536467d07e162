/**
 * How often a model fulfils the causal instructions of stage 2 (paper.md 1.3) on HotpotQA questions
 * it was not trained on: one seeded instruction per question, the compact prompt-sensitive prompt,
 * a greedy answer, and the instruction's own verifier on the answer part (before "CHECKING").
 */
import { hotpotContext, type HotpotSample } from "../data/hotpot.ts";
import { INSTRUCTIONS, type CausalInstruction } from "../data/instructions.ts";
import { instructionContext } from "../data/stage2.ts";
import { isKnownCorrect, normalizeAnswer } from "../eval/scoring.ts";
import { generate } from "../model/generate.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { LlamaModelData } from "../model/types.ts";
import { Rng } from "../util/rng.ts";
import { compactPromptSensitivePrompt, fitContext } from "./compact.ts";

export interface InstructionItem {
  sample: HotpotSample;
  instruction: CausalInstruction;
  context: string;
}

export interface InstructionOutcome {
  id: string;
  instruction_id: string;
  instruction: string;
  question: string;
  gold: string;
  output: string;
  answer: string;
  fulfilled: boolean;
  /** The gold answer (normalised) is a span of the answer. */
  correct: boolean;
  has_checking: boolean;
}

/** Draws one instruction per sample (redrawn while it cannot be met for that gold answer) and crops the passage. */
export function instructionItems(samples: readonly HotpotSample[], tokenizer: Tokenizer, options: { seed?: number; maxLen: number; maxNewTokens: number }): InstructionItem[] {
  const rng = new Rng(options.seed ?? 7);
  return samples.flatMap((sample) => {
    const ctx = instructionContext(sample);
    for (let tries = 0; tries < 10; tries++) {
      const instruction = rng.pick(INSTRUCTIONS);
      if (instruction.build(ctx) === null) continue;
      const fit = fitContext(tokenizer, hotpotContext(sample), sample.answer, options.maxLen, [(c) => compactPromptSensitivePrompt(sample.question, c, instruction.text)], options.maxNewTokens);
      return [{ sample, instruction, context: fit.context }];
    }
    return [];
  });
}

export async function instructionFollowing(model: LlamaModelData, tokenizer: Tokenizer, items: readonly InstructionItem[], options: { maxNewTokens: number; onProgress?: (done: number, total: number) => void }): Promise<InstructionOutcome[]> {
  const out: InstructionOutcome[] = [];
  for (const [k, { sample, instruction, context }] of items.entries()) {
    const output = generate(model, tokenizer, compactPromptSensitivePrompt(sample.question, context, instruction.text), { maxNewTokens: options.maxNewTokens }).text;
    const cut = output.indexOf("CHECKING");
    const answer = (cut >= 0 ? output.slice(0, cut) : output).trim();
    out.push({
      id: sample.id,
      instruction_id: instruction.id,
      instruction: instruction.text,
      question: sample.question,
      gold: sample.answer,
      output,
      answer,
      fulfilled: answer !== "" && instruction.verify(answer, instructionContext(sample)),
      correct: normalizeAnswer(sample.answer) !== "" && isKnownCorrect(answer, [sample.answer], "strict"),
      has_checking: cut >= 0,
    });
    options.onProgress?.(k + 1, items.length);
    await new Promise((r) => setImmediate(r));
  }
  return out;
}
