import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  babiAnswerForms,
  babiBenchmark,
  babiBenchmarkSides,
  babiBenchmarkWithCounts,
  babiQuestionEntity,
  BABI_BENCHMARK_TASKS,
  babiContext,
  InputError,
  babiMentions,
  parseBabi,
  parseBenchmarkJsonl,
  parseSquad,
  readBabiSplit,
  readSquadSplit,
  squadBenchmark,
  squadBenchmarkSides,
  squadBenchmarkWithCounts,
  type SquadArticle,
} from "../src/index.ts";
import { runKtu } from "./helpers/cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "ktu-babi-squad-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const jsonl = (file: string): Record<string, unknown>[] => readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

const BABI = `1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel? \thallway\t4
1 Sandra travelled to the office.
2 Bill went to the garden.
3 Where is Sandra? \toffice\t1
`;

test("parseBabi errors name the file, the line and the field", () => {
  const bad = (text: string, line: number, field: string): void => {
    assert.throws(
      () => parseBabi(text, "qa1_x_train.txt"),
      (e: unknown) => e instanceof InputError && e.file === "qa1_x_train.txt" && e.record === line && e.field === field && e.message.startsWith(`qa1_x_train.txt, line ${line}, field ${field}: `),
    );
  };
  bad("1 Mary moved.\nno id here\n", 2, "id");
  bad("1 Mary moved.\n3 John went.\n", 2, "id");
  bad("1 Mary moved.\n2 Where is Mary?\tbathroom\n", 2, "question");
  bad("1 Mary moved.\n2 Where is Mary\tbathroom\t1\n", 2, "question");
  bad("1 Mary moved.\n2 Where is Mary?\t\t1\n", 2, "answer");
  bad("1 Mary moved.\n2 Where is Mary?\tbathroom\t7\n", 2, "supporting");
  const qs = parseBabi(BABI, "qa1_x_train.txt");
  assert.equal(qs.length, 3);
  assert.deepEqual(qs[1]!.statements, ["Mary moved to the bathroom.", "John went to the hallway.", "Daniel went back to the hallway."]);
  assert.equal(qs[2]!.story, 1);
});

test("parseSquad: an answer_start that does not point at the answer names the record and the field", () => {
  const doc = { data: [{ title: "T", paragraphs: [{ context: "Paris is in France.", qas: [{ id: "q1", question: "Where is Paris?", answers: [{ text: "France", answer_start: 3 }] }] }] }] };
  assert.throws(
    () => parseSquad(JSON.stringify(doc), "dev.json"),
    (e: unknown) => e instanceof InputError && e.file === "dev.json" && e.field === "answer_start" && /data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\] \(id q1\)/.test(String(e.record)),
  );
  doc.data[0]!.paragraphs[0]!.qas[0]!.answers[0]!.answer_start = 12;
  assert.equal(parseSquad(JSON.stringify(doc), "dev.json")[0]!.paragraphs[0]!.qas[0]!.answers[0]!.text, "France");
});

test("bAbI entities: one per question pattern of every task, the first person or 'the X' object", () => {
  assert.deepEqual(BABI_BENCHMARK_TASKS, Array.from({ length: 20 }, (_, i) => i + 1));
  const cases: [number, string, string, string][] = [
    [1, "Where is Mary?", "Mary", "Where is {X}?"],
    [2, "Where is the milk?", "the milk", "Where is {X}?"],
    [3, "Where was the milk before the garden?", "the milk", "Where was {X} before the garden?"],
    [4, "What is the garden north of?", "the garden", "What is {X} north of?"],
    [5, "Who did Fred give the apple to?", "Fred", "Who did {X} give the apple to?"],
    [5, "Who gave the football to Fred?", "the football", "Who gave {X} to Fred?"],
    [6, "Is Fred in the office?", "Fred", "Is {X} in the office?"],
    [15, "What is gertrude afraid of?", "gertrude", "What is {X} afraid of?"],
    [17, "Is the red square to the right of the triangle?", "the red square", "Is {X} to the right of the triangle?"],
    [17, "Is the triangle below the red sphere?", "the triangle", "Is {X} below the red sphere?"],
    [18, "Does the box of chocolates fit in the box?", "the box of chocolates", "Does {X} fit in the box?"],
    [20, "Why did yann get the football?", "yann", "Why did {X} get the football?"],
  ];
  for (const [task, q, text, pattern] of cases) {
    const e = babiQuestionEntity(q, task);
    assert.equal(e?.text, text, q);
    assert.equal(e?.pattern, pattern, q);
  }
  assert.equal(babiQuestionEntity("Where is Mary?", 2), undefined);
  assert.ok(babiMentions("The box of chocolates fits.", "the box"));
  assert.ok(!babiMentions("Mary went to the bathroom.", "the bath"));
  assert.ok(babiMentions("gertrude is a mouse.", "Gertrude"));
});

