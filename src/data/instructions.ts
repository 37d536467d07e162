/**
 * The causal-instruction library for stage 2. The seed's list (an xlsx sheet) is not public; its
 * one known example is "Ensure the response is written in the past tense." Each instruction here
 * is one sentence that code can check: `verify` decides whether an answer follows it, and `build`
 * turns a gold answer into an answer that does (or returns null when that gold answer cannot be
 * made to follow it without changing what it says; a built answer always passes `verify`). Texts end with a period and no trailing
 * space, so in slots 1-3 of TASK_PROMPT the next sentence is glued on, as in the seed.
 */

export interface InstructionContext {
  question: string;
  /** The gold answer. */
  gold: string;
  /** Titles of the supporting passages (any of them counts as a correct citation). */
  titles: string[];
}

export interface CausalInstruction {
  id: string;
  text: string;
  verify(answer: string, ctx: InstructionContext): boolean;
  build(ctx: InstructionContext): string | null;
}

const words = (text: string): string[] => text.trim().split(/\s+/).filter((w) => w !== "");
const hasLetter = (text: string): boolean => /\p{L}/u.test(text);
/** The gold answer without a trailing period, so templates can add their own punctuation. */
const bare = (gold: string): string => gold.trim().replace(/[.]+$/, "");
const firstTitle = (ctx: InstructionContext): string | null => ctx.titles[0] ?? null;

const ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
const TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/** English words for 0..999999 (enough for years, counts and ages in HotpotQA answers). */
export function numberToWords(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 999_999) throw new RangeError(`numberToWords: ${n}`);
  if (n < 20) return ONES[n]!;
  if (n < 100) return TENS[Math.floor(n / 10)]! + (n % 10 ? `-${ONES[n % 10]}` : "");
  if (n < 1000) return `${ONES[Math.floor(n / 100)]} hundred` + (n % 100 ? ` ${numberToWords(n % 100)}` : "");
  return `${numberToWords(Math.floor(n / 1000))} thousand` + (n % 1000 ? ` ${numberToWords(n % 1000)}` : "");
}

const PAST = /\b(was|were|had|did)\b/i;
const PRESENT = /\b(is|are|am|has|have|does|do|isn't|aren't|doesn't|don't)\b/i;

/** Makes `build` keep its promise: it returns an answer only when that answer passes `verify`. */
const checked = (instruction: CausalInstruction): CausalInstruction => ({
  ...instruction,
  build: (ctx) => {
    const answer = instruction.build(ctx);
    return answer !== null && instruction.verify(answer, ctx) ? answer : null;
  },
});

