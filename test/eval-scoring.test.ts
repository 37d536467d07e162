import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  goldAnswers,
  harmonicMean,
  isKnownCorrect,
  isRefusal,
  knownOutcome,
  NEG_WORDS_2024_04,
  NEG_WORDS_2024_08,
  normalizeAnswer,
  seedParseGold,
  refusalConfusion,
} from "../src/eval/scoring.ts";
import { parsePythonList, pyFixed, pySplit, pyStrip, pythonListRepr } from "../src/eval/python.ts";
import { readCognitionReply, scoreCognitionCheck, scoreSamplingRow, scoreValidationRow, validationQuestion, cognitionCheckIndices } from "../src/eval/baselines.ts";
import { rescoreAuthorsRecords, scoreFiles } from "../src/eval/score.ts";
import { parseCsv } from "../src/eval/authors.ts";
import { accuracyBootstrap } from "../src/eval/bootstrap.ts";
import { runKtu } from "./helpers/cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "ktu-eval-scoring-"));
const lines = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

test("refusal word lists are the seed's 12 and 20", () => {
  assert.equal(NEG_WORDS_2024_04.length, 12);
  assert.equal(NEG_WORDS_2024_08.length, 20);
  assert.deepEqual(NEG_WORDS_2024_08.slice(0, 12), NEG_WORDS_2024_04);
});

test("the seed's list-repr parse: a comma inside an answer cuts it and eats one character per side", () => {
  // 'Paris, France' -> "'Paris" and " France'" -> strip()[1:-1] -> "Pari" and "rance".
  assert.deepEqual(seedParseGold("['Paris, France', 'Lyon']"), ["pari", "rance", "lyon"]);
  // A two-character piece becomes "", which the seed then finds in every prediction.
  assert.deepEqual(seedParseGold("['a, b']"), ["", ""]);
  assert.equal(isKnownCorrect("anything at all", goldAnswers(["a, b"], "2024-04"), "2024-04"), true);
  // A list is scored through the repr the authors stored, so the quirk applies to our JSONL too.
  assert.deepEqual(goldAnswers(["Paris, France", "Lyon"], "2024-04"), ["pari", "rance", "lyon"]);
  // strict parses the literal properly.
  assert.deepEqual(goldAnswers("['Paris, France', \"O'Neil\"]", "strict"), ["Paris, France", "O'Neil"]);
});

test("word expansion (2024-08) lets 'the' match; 2024-04 and strict do not", () => {
  const gold = ["The Beatles"];
  assert.equal(isKnownCorrect("I think the answer is unknown", goldAnswers(gold, "2024-08"), "2024-08"), true);
  assert.equal(isKnownCorrect("I think the answer is unknown", goldAnswers(gold, "2024-04"), "2024-04"), false);
  assert.equal(isKnownCorrect("I think the answer is unknown", goldAnswers(gold, "strict"), "strict"), false);
  assert.equal(isKnownCorrect("It was the Beatles.", goldAnswers(gold, "strict"), "strict"), true);
  // Substring vs whole-token span: "1998" inside "19985" counts for the seed, not for strict.
  assert.equal(isKnownCorrect("In 19985.", goldAnswers(["1998"], "2024-04"), "2024-04"), true);
  assert.equal(isKnownCorrect("In 19985.", goldAnswers(["1998"], "strict"), "strict"), false);
  assert.equal(normalizeAnswer("The  U.S. Army, an army!"), "us army army");
});

test("the empty answer is a refusal only in 2024-08 and strict", () => {
  assert.equal(isRefusal("   \n", "2024-08"), true);
  assert.equal(isRefusal("   \n", "2024-04"), false);
  assert.equal(isRefusal("", "strict"), true);
  assert.equal(isRefusal("I don't know.", "2024-08"), true);
  assert.equal(isRefusal("I don't know.", "2024-04"), false);
  assert.equal(isRefusal("The context is INSUFFICIENT.", "2024-04"), true);
});