test("bAbI list answers keep the released string and add natural forms", () => {
  assert.deepEqual(babiAnswerForms("office", 1), ["office"]);
  assert.deepEqual(babiAnswerForms("apple,football", 8), ["apple,football", "apple, football", "apple and football"]);
  assert.deepEqual(babiAnswerForms("n,e", 19), ["n,e", "n, e", "n and e", "north, east", "north and east"]);
});

test("babiBenchmark on a small story: rows, skips, and a substitute never in the context", () => {
  const qs = parseBabi(BABI, "qa1_x_train.txt");
  const r = babiBenchmarkWithCounts(qs, { seed: 1 });
  // Entities of the task: Daniel, Mary, Sandra. Story 0 mentions Mary, John, Daniel: Sandra is the only substitute.
  assert.equal(r.rows[0]!.neg_query, "Where is Sandra?");
  assert.equal(r.rows[0]!.context, "Mary moved to the bathroom. John went to the hallway.");
  assert.equal(r.rows[0]!.sample_id, "babi-qa1-story0");
  assert.equal(r.rows[0]!.ambiguous_question, "Where is {X}?");
  assert.deepEqual(r.rows[0]!.neg_answer, []);
  assert.equal(r.rows[0]!.pos_wikipage, null);
  assert.equal(r.rows[0]!.neg_context, "");
  assert.equal(r.rows.length, 3);
  // With "Mary" and "Sandra" the only entities asked about, story 0's second question has no substitute.
  const only = babiBenchmarkWithCounts(qs.filter((q) => q.question !== "Where is Daniel?"), { seed: 1 });
  assert.equal(only.counts.skippedNoSubstitute, 0);
  const withSandra = { ...qs[0]!, statements: [...qs[0]!.statements, "Sandra is here."] };
  const none = babiBenchmarkWithCounts([withSandra, { ...withSandra, question: "Where is Sandra?" }], {});
  assert.equal(none.counts.skippedNoSubstitute, 2);
  const noEntity = babiBenchmarkWithCounts([{ ...qs[0]!, question: "Why is the sky blue?" }]);
  assert.equal(noEntity.counts.skippedNoEntity, 1);
  const excluded = babiBenchmarkWithCounts(qs, { exclude: [{ context: babiContext(qs[0]!), question: qs[0]!.question }] });
  assert.equal(excluded.counts.droppedExcluded, 1);
  assert.deepEqual(babiBenchmark(qs, { seed: 1 }), r.rows, "deterministic");
});

for (const task of [1, 2]) {
  test(`babiBenchmark task ${task} on the shipped file: the unknown question's entity occurs in no line of the context`, () => {
    const { train } = readBabiSplit(task);
    let counts: unknown;
    const rows = babiBenchmark(train.slice(0, 3000), { task, seed: 7, onCounts: (c) => (counts = c) });
    assert.ok(rows.length > 1500, `rows: ${rows.length} ${JSON.stringify(counts)}`);
    const byContext = new Map(train.map((q) => [babiContext(q), q]));
    for (const row of rows) {
      const e = babiQuestionEntity(row.neg_query, task)!;
      const known = babiQuestionEntity(row.pos_query, task)!;
      assert.equal(e.pattern, known.pattern);
      assert.notEqual(e.text, known.text);
      for (const line of byContext.get(row.context)!.statements) assert.ok(!new RegExp(`\\b${e.text.replace(/^the /, "")}\\b`, "i").test(line), `${row.neg_query} vs ${line}`);
      assert.match(row.context, new RegExp(`\\b${known.text.replace(/^the /, "")}\\b`, "i"));
    }
    assert.deepEqual(babiBenchmark(train.slice(0, 3000), { task, seed: 7 }), rows);
    assert.notDeepEqual(babiBenchmark(train.slice(0, 3000), { task, seed: 8 }).map((r) => r.neg_query), rows.map((r) => r.neg_query));
  });
}

