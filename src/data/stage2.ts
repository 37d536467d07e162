import { Rng } from "../util/rng.ts";
import type { AlpacaRow } from "./alpaca.ts";
import type { BenchmarkRow } from "./benchmark.ts";
import { hotpotContext, supportingTitles, type HotpotSample } from "./hotpot.ts";
import { INSTRUCTIONS, type CausalInstruction, type InstructionContext } from "./instructions.ts";
import { INSTRUCTION_SLOTS, TASK_PROMPT_CHECK_SENTENCE, taskPromptPrompt, type InstructionSlot } from "./prompts.ts";
import { cognitionRows, qaRow, type Stage1Row } from "./stage1.ts";

/**
 * Stage 2, prompt-sensitive tuning (paper.md §1.3), built offline. The seed asks GPT-4 to answer a
 * TASK_PROMPT (a HotpotQA question with one random causal instruction in one of five slots) and
 * keeps replies that carry a CHECKING review. Here the reply is built: a target answer made from
 * the gold answer so that it follows the instruction, then a CHECKING block whose marks come from
 * running the instruction's verifier, in the format of TASK_PROMPT's demonstrations:
 *
 *   {answer}
 *   CHECKING:
 *   Question Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>
 *   {instruction}<fulfilled>
 *
 * With `revise`, a gold answer that does not already follow the instruction is shown first as a
 * draft marked <not fulfilled>, followed by "ANSWER: {fixed}" and a new CHECKING, like the
 * second demonstration. Randomness (instruction, slot) comes from one seeded Rng, drawn in that
 * order per sample; an instruction that cannot be met for a gold answer is redrawn.
 */

export interface CheckMark {
  sentence: string;
  fulfilled: boolean;
}

export interface Stage2Row extends AlpacaRow {
  source_id: string;
  instruction_id: string;
  instruction_text: string;
  slot: InstructionSlot;
  gold_answer: string;
  /** The final answer inside the output (what the verifier passed). */
  answer: string;
  checks: CheckMark[];
  revised: boolean;
}

export interface Stage2Options {
  seed?: number;
  /** How many HotpotQA samples to use (the seed's `end=300`). */
  limit?: number;
  instructions?: readonly CausalInstruction[];
  revise?: boolean;
  /** Redraws allowed per sample before it is skipped. */
  maxRedraws?: number;
}

export interface Stage2Result {
  rows: Stage2Row[];
  /** Instructions redrawn because the first pick could not be met for that gold answer. */
  redraws: number;
  /** Samples skipped: no instruction could be met, or empty context. */
  skipped: number;
}

export const DEFAULT_STAGE2_SEED = 42;
export const DEFAULT_STAGE2_LIMIT = 300;

export const instructionContext = (sample: HotpotSample): InstructionContext => ({
  question: sample.question,
  gold: sample.answer,
  titles: supportingTitles(sample).length > 0 ? supportingTitles(sample) : sample.context.map(([t]) => t),
});

export function checkMarks(answer: string, instruction: CausalInstruction, ctx: InstructionContext): CheckMark[] {
  return [
    { sentence: TASK_PROMPT_CHECK_SENTENCE, fulfilled: answer.trim() !== "" },
    { sentence: instruction.text, fulfilled: instruction.verify(answer, ctx) },
  ];
}

export const formatChecking = (marks: readonly CheckMark[]): string =>
  "CHECKING:\n" + marks.map((m) => `${m.sentence}<${m.fulfilled ? "fulfilled" : "not fulfilled"}>`).join("\n");

/** The model output for one stage-2 sample, with the revision round when asked and needed. */
export function stage2Output(answer: string, instruction: CausalInstruction, ctx: InstructionContext, revise: boolean): { output: string; checks: CheckMark[]; revised: boolean } {
  const checks = checkMarks(answer, instruction, ctx);
  const draft = ctx.gold.trim();
  if (revise && draft !== answer && !instruction.verify(draft, ctx)) {
    const draftChecks = checkMarks(draft, instruction, ctx);
    return { output: `${draft}\n${formatChecking(draftChecks)}\nANSWER: ${answer}\n${formatChecking(checks)}`, checks, revised: true };
  }
  return { output: `${answer}\n${formatChecking(checks)}`, checks, revised: false };
}

export function buildStage2(samples: Iterable<HotpotSample>, options: Stage2Options = {}): Stage2Result {
  const rng = new Rng(options.seed ?? DEFAULT_STAGE2_SEED);
  const library = options.instructions ?? INSTRUCTIONS;
  const limit = options.limit ?? DEFAULT_STAGE2_LIMIT;
  const maxRedraws = options.maxRedraws ?? 20;
  const rows: Stage2Row[] = [];
  let redraws = 0;
  let skipped = 0;
  for (const sample of samples) {
    if (rows.length >= limit) break;
    const context = hotpotContext(sample);
    if (context.trim() === "" || sample.answer.trim() === "") {
      skipped++;
      continue;
    }
    const ctx = instructionContext(sample);
    let chosen: { instruction: CausalInstruction; answer: string } | undefined;
    for (let attempt = 0; attempt <= maxRedraws && !chosen; attempt++) {
      const instruction = rng.pick(library);
      const answer = instruction.build(ctx);
      if (answer !== null && instruction.verify(answer, ctx)) chosen = { instruction, answer };
      else redraws++;
    }
    if (!chosen) {
      skipped++;
      continue;
    }
    const slot = INSTRUCTION_SLOTS[rng.int(0, 4)]!;
    const { output, checks, revised } = stage2Output(chosen.answer, chosen.instruction, ctx, options.revise ?? false);
    rows.push({
      instruction: taskPromptPrompt(context, sample.question, chosen.instruction.text, slot),
      input: "",
      output,
      source_id: sample.id,
      instruction_id: chosen.instruction.id,
      instruction_text: chosen.instruction.text,
      slot,
      gold_answer: sample.answer,
      answer: chosen.answer,
      checks,
      revised,
    });
  }
  return { rows, redraws, skipped };
}

/** The plain QA ablation (TrustworthyLLM_QA_Finetuning_Dataset): TASK_QA prompt -> gold answer. */
export const buildQaAblation = (samples: Iterable<HotpotSample>): Stage1Row[] => [...samples].map(qaRow);

/**
 * The single-stage mixture Cognition_PSQA: per benchmark row a Sufficient and an Insufficient
 * sample, then the next prompt-sensitive sample, cycling through the stage-2 rows.
 */
export function buildCognitionPsqa(benchmark: readonly BenchmarkRow[], stage2: readonly AlpacaRow[]): AlpacaRow[] {
  if (stage2.length === 0 && benchmark.length > 0) throw new RangeError("buildCognitionPsqa: no stage-2 rows to mix in");
  const out: AlpacaRow[] = [];
  benchmark.forEach((row, i) => {
    out.push(...cognitionRows(row), stage2[i % stage2.length]!);
  });
  return out;
}
