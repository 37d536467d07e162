import assert from "node:assert/strict";
import { test } from "node:test";
import { readHotpotAll, type HotpotSample } from "../src/data/hotpot.ts";
import { INSTRUCTIONS, numberToWords, type InstructionContext } from "../src/data/instructions.ts";
import { taskPromptPrompt } from "../src/data/prompts.ts";
import { buildStage2, formatChecking, instructionContext } from "../src/data/stage2.ts";
import { dataPath } from "../src/util/paths.ts";

const ctx: InstructionContext = { question: "Who is Jack Chen?", gold: "a famous singer", titles: ["Jack Chen"] };

/** For every instruction: an answer that follows it and one that does not. */
const CASES: Record<string, [string, string]> = {
  past_tense: ["Jack Chen was a famous singer in China.", "Jack Chen is a famous singer in China."],
  max_10_words: ["A famous singer.", "Jack Chen is a very famous singer from China who released many albums."],
  min_15_words: ['According to the passages given in the contexts above, the answer to the question "Who is Jack Chen?" is a famous singer.', "A famous singer."],
  prefix_answer: ["Answer: a famous singer", "a famous singer"],
  suffix_end: ["A famous singer. End of answer.", "A famous singer."],
  lowercase: ["a famous singer", "A famous singer"],
  uppercase: ["A FAMOUS SINGER", "A Famous Singer"],
  json_object: ['{"answer":"a famous singer"}', '{"answer":"a famous singer","extra":1}'],
  cite_title: ["A famous singer [Jack Chen]", "A famous singer [Some Other Page]"],
  end_period: ["A famous singer.", "A famous singer"],
  no_commas: ["A famous singer from China", "A famous singer, from China"],
  double_quotes: ['"a famous singer"', "a famous singer"],
  bullet_list: ["- a famous singer\n- from China", "a famous singer"],
  one_sentence: ["He is a famous singer.", "He is a singer. He is famous."],
  therefore: ["Therefore, he is a singer.", "He is a singer."],
  title_case: ["A Famous Singer", "A famous Singer"],
  no_digits: ["born in nineteen eighty", "born in 1980"],
  bold: ["He is **a famous singer**.", "He is a famous singer."],
  confidence: ["A famous singer (confidence: high)", "A famous singer"],
  answer_tags: ["<answer>a famous singer</answer>", "<answer></answer>"],
  restate_question: ["Who is Jack Chen? Answer: a famous singer", "Answer: a famous singer"],
  title_heading: ["# Jack Chen\na famous singer", "# Another Page\na famous singer"],
  no_the: ["A famous singer", "The famous singer"],
  max_50_chars: ["A famous singer", "A famous singer who released many albums that people remember today"],
  semicolon_source: ["A famous singer; Jack Chen", "A famous singer; Another Page"],
  exclamation: ["A famous singer!", "A famous singer."],
};