test("refusal detection: the seed's keyword rules on typical refusals, and what they miss", () => {
  const examples = [
    { text: "Not Provided", refusal: true },
    { text: "The context does not mention when he died.", refusal: true },
    { text: "I'm sorry, but the passage doesn't provide that information.", refusal: true },
    { text: "I apologize, but I cannot answer this question.", refusal: true },
    { text: "I don't know.", refusal: true },
    { text: "I'm not sure.", refusal: true },
    { text: "I cannot answer that from the given context.", refusal: true },
    { text: "", refusal: true },
    { text: "He was not born in Paris but in Lyon.", refusal: false },
    { text: "Not until 1998.", refusal: false },
    { text: "The treaty was not given to the king; it was signed in 1648.", refusal: false },
    { text: "Marie Curie.", refusal: false },
  ];
  const newest = refusalConfusion(examples, "2024-08");
  assert.deepEqual([newest.true_positive, newest.false_negative, newest.false_positive, newest.true_negative], [6, 2, 1, 3]);
  assert.deepEqual(newest.missed, ["I'm not sure.", "I cannot answer that from the given context."]);
  assert.deepEqual(newest.false_alarms, ["The treaty was not given to the king; it was signed in 1648."]);
  const first = refusalConfusion(examples, "2024-04");
  // 2024-04 has no "apologize" / "'t know" and no empty-answer rule.
  assert.deepEqual(first.missed, ["I apologize, but I cannot answer this question.", "I don't know.", "I'm not sure.", "I cannot answer that from the given context.", ""]);
});

test("record_analyzer breakdown: correct, refused (keyword), wrong", () => {
  assert.equal(knownOutcome("Paris", true), "correct");
  assert.equal(knownOutcome("This is not mentioned in the context", false), "refused");
  assert.equal(knownOutcome("London", false), "wrong");
  assert.equal(knownOutcome("", false, "2024-08"), "wrong");
});

test("temp.py: the overall column is the harmonic mean of known and unknown accuracy, to one decimal", () => {
  // [label, F1 (overall), known, unknown] from the authors' temp.py (paper.md 4.2).
  const rows: [string, number, number, number][] = [
    ["GPT-4", 81.6, 79.6, 83.6],
    ["LLaMA2", 67.2, 79.3, 58.3],
    ["Cognition", 64.6, 52.4, 84.4],
    ["HotpotQA", 66.5, 77.5, 58.3],
    ["PSQA", 69.6, 84.8, 59.0],
    ["Cognition & QA", 32.8, 77.0, 20.9],
    ["Cognition & PSQA", 85.8, 79.7, 93.0],
  ];
  for (const [label, f1, known, unknown] of rows) {
    const hm = harmonicMean(known, unknown);
    assert.ok(Math.abs(hm - f1) < 0.1, `${label}: HM ${hm} vs ${f1}`);
    // The inputs were rounded to one decimal: some true accuracies within ±0.05 give the listed F1.
    const lo = harmonicMean(known - 0.05, unknown - 0.05);
    const hi = harmonicMean(known + 0.05, unknown + 0.05);
    assert.ok(lo <= f1 + 0.05 && hi >= f1 - 0.05, `${label}: [${lo}, ${hi}] misses ${f1}`);
  }
  // The arithmetic mean does not fit (LLaMA2: 68.8 vs 67.2).
  assert.ok(Math.abs((79.3 + 58.3) / 2 - 67.2) > 1);
});

test("Python list literal parser and repr round-trip", () => {
  for (const list of [["a"], ["Paris, France", "O'Neil", 'say "hi"', "both ' and \"", "tab\there", "café", "back\\slash"], []]) {
    assert.deepEqual(parsePythonList(pythonListRepr(list)), list);
  }
  assert.equal(pythonListRepr(["O'Neil", "x"]), `["O'Neil", 'x']`);
  assert.deepEqual(parsePythonList(`['caf\\xe9', u'\\u00e9', 1998]`), ["café", "é", "1998"]);
  assert.throws(() => parsePythonList("['unterminated]"), /unterminated/);
});

