/**
 * The bAbI tasks v1.2 (Weston et al. 2015), train files as released: numbered lines, a story restarting
 * at 1, statements ending in ".", questions as `N question?\tanswer\tsupporting ids`. Shipped gzipped in
 * data/babi (the 10k set, and the 1k file of task 3, whose 10k file is missing; data/babi/PROVENANCE.md).
 *
 * The official test files are withheld, so the validation side is our own split of each train file, by
 * story (`isBabiValidationStory`): the reader, the stage sets and every benchmark agree on it.
 */
import { existsSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { InputError } from "../util/errors.ts";
import { dataPath } from "../util/paths.ts";
import { readTextMaybeGzipSync } from "./text-input.ts";

export interface BabiQuestion {
  /** Task number, 1-20 (from the file name; 0 when the name does not say). */
  task: number;
  /** Story index in its file, from 0. */
  story: number;
  /** 1-based line of the question in its file. */
  line: number;
  /** The story's statements before the question, in order (earlier questions left out). */
  statements: string[];
  question: string;
  /** The answer as released (lists as "a,b"). */
  answer: string;
  /** The supporting statements' ids within the story (1-based, as in the file). */
  supporting: number[];
}

/** "qa1_single-supporting-fact_train.txt(.gz)" -> 1. */
export const babiTaskOfFile = (file: string): number => Number(/qa(\d+)_/.exec(basename(file))?.[1] ?? 0);

/** The validation side of a train file: every tenth story (0, 10, 20, ...); the rest is the train side. */
export const isBabiValidationStory = (story: number): boolean => story % 10 === 0;

/** The context string a benchmark row and a reader's prompt show: statements joined by one space. */
export const babiContext = (q: Pick<BabiQuestion, "statements">): string => q.statements.join(" ");

/** Parses one bAbI file's text; errors name the file, the line and the field. */
export function parseBabi(text: string, file: string): BabiQuestion[] {
  const task = babiTaskOfFile(file);
  const out: BabiQuestion[] = [];
  let story = -1;
  let statements: { id: number; text: string }[] = [];
  let lastId = 0;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, "");
    if (!raw.trim()) continue;
    const m = /^(\d+) (.*)$/.exec(raw);
    if (!m) throw new InputError(file, i + 1, "id", `expected "N text", got ${JSON.stringify(raw.slice(0, 60))}`);
    const id = Number(m[1]);
    if (id === 1) {
      story++;
      statements = [];
    } else if (story < 0 || id !== lastId + 1) throw new InputError(file, i + 1, "id", `line id ${id} does not follow ${lastId}`);
    lastId = id;
    const parts = m[2]!.split("\t");
    if (parts.length === 1) {
      statements.push({ id, text: parts[0]!.trim() });
      continue;
    }
    if (parts.length !== 3) throw new InputError(file, i + 1, "question", `a question line has question, answer and supporting ids separated by tabs; got ${parts.length} fields`);
    const [question, answer, support] = parts.map((p) => p.trim()) as [string, string, string];
    if (!question.endsWith("?")) throw new InputError(file, i + 1, "question", `does not end in "?": ${JSON.stringify(question)}`);
    if (!answer) throw new InputError(file, i + 1, "answer", "empty");
    const supporting = support.split(/\s+/).filter(Boolean).map(Number);
    if (supporting.some((s) => !Number.isInteger(s) || !statements.some((st) => st.id === s))) throw new InputError(file, i + 1, "supporting", `ids ${JSON.stringify(support)} are not statements of this story`);
    out.push({ task, story, line: i + 1, statements: statements.map((s) => s.text), question, answer, supporting });
  }
  return out;
}

/** Reads a bAbI file, plain or gzipped. */
export function readBabi(file: string): BabiQuestion[] {
  return parseBabi(readTextMaybeGzipSync(file), file);
}

/** The shipped train file of a task: the 10k set where present, else the 1k set (task 3). */
export function babiTrainFile(task: number): string {
  for (const set of ["en-10k", "en"]) {
    const dir = dataPath("babi", set);
    const name = existsSync(dir) ? readdirSync(dir).find((f) => babiTaskOfFile(f) === task && /_train\.txt(\.gz)?$/.test(f)) : undefined;
    if (name) return join(dir, name);
  }
  throw new InputError(dataPath("babi"), undefined, `task ${task}`, "no train file shipped for this task (tasks 1-20)");
}

/** Every task's questions, split into train and validation sides by story. */
export function readBabiSplit(task: number, file = babiTrainFile(task)): { train: BabiQuestion[]; validation: BabiQuestion[] } {
  const all = readBabi(file);
  return { train: all.filter((q) => !isBabiValidationStory(q.story)), validation: all.filter((q) => isBabiValidationStory(q.story)) };
}