const ARTICLE: SquadArticle = {
  title: "Rivers",
  paragraphs: [
    { context: "The Nile flows through Egypt.", qas: [{ id: "a", question: "Where does the Nile flow?", answers: [{ text: "Egypt", answer_start: 23 }, { text: "through Egypt", answer_start: 15 }] }] },
    { context: "The Amazon is in Brazil.", qas: [{ id: "b", question: "Where is the Amazon?", answers: [{ text: "Brazil", answer_start: 17 }] }] },
    { context: "Egypt has the Nile and Brazil too.", qas: [{ id: "c", question: "What does Egypt have?", answers: [{ text: "the Nile", answer_start: 10 }] }] },
  ],
};

test("squadBenchmark: unknown from another paragraph of the article, none of its answers in the shown one", () => {
  const r = squadBenchmarkWithCounts([ARTICLE], { seed: 3 });
  assert.equal(r.counts.questions, 3);
  // Paragraph 2 mentions Egypt, Brazil and the Nile: no question of another paragraph is unknown there.
  assert.equal(r.counts.skippedNoUnknown, 1);
  assert.equal(r.rows.length, 2);
  const [p0, p1] = r.rows;
  assert.equal(p0!.neg_query, "Where is the Amazon?");
  assert.deepEqual(p0!.pos_answer, ["Egypt", "through Egypt"]);
  assert.equal(p0!.pos_id, "a");
  assert.equal(p0!.neg_id, "b");
  assert.equal(p0!.sample_id, "Rivers#p0");
  assert.equal(p0!.pos_wikipage, "Rivers");
  assert.equal(p1!.neg_query, "Where does the Nile flow?");
  assert.deepEqual(squadBenchmark([ARTICLE], { seed: 3 }), r.rows);
  // pos_id/neg_id survive the JSONL round trip; ASQA-shaped rows without them stay as they were.
  const back = parseBenchmarkJsonl(r.rows.map((x) => JSON.stringify(x)).join("\n") + "\n", "b.jsonl");
  assert.deepEqual(back, r.rows);
});

test("squadBenchmark on the shipped validation articles: every unknown question's answers are absent from the shown paragraph", () => {
  const { validation } = readSquadSplit();
  const rows = squadBenchmark(validation);
  assert.ok(rows.length > 1000);
  const byId = new Map(validation.flatMap((a) => a.paragraphs.flatMap((p) => p.qas.map((q) => [q.id, { q, p }] as const))));
  for (const row of rows) {
    const neg = byId.get(row.neg_id!)!;
    assert.notEqual(neg.p.context, row.context);
    for (const a of neg.q.answers) assert.ok(!row.context.toLowerCase().includes(a.text.toLowerCase()));
    assert.equal(byId.get(row.pos_id!)!.p.context, row.context);
  }
});

test("validation sides drop every row whose (context, question) is on the train side", () => {
  for (const task of [1, 2]) {
    const s = babiBenchmarkSides({ task });
    const train = new Set(readBabiSplit(task).train.map((q) => `${babiContext(q)}\u0000${q.question}`));
    for (const r of s.train.rows) train.add(`${r.context}\u0000${r.neg_query}`);
    assert.ok(s.validation.counts.droppedExcluded > 0, "bAbI has repeats by chance");
    for (const r of s.validation.rows) {
      assert.ok(!train.has(`${r.context}\u0000${r.pos_query}`));
      assert.ok(!train.has(`${r.context}\u0000${r.neg_query}`));
    }
  }
  const q = squadBenchmarkSides();
  assert.equal(q.validation.counts.articles, 8);
});