test("Python white space: strip() and split() as str.isspace, not JavaScript's \\s", () => {
  assert.equal(pyStrip("\x1c a b \ufeff\x85"), "a b \ufeff");
  assert.deepEqual(pySplit("a\x1fb\u3000c\ufeffd"), ["a", "b", "c\ufeffd"]);
  // An answer that is only a file separator is "empty" to the seed.
  assert.equal(isRefusal("\x1c", "2024-08"), true);
});

test("pyFixed rounds exact ties to even like Python's .2f", () => {
  assert.equal(pyFixed(12.125, 2), "12.12");
  assert.equal(pyFixed(12.375, 2), "12.38");
  assert.equal(pyFixed(2.675, 2), "2.67"); // 2.67499999... in binary
  assert.equal(pyFixed(100 * 2 / 3, 2), "66.67");
  assert.equal(pyFixed(0, 2), "0.00");
});

test("stage-1 check: every 10th row, the first label mentioned wins, skip when no label", () => {
  assert.deepEqual(cognitionCheckIndices(25), [0, 10, 20]);
  assert.equal(readCognitionReply("Sufficient"), "sufficient");
  assert.equal(readCognitionReply("<Insufficient>"), "insufficient");
  assert.equal(readCognitionReply("It is sufficient, not insufficient"), "sufficient");
  assert.equal(readCognitionReply("maybe"), "skip");
  const r = scoreCognitionCheck([
    { id: "0", pos_reply: "Sufficient", neg_reply: "Insufficient" },
    { id: "10", pos_reply: "Insufficient", neg_reply: "Sufficient" },
    { id: "20", pos_reply: "no idea", neg_reply: "Insufficient" },
  ]);
  assert.deepEqual(r, { n: 2, skipped: 1, pos_acc: 50, neg_acc: 50, pos_correct: 1, neg_correct: 1 });
});

test("sampling baseline: the seed's multi-count quirk behind seedBugs, one vote per sample by default", () => {
  // One sample naming two gold answers: the seed counts 2 >= 1.5 -> correct; fixed: 1 of 3 -> wrong.
  const samples = ["Paris or Lyon", "London", "Berlin"];
  assert.equal(scoreSamplingRow(samples, ["x", "y", "z"], ["Paris", "Lyon"], { seedBugs: true }).known_correct, true);
  assert.equal(scoreSamplingRow(samples, ["x", "y", "z"], ["Paris", "Lyon"]).known_correct, false);
  const refusals = ["Not provided, not mentioned.", "Paris", "Lyon"];
  assert.equal(scoreSamplingRow(["a", "b", "c"], refusals, ["q"], { seedBugs: true }).unknown_correct, true);
  assert.equal(scoreSamplingRow(["a", "b", "c"], refusals, ["q"]).unknown_correct, false);
});

test("self-validation baseline: the pos_query bug behind seedBugs; empty answer not a refusal in the seed", () => {
  const row = { pos_query: "known?", neg_query: "unknown?" };
  assert.equal(validationQuestion(row, "neg", true), "known?");
  assert.equal(validationQuestion(row, "neg"), "unknown?");
  assert.equal(scoreValidationRow("Paris", "", ["Paris"], { seedBugs: true }).unknown_correct, false);
  assert.equal(scoreValidationRow("Paris", "", ["Paris"]).unknown_correct, true);
});

