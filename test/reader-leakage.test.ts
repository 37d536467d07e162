/**
 * Issue 20, part 6, for the reader: no held-out (validation) passage and question of bAbI or SQuAD
 * appears among the rows the reader recipe trains on (recipes/reader/train.ts draws them from
 * loadReadingData: the train sides, plus every person of a task-1 passage asked by babiAllPersonsTask).
 * Without babiAllPersonsTask's held-out filter, 9 of task 1's 584 validation known pairs were among its
 * rows (two-statement passages repeat by chance), which is what this test caught.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { findLeaks, type HeldOutItem } from "../src/data/leakage.ts";
import { babiBenchmarkSides, squadBenchmarkSides } from "../src/data/sources.ts";
import { renderTemplate } from "../src/model/prompt-format.ts";
import { Rng } from "../src/util/rng.ts";
import { babiItem, loadReadingData } from "../recipes/reader/common.ts";
import { CONTEXT_FIRST_QA } from "../recipes/reader/config.ts";
import { babiAllPersonsTask } from "../recipes/reader/tasks.ts";

test("the reader's training rows hold no held-out bAbI (tasks 1, 2) or SQuAD passage-and-question pair", () => {
  const reading = loadReadingData();
  const prompt = (question: string, context: string): string => renderTemplate(CONTEXT_FIRST_QA, { question, context });
  const texts: string[] = [];
  for (const task of [1, 2]) for (const q of reading.babiTrain.get(task)!) texts.push(prompt(q.question, babiItem(q).context));
  // Every person of every task-1 train passage, as the mbabi1 rows ask them (bind rows: last mentions).
  for (const q of reading.babiTrain.get(1)!) {
    for (const lastMentionsOnly of [false, true]) {
      const rows = babiAllPersonsTask(new Rng(1), [q], lastMentionsOnly, Infinity, reading.isBabiHeldOut);
      for (const turn of rows?.qa ?? []) texts.push(prompt(turn.question, rows!.context));
    }
  }
  for (const q of reading.squadTrain) texts.push(prompt(q.question, q.context));
  const heldOut: HeldOutItem[] = [];
  for (const task of [1, 2]) for (const r of babiBenchmarkSides({ task }).validation.rows) heldOut.push({ context: r.context, question: r.pos_query }, { context: r.context, question: r.neg_query });
  for (const r of squadBenchmarkSides().validation.rows) heldOut.push({ context: r.context, question: r.pos_query });
  assert.ok(heldOut.length > 2000 && texts.length > 20_000, `${heldOut.length} held-out pairs, ${texts.length} training rows`);
  const leaks = findLeaks(texts, heldOut, { max: 5 });
  assert.deepEqual(leaks.map((l) => `${l.question} | ${l.context.slice(0, 80)}`), []);
});