test("ktu data benchmark --source babi|squad: defaults, --task, --side, --seed, and options of another source refused", () => {
  const help = runKtu(["data", "benchmark", "--help"]);
  assert.equal(help.status, 0);
  for (const o of ["--source asqa|babi|squad", "--babi FILE", "--task N", "--squad FILE", "--side train|validation|all", "--seed N", "default validation"]) assert.ok(help.stdout.includes(o), o);

  const b = runKtu(["data", "benchmark", "--source", "babi", "--out", join(tmp, "b1")]);
  assert.equal(b.status, 0, b.stderr);
  assert.match(b.stdout, /qa1_single-supporting-fact_train\.txt\.gz, side: validation/);
  const s = babiBenchmarkSides({ task: 1 });
  assert.match(b.stdout, new RegExp(`validation: questions: 1000, rows: ${s.validation.rows.length}, skipped \\(no replaceable entity\\): 0, skipped \\(no unmentioned substitute\\): ${s.validation.counts.skippedNoSubstitute}, dropped \\(on the train side\\): ${s.validation.counts.droppedExcluded}`));
  const rows = jsonl(join(tmp, "b1", "benchmark.jsonl"));
  assert.deepEqual(rows, JSON.parse(JSON.stringify(s.validation.rows)));
  assert.deepEqual(Object.keys(rows[0]!).slice(0, 5), ["id", "context", "pos_query", "pos_answer", "neg_query"]);
  assert.ok(rows.every((r) => /^babi-qa1-story\d*0$/.test(String(r.sample_id))), "validation = every tenth story");

  const t2 = runKtu(["data", "benchmark", "--source", "babi", "--task", "2", "--side", "train", "--seed", "5", "--out", join(tmp, "b2")]);
  assert.equal(t2.status, 0, t2.stderr);
  const rows2 = jsonl(join(tmp, "b2", "benchmark.jsonl"));
  assert.deepEqual(rows2.map((r) => r.neg_query), babiBenchmarkSides({ task: 2, seed: 5 }).train.rows.map((r) => r.neg_query));
  assert.ok(rows2.every((r) => /^babi-qa2-story\d*[1-9]$/.test(String(r.sample_id))), "train = the other stories");

  const file = join(tmp, "qa1_tiny_train.txt");
  writeFileSync(file, BABI);
  const own = runKtu(["data", "benchmark", "--source", "babi", "--babi", file, "--side", "all", "--out", join(tmp, "b3")]);
  assert.equal(own.status, 0, own.stderr);
  assert.match(own.stdout, /train: questions: 1, rows: 1/);
  assert.match(own.stdout, /validation: questions: 2, rows: 2/);
  assert.equal(jsonl(join(tmp, "b3", "benchmark.jsonl")).length, 3);
  // A file name without "qaN_": --task says which patterns apply.
  const unnamed = join(tmp, "stories.txt");
  writeFileSync(unnamed, BABI);
  const un = runKtu(["data", "benchmark", "--source", "babi", "--babi", unnamed, "--task", "1", "--side", "all", "--out", join(tmp, "b4")]);
  assert.equal(un.status, 0, un.stderr);
  assert.deepEqual(jsonl(join(tmp, "b4", "benchmark.jsonl")).map((r) => r.sample_id), ["babi-qa1-story1", "babi-qa1-story0", "babi-qa1-story0"]);

  const q = runKtu(["data", "benchmark", "--source", "squad", "--out", join(tmp, "q1")]);
  assert.equal(q.status, 0, q.stderr);
  assert.match(q.stdout, /dev-v1\.1-40-articles\.json\.gz, side: validation/);
  assert.match(q.stdout, /validation: articles: 8, questions: \d+, rows: \d+/);
  const qrows = jsonl(join(tmp, "q1", "benchmark.jsonl"));
  assert.equal(new Set(qrows.map((r) => r.pos_wikipage)).size, 8);
  assert.ok(qrows.every((r) => typeof r.pos_id === "string"));
  const squadFile = join(tmp, "squad.json");
  writeFileSync(squadFile, JSON.stringify({ version: "1.1", data: [ARTICLE, { ...ARTICLE, title: "Other" }] }));
  const q2 = runKtu(["data", "benchmark", "--source", "squad", "--squad", squadFile, "--side", "all", "--out", join(tmp, "q2")]);
  assert.equal(q2.status, 0, q2.stderr);
  // The two articles are copies: the validation one's rows are all on the train side, and dropped.
  assert.match(q2.stdout, /validation: articles: 1, questions: 3, rows: 0, skipped \(no unknown question\): 1, dropped \(on the train side\): 2/);
  assert.equal(jsonl(join(tmp, "q2", "benchmark.jsonl")).length, 2);

  const wrong = runKtu(["data", "benchmark", "--source", "squad", "--task", "2", "--out", join(tmp, "x")]);
  assert.equal(wrong.status, 2, wrong.stderr);
  assert.match(wrong.stderr, /--task does not apply to --source squad/);
  assert.match(runKtu(["data", "benchmark", "--source", "babi", "--task", "21", "--out", join(tmp, "x")]).stderr, /--task must be a bAbI task/);
  assert.match(runKtu(["data", "benchmark", "--source", "babi", "--side", "test", "--out", join(tmp, "x")]).stderr, /--side must be one of train, validation, all/);
  const asqa = runKtu(["data", "benchmark", "--babi", file, "--out", join(tmp, "x")]);
  assert.notEqual(asqa.status, 0);
  assert.match(asqa.stderr, /--babi does not apply to --source asqa/);
});