test("scoreFiles and the authors' CSV records (comma quirk, stored verdicts)", () => {
  const bench = join(tmp, "bench.jsonl");
  const preds = join(tmp, "preds.jsonl");
  writeFileSync(bench, lines([
    { id: 0, context: "c0", pos_query: "q0", pos_answer: ["Marie Curie"], neg_query: "n0" },
    { id: 3, context: "c3", pos_query: "q3", pos_answer: ["1903"], neg_query: "n3" },
  ]));
  writeFileSync(preds, lines([
    { id: 3, pos_prediction: "In 1903.", neg_prediction: "Not provided" },
    { id: 0, pos_prediction: "Pierre", neg_prediction: "She won it." },
  ]));
  const r = scoreFiles(bench, preds, { metric: "2024-04" });
  assert.equal(r.n, 2);
  assert.equal(r.known_acc, 50);
  assert.equal(r.unknown_acc, 50);
  assert.equal(r.overall, 50);

  const csv = join(tmp, "records.csv");
  writeFileSync(csv, [
    "id,context,pos_query,pos_answer,neg_query,M_pos_answer,M_pos_answer_correctness,M_neg_answer,M_neg_answer_correctness",
    `7,"This is a passage about X:\nline, with comma",Who?,"['Smith, John']",When?,"It was John.",True,"Not provided",True`,
    `8,ctx,Who?,"['Ann']",Where?,Bob,False,"""Quoted"" answer",False`,
  ].join("\r\n"));
  assert.equal(parseCsv("a,\"b\"\"c\"\r\n1,2\n").length, 2);
  const re = rescoreAuthorsRecords(csv, "2024-08");
  assert.equal(re.model, "M");
  assert.equal(re.ours.n, 2);
  // 'Smith, John' splits into "smit" and "joh": "It was John." matches via "joh".
  assert.equal(re.ours.rows[0]!.known_correct, true);
  assert.equal(re.theirs.known_acc, 50);
  assert.equal(re.disagreements.length, 0);

  // The same records as pandas writes them: orient="records" and orient="columns".
  const records = [
    { id: "7", context: "c", pos_query: "Who?", pos_answer: "['Smith, John']", neg_query: "When?", M_pos_answer: "Bob", M_pos_answer_correctness: "True", M_neg_answer: "Not provided", M_neg_answer_correctness: "True" },
  ];
  const asRecords = join(tmp, "records.json");
  writeFileSync(asRecords, JSON.stringify(records));
  const r1 = rescoreAuthorsRecords(asRecords, "2024-08");
  assert.equal(r1.ours.rows[0]!.known_correct, false);
  assert.deepEqual(r1.disagreements, [{ id: "7", field: "known_correct", ours: false, theirs: true }]);
  const asColumns = join(tmp, "columns.json");
  writeFileSync(asColumns, JSON.stringify(Object.fromEntries(Object.entries(records[0]!).map(([k, v]) => [k, { "0": v }]))));
  assert.deepEqual(rescoreAuthorsRecords(asColumns, "2024-08").disagreements, r1.disagreements);
  const cli = runKtu(["eval", "rescore", "--records", asRecords]);
  assert.equal(cli.status, 0, cli.stderr);
  const summary = JSON.parse(cli.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual([summary.model, summary.known_acc, summary.stored_known_acc, summary.disagreements], ["M", 0, 100, 1]);
});

test("bad input: missing prediction, duplicate id, no answers, unknown id name the id and field", () => {
  const bench = join(tmp, "bad-bench.jsonl");
  writeFileSync(bench, lines([
    { id: 1, context: "c", pos_query: "q", pos_answer: ["a"], neg_query: "n" },
    { id: 2, context: "c", pos_query: "q", pos_answer: ["b"], neg_query: "n" },
  ]));
  const preds = join(tmp, "bad-preds.jsonl");
  writeFileSync(preds, lines([{ id: 1, pos_prediction: "a", neg_prediction: "" }]));
  assert.throws(() => scoreFiles(bench, preds), /id 2.*no prediction for 1 benchmark id/);
  assert.equal(scoreFiles(bench, preds, { partial: true }).missing.length, 1);
  writeFileSync(preds, lines([{ id: 1, pos_prediction: "a", neg_prediction: "" }, { id: 1, pos_prediction: "a", neg_prediction: "" }]));
  assert.throws(() => scoreFiles(bench, preds), /id 1 \(line 2\), field id: duplicate id \(first at line 1\)/);
  writeFileSync(preds, lines([{ id: 1, pos_prediction: "a" }]));
  assert.throws(() => scoreFiles(bench, preds), /field neg_prediction: missing/);
  writeFileSync(preds, lines([{ id: 9, pos_prediction: "a", neg_prediction: "" }]));
  assert.throws(() => scoreFiles(bench, preds), /id 9, field id: not in the benchmark/);
  assert.deepEqual(scoreFiles(bench, preds, { partial: true }).extra, [9]);
  writeFileSync(bench, lines([{ id: 1, context: "c", pos_query: "q", pos_answer: [], neg_query: "n" }]));
  assert.throws(() => scoreFiles(bench, preds), /id 1 \(line 1\), field pos_answer: no answers/);
});

test("accuracy intervals resample whole groups: one group gives a zero-width interval", () => {
  const rows = [true, false, true, true].map((k, i) => ({ known_correct: k, unknown_correct: i % 2 === 0 }));
  const one = accuracyBootstrap(rows, { groups: ["q", "q", "q", "q"], draws: 50 })!;
  assert.deepEqual(one.known_acc, [75, 75]);
  assert.deepEqual(one.unknown_acc, [50, 50]);
  const each = accuracyBootstrap(rows, { draws: 500, seed: 3 })!;
  assert.ok(each.known_acc[0] < 75 && each.known_acc[1] === 100);
  assert.equal(each.resample, "rows");
});

test("ktu eval score prints the summary JSON on the last line", () => {
  const bench = join(tmp, "cli-bench.jsonl");
  const preds = join(tmp, "cli-preds.jsonl");
  writeFileSync(bench, lines([
    { id: 0, context: "c", pos_query: "q", pos_answer: ["the Nile"], neg_query: "n", extra: 1 },
    { id: 1, context: "c", pos_query: "q", pos_answer: ["Amazon"], neg_query: "n" },
    { id: 2, context: "c", pos_query: "q", pos_answer: ["Danube"], neg_query: "n" },
  ]));
  writeFileSync(preds, lines([
    { id: 0, pos_prediction: "It is the longest river.", neg_prediction: "" },
    { id: 1, pos_prediction: "amazon", neg_prediction: "I don't know" },
    { id: 2, pos_prediction: "Rhine", neg_prediction: "Not provided." },
  ]));
  const run = (metric: string) => {
    const r = runKtu(["eval", "score", "--benchmark", bench, "--predictions", preds, "--metric", metric]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  };
  const newest = run("2024-08");
  assert.deepEqual([newest.n, newest.known_acc, newest.unknown_acc, newest.overall], [3, 66.67, 100, 80]);
  const first = run("2024-04");
  assert.deepEqual([first.known_acc, first.unknown_acc, first.overall], [33.33, 33.33, 33.33]);
  const strict = run("strict");
  assert.deepEqual([strict.known_acc, strict.unknown_acc], [33.33, 100]);
  const withCi = runKtu(["eval", "score", "--benchmark", bench, "--predictions", preds, "--ci", "--draws", "200"]);
  assert.equal(withCi.status, 0, withCi.stderr);
  const ci = JSON.parse(withCi.stdout.trim().split("\n").at(-1)!);
  assert.equal(ci.known_acc, 66.67);
  assert.ok(ci.known_acc_ci[0] <= 66.67 && ci.known_acc_ci[1] >= 66.67 && ci.known_acc_ci[0] >= 0 && ci.known_acc_ci[1] <= 100);
  assert.equal(ci.ci_unit, "row");
  const bad = runKtu(["eval", "score", "--benchmark", bench, "--predictions", join(tmp, "nope.jsonl")]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^ktu: .*nope\.jsonl: cannot read/);
});