export const INSTRUCTIONS: readonly CausalInstruction[] = ([
  {
    id: "past_tense",
    text: "Ensure the response is written in the past tense.",
    verify: (a) => PAST.test(a) && !PRESENT.test(a),
    build: (c) => `The answer was ${bare(c.gold)}.`,
  },
  {
    id: "max_10_words",
    text: "Answer in no more than ten words.",
    verify: (a) => words(a).length >= 1 && words(a).length <= 10,
    build: (c) => (words(c.gold).length <= 10 ? c.gold.trim() : null),
  },
  {
    id: "min_15_words",
    text: "Answer in a complete sentence of at least fifteen words.",
    verify: (a) => words(a).length >= 15,
    build: (c) => `According to the passages given in the contexts above, the answer to the question "${c.question.trim()}" is ${bare(c.gold)}.`,
  },
  {
    id: "prefix_answer",
    text: 'Begin your answer with "Answer:".',
    verify: (a) => a.startsWith("Answer:") && a.slice(7).trim() !== "",
    build: (c) => `Answer: ${c.gold.trim()}`,
  },
  {
    id: "suffix_end",
    text: 'End your answer with the words "End of answer."',
    verify: (a) => a.trimEnd().endsWith("End of answer.") && a.trimEnd().length > "End of answer.".length,
    build: (c) => `${bare(c.gold)}. End of answer.`,
  },
  {
    id: "lowercase",
    text: "Write your whole answer in lowercase letters.",
    verify: (a) => hasLetter(a) && a === a.toLowerCase(),
    build: (c) => `the answer is ${bare(c.gold).toLowerCase()}.`,
  },
  {
    id: "uppercase",
    text: "Write your whole answer in capital letters.",
    verify: (a) => hasLetter(a) && a === a.toUpperCase(),
    build: (c) => `THE ANSWER IS ${bare(c.gold).toUpperCase()}.`,
  },
  {
    id: "json_object",
    text: 'Reply with a JSON object whose only key is "answer".',
    verify: (a) => {
      try {
        const v = JSON.parse(a) as unknown;
        return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).join() === "answer" && typeof (v as { answer: unknown }).answer === "string";
      } catch {
        return false;
      }
    },
    build: (c) => JSON.stringify({ answer: c.gold.trim() }),
  },
  {
    id: "cite_title",
    text: "Cite the title of the passage that supports your answer in square brackets at the end.",
    verify: (a, c) => {
      const m = /\[([^\]]+)\]\s*$/.exec(a);
      return m !== null && c.titles.includes(m[1]!) && a.slice(0, m.index).trim() !== "";
    },
    build: (c) => (firstTitle(c) === null || firstTitle(c)!.includes("]") ? null : `${c.gold.trim()} [${firstTitle(c)}]`),
  },
  {
    id: "end_period",
    text: "End your answer with a period.",
    verify: (a) => a.trimEnd().endsWith(".") && hasLetterOrDigit(a),
    build: (c) => `${bare(c.gold)}.`,
  },
  {
    id: "no_commas",
    text: "Do not use any commas in your answer.",
    verify: (a) => !a.includes(",") && a.trim() !== "",
    build: (c) => c.gold.replace(/\s*,\s*/g, " ").trim() || null,
  },
  {
    id: "double_quotes",
    text: "Put your answer in double quotation marks.",
    verify: (a) => /^"[^"]+"$/.test(a.trim()),
    build: (c) => `"${c.gold.trim()}"`,
  },
  {
    id: "bullet_list",
    text: 'Format your answer as a bulleted list in which every line starts with "- ".',
    verify: (a) => {
      const lines = a.trim().split("\n");
      return lines.length >= 1 && lines.every((l) => l.startsWith("- ") && l.slice(2).trim() !== "");
    },
    build: (c) => `- ${c.gold.trim()}`,
  },
  {
    id: "one_sentence",
    text: "Answer in exactly one sentence.",
    verify: (a) => /[.!?]$/.test(a.trim()) && !/[.!?]\s+\p{Lu}/u.test(a.trim()) && hasLetter(a),
    build: (c) => `The answer is ${bare(c.gold)}.`,
  },
  {
    id: "therefore",
    text: 'Use the word "therefore" in your answer.',
    verify: (a) => /\btherefore\b/i.test(a),
    build: (c) => `Therefore, the answer is ${bare(c.gold)}.`,
  },
  {
    id: "title_case",
    text: "Capitalize the first letter of every word in your answer.",
    verify: (a) => words(a).length > 0 && words(a).every((w) => [...w][0]!.toUpperCase() === [...w][0]),
    build: (c) => words(c.gold).map((w) => { const [first, ...rest] = [...w]; return first!.toUpperCase() + rest.join(""); }).join(" ") || null,
  },
  {
    id: "no_digits",
    text: "Do not use any digits in your answer; write numbers out in words.",
    verify: (a) => !/\d/.test(a) && a.trim() !== "",
    build: (c) => {
      // Only plain whole numbers are spelled out; "3.5" or "1,000" would need judgement.
      if (/\d[.,]\d/.test(c.gold)) return null;
      const out = c.gold.trim().replace(/\d+/g, (d) => (Number(d) <= 999_999 ? numberToWords(Number(d)) : d));
      return /\d/.test(out) || out === "" ? null : out;
    },
  },
  {
    id: "bold",
    text: "Highlight the answer in bold with Markdown double asterisks.",
    verify: (a) => /\*\*[^*\n]*\S[^*\n]*\*\*/.test(a),
    build: (c) => (c.gold.includes("*") ? null : `**${c.gold.trim()}**`),
  },
  {
    id: "confidence",
    text: 'End your answer with your confidence in parentheses, for example "(confidence: high)".',
    verify: (a) => /\S.*\(confidence: (high|medium|low)\)\s*$/is.test(a),
    build: (c) => `${c.gold.trim()} (confidence: high)`,
  },
  {
    id: "answer_tags",
    text: "Wrap your answer in <answer> and </answer> tags.",
    verify: (a) => /^<answer>(?!<\/answer>)[\s\S]*\S[\s\S]*<\/answer>$/.test(a.trim()) && !/<answer>\s*<\/answer>/.test(a),
    build: (c) => `<answer>${c.gold.trim()}</answer>`,
  },
  {
    id: "restate_question",
    text: 'Repeat the question first, then give the answer after "Answer:".',
    verify: (a, c) => a.trim().startsWith(c.question.trim()) && /Answer:\s*\S/.test(a.slice(c.question.trim().length)),
    build: (c) => `${c.question.trim()} Answer: ${c.gold.trim()}`,
  },
  {
    id: "title_heading",
    text: 'Start with a Markdown heading "# " naming the supporting passage, then give the answer on the next line.',
    verify: (a, c) => {
      const [head, ...rest] = a.trim().split("\n");
      return head !== undefined && head.startsWith("# ") && c.titles.includes(head.slice(2).trim()) && rest.join("\n").trim() !== "";
    },
    build: (c) => (firstTitle(c) === null ? null : `# ${firstTitle(c)}\n${c.gold.trim()}`),
  },
  {
    id: "no_the",
    text: 'Do not use the word "the" in your answer.',
    verify: (a) => !/\bthe\b/i.test(a) && a.trim() !== "",
    build: (c) => (/\bthe\b/i.test(c.gold) ? null : c.gold.trim()),
  },
  {
    id: "max_50_chars",
    text: "Keep your answer shorter than 50 characters.",
    verify: (a) => a.trim().length > 0 && [...a.trim()].length < 50,
    build: (c) => ([...c.gold.trim()].length < 50 ? c.gold.trim() : null),
  },
  {
    id: "semicolon_source",
    text: "Give the answer, then a semicolon, then the title of the supporting passage.",
    verify: (a, c) => c.titles.some((t) => a.trimEnd().endsWith(`; ${t}`) && a.trimEnd().length > t.length + 2 && a.trim() !== `; ${t}`),
    build: (c) => (firstTitle(c) === null ? null : `${c.gold.trim()}; ${firstTitle(c)}`),
  },
  {
    id: "exclamation",
    text: "End your answer with an exclamation mark.",
    verify: (a) => a.trimEnd().endsWith("!") && hasLetterOrDigit(a),
    build: (c) => `${bare(c.gold)}!`,
  },
] satisfies CausalInstruction[]).map(checked);

function hasLetterOrDigit(text: string): boolean {
  return /[\p{L}\p{N}]/u.test(text);
}

export const instructionById = (id: string): CausalInstruction => {
  const found = INSTRUCTIONS.find((i) => i.id === id);
  if (!found) throw new RangeError(`no causal instruction ${JSON.stringify(id)}`);
  return found;
};