test("buildStageSets: stage 1, stage 2 and the ablations from the train side, with ASQA's builders", async () => {
  const { buildStageSets, rowAsSample } = await import("../src/index.ts");
  const sets = buildStageSets("babi", { task: 1, stage2Limit: 40 });
  const train = sets.benchmark.train.rows;
  assert.equal(sets.stage1.length, 2 * train.length);
  assert.equal(sets.stage1WithQa.length, 3 * train.length);
  assert.equal(sets.cognitionPsqa.length, 3 * train.length);
  assert.equal(sets.stage2.rows.length, 40);
  assert.equal(sets.qa.length, 40);
  assert.deepEqual(sets.stage1.slice(0, 2).map((r) => r.output), ["Sufficient", "Insufficient"]);
  assert.ok(sets.stage1[1]!.instruction.includes(train[0]!.neg_query));
  const trainIds = new Set(train.map((r) => rowAsSample(r).id));
  assert.ok(sets.stage2.rows.every((r) => trainIds.has(r.source_id)));
  assert.deepEqual(rowAsSample(train[0]!).context, [["bAbI task 1", [train[0]!.context]]]);
  const squad = buildStageSets("squad", { stage2Limit: 10 });
  assert.equal(squad.stage2.rows.length, 10);
  const validationTitles = new Set(squad.benchmark.validation.rows.map((r) => r.pos_wikipage));
  assert.ok(squad.benchmark.train.rows.every((r) => !validationTitles.has(r.pos_wikipage)));
});

test("ktu data build --source babi|squad writes both benchmark sides, the stage sets and the LLaMA-Factory folder; --task/--file need --source", () => {
  const help = runKtu(["data", "build", "--help"]);
  for (const o of ["--source babi|squad", "--task N", "--file FILE", "out/data/babi"]) assert.ok(help.stdout.includes(o), o);
  const file = join(tmp, "qa1_tiny_train.txt");
  writeFileSync(file, BABI);
  const out = join(tmp, "build-babi");
  const r = runKtu(["data", "build", "--source", "babi", "--file", file, "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /babi benchmark train \/ validation\s+1 \/ 2/);
  assert.match(r.stdout, /stage 1 \(Cognition\)\s+2 /);
  assert.equal(jsonl(join(out, "benchmark", "validation.jsonl")).length, 2);
  assert.equal(jsonl(join(out, "stage2", "stage2.jsonl")).length, 1);
  assert.equal(JSON.parse(readFileSync(join(out, "llamafactory", "TrustworthyLLM_Cognition_Finetuning_Dataset.json"), "utf8")).length, 2);
  assert.match(runKtu(["data", "build", "--task", "2", "--out", join(tmp, "x")]).stderr, /--task needs --source babi\|squad/);
  assert.match(runKtu(["data", "build", "--source", "squad", "--task", "2", "--out", join(tmp, "x")]).stderr, /--task applies to --source babi only/);
});