test("the library has at least 20 checkable instructions with unique ids, each one sentence ending in a period", () => {
  assert.ok(INSTRUCTIONS.length >= 20);
  assert.equal(new Set(INSTRUCTIONS.map((i) => i.id)).size, INSTRUCTIONS.length);
  for (const i of INSTRUCTIONS) assert.match(i.text, /\.["]?$/, i.id);
  assert.equal(INSTRUCTIONS[0]!.text, "Ensure the response is written in the past tense.");
});

test("every verifier accepts an answer that follows it and rejects one that does not", () => {
  assert.deepEqual(Object.keys(CASES).sort(), INSTRUCTIONS.map((i) => i.id).sort());
  for (const instruction of INSTRUCTIONS) {
    const [pass, fail] = CASES[instruction.id]!;
    assert.equal(instruction.verify(pass, ctx), true, `${instruction.id} should accept ${JSON.stringify(pass)}`);
    assert.equal(instruction.verify(fail, ctx), false, `${instruction.id} should reject ${JSON.stringify(fail)}`);
    const built = instruction.build(ctx);
    assert.ok(built !== null && instruction.verify(built, ctx), `${instruction.id} builds ${JSON.stringify(built)}`);
  }
  assert.equal(numberToWords(1995), "one thousand nine hundred ninety-five");
  assert.equal(numberToWords(40), "forty");
});

let samples: HotpotSample[] | undefined;
async function allSamples(): Promise<HotpotSample[]> {
  samples ??= [
    ...(await readHotpotAll(dataPath("hotpotqa", "hipporag_hotpot_train_100.json"))),
    ...(await readHotpotAll(dataPath("hotpotqa", "rpt_hf_distractor_validation_train.jsonl"))),
    ...(await readHotpotAll(dataPath("hotpotqa", "rpt_hf_distractor_validation_dev.jsonl"))),
  ];
  return samples;
}

test("on every real HotpotQA gold answer, every non-null build passes its own verifier (build returns null rather than a failing answer)", async () => {
  let built = 0;
  for (const sample of await allSamples()) {
    const c = instructionContext(sample);
    for (const instruction of INSTRUCTIONS) {
      const answer = instruction.build(c);
      if (answer === null) continue;
      built++;
      assert.ok(instruction.verify(answer, c), `${instruction.id}: ${JSON.stringify(answer)}`);
    }
  }
  assert.ok(built > 600 * 20);
});

test("stage 2: every target passes its verifier, every mark is <fulfilled>, slots and seed as documented", async () => {
  const all = await allSamples();
  const { rows, skipped } = buildStage2(all, { seed: 42, limit: 600 });
  assert.equal(rows.length, 600);
  assert.equal(skipped, 0);
  const byId = new Map(all.map((s) => [s.id, s]));
  for (const row of rows) {
    const instruction = INSTRUCTIONS.find((i) => i.id === row.instruction_id)!;
    const c = instructionContext(byId.get(row.source_id)!);
    assert.ok(instruction.verify(row.answer, c), `${row.instruction_id}: ${row.answer}`);
    assert.equal(row.output, `${row.answer}\n${formatChecking(row.checks)}`);
    assert.ok(row.checks.every((m) => m.fulfilled));
    assert.ok(row.output.includes("CHECKING:\nQuestion Answering Task: You need to do the Task Prompt for the following query and context.<fulfilled>\n" + instruction.text + "<fulfilled>"));
    const sample = byId.get(row.source_id)!;
    assert.equal(row.instruction, taskPromptPrompt(sample.context.map(([, s]) => s.join("")).join("\n"), sample.question, instruction.text, row.slot));
  }
  // Every slot and most instructions are drawn; the draw is a function of the seed.
  assert.equal(new Set(rows.map((r) => r.slot)).size, 5);
  assert.ok(new Set(rows.map((r) => r.instruction_id)).size >= 20);
  assert.deepEqual(buildStage2(all, { seed: 42, limit: 50 }).rows, rows.slice(0, 50));
  assert.notDeepEqual(buildStage2(all, { seed: 43, limit: 50 }).rows.map((r) => r.instruction_id), rows.slice(0, 50).map((r) => r.instruction_id));
});

test("stage 2 with revise shows the failing draft marked <not fulfilled>, then the corrected ANSWER and CHECKING", async () => {
  const { rows } = buildStage2(await allSamples(), { seed: 1, limit: 100, revise: true });
  const revised = rows.filter((r) => r.revised);
  assert.ok(revised.length > 20);
  for (const r of revised) {
    const [draft, fixed] = r.output.split("\nANSWER: ");
    assert.match(draft!, /<not fulfilled>$/);
    assert.equal(draft!.split("\n")[0], r.gold_answer.trim());
    assert.ok(fixed!.startsWith(r.answer + "\nCHECKING:\n"));
    assert.ok(fixed!.endsWith(r.instruction_text + "<fulfilled>"));
  }
});
