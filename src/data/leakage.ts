/**
 * Leakage checks: does any held-out (context, question) show up in a training text? Training texts
 * are whatever a trainer sees (stage-1 and stage-2 instructions, the reader's prompts); they embed
 * the context as a whole field, on its own line(s), possibly after a label ("CONTEXT: ...").
 *
 * A held-out context OCCURS in a text when its first line equals a whole line of the text (trimmed,
 * with or without a leading "LABEL:" such as "CONTEXT:"), and the whole context follows from there
 * up to the end of a line. A context that is only part of a longer passage does not count: bAbI
 * stories share statements by chance (a validation story's first two statements are the middle of
 * some train story in 120 of task 1's 1168 held-out pairs), which is not the item being seen.
 * With `by: "pair"` (the default) the question must also occur in the same text; `by: "context"`
 * flags the context alone (SQuAD and ASQA passages, which should never repeat).
 */

export interface HeldOutItem {
  context: string;
  question: string;
}

export interface Leak {
  /** Index of the held-out item. */
  item: number;
  /** Index of the training text it was found in. */
  text: number;
  context: string;
  question: string;
}

const LABEL = /^[A-Z][A-Za-z ]{0,40}:[ \t]*/;

const lineKeys = (line: string): string[] => {
  const trimmed = line.trim();
  const unlabelled = trimmed.replace(LABEL, "").trim();
  return unlabelled === trimmed ? [trimmed] : [trimmed, unlabelled];
};

/** Whether `context` occurs in `text` starting at a line whose key is the context's first line, and ending at a line end. */
function occursWhole(text: string, context: string): boolean {
  const c = context.trim();
  for (let at = text.indexOf(c); at >= 0; at = text.indexOf(c, at + 1)) {
    const after = text.slice(at + c.length).match(/^[ \t]*(\n|$)/);
    const lineStart = text.lastIndexOf("\n", at - 1) + 1;
    const before = text.slice(lineStart, at);
    if (after && (before.trim() === "" || LABEL.test(before.trimStart()) && before.trimStart().replace(LABEL, "").trim() === "")) return true;
  }
  return false;
}

/** Every (held-out item, training text) pair where the item occurs (see the file's comment). */
export function findLeaks(trainTexts: Iterable<string>, heldOut: readonly HeldOutItem[], opts: { by?: "pair" | "context"; max?: number } = {}): Leak[] {
  const by = opts.by ?? "pair";
  const max = opts.max ?? Infinity;
  const byFirstLine = new Map<string, number[]>();
  heldOut.forEach((h, i) => {
    const first = h.context.trim().split("\n")[0]!.trim();
    if (first === "") return;
    const list = byFirstLine.get(first) ?? [];
    list.push(i);
    byFirstLine.set(first, list);
  });
  const leaks: Leak[] = [];
  let t = -1;
  for (const text of trainTexts) {
    t++;
    const seen = new Set<number>();
    for (const line of text.split("\n")) {
      for (const key of lineKeys(line)) {
        for (const i of byFirstLine.get(key) ?? []) {
          if (seen.has(i)) continue;
          seen.add(i);
          const h = heldOut[i]!;
          if ((by === "context" || text.includes(h.question)) && occursWhole(text, h.context)) {
            leaks.push({ item: i, text: t, context: h.context, question: h.question });
            if (leaks.length >= max) return leaks;
          }
        }
      }
    }
  }
  return leaks;
}

/** Throws when any held-out item occurs in a training text, naming the first few. */
export function assertNoLeakage(trainTexts: Iterable<string>, heldOut: readonly HeldOutItem[], opts: { by?: "pair" | "context" } = {}): void {
  const leaks = findLeaks(trainTexts, heldOut, opts);
  if (leaks.length === 0) return;
  const shown = leaks.slice(0, 3).map((l) => `held-out item ${l.item} (question ${JSON.stringify(l.question)}, context ${JSON.stringify(l.context.slice(0, 80))}) in training text ${l.text}`);
  throw new Error(`leakage: ${leaks.length} held-out ${opts.by === "context" ? "context" : "(context, question) pair"} occurrence(s) in the training texts; ${shown.join("; ")}`);
}
