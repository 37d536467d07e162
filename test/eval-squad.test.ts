import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readSquadSplit, squadEvaluate, squadExactMatch, squadF1, squadItems, squadNormalizeAnswer } from "../src/index.ts";
import { dataPath } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "ktu-eval-squad-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("squadNormalizeAnswer is evaluate-v1.1.py's normalize_answer", () => {
  assert.equal(squadNormalizeAnswer("The  Denver Broncos!"), "denver broncos");
  assert.equal(squadNormalizeAnswer("a theory, an apple; the end."), "theory apple end");
  assert.equal(squadNormalizeAnswer("Theatre"), "theatre", "articles only as whole words");
  assert.equal(squadNormalizeAnswer("24–10"), "24–10", "the en dash is not in string.punctuation");
  assert.equal(squadNormalizeAnswer("don't"), "dont");
  assert.equal(squadNormalizeAnswer("éthe"), "éthe", "\\b is Unicode-aware in Python 3");
  assert.equal(squadNormalizeAnswer("x\x1cy"), "x y", "str.split breaks on \\x1c");
  assert.equal(squadNormalizeAnswer("the"), "");
});

test("EM and F1 by hand", () => {
  assert.equal(squadExactMatch("the Broncos", "Broncos."), true);
  // pred "denver broncos won", gold "broncos": 1 common; P = 1/3, R = 1, F1 = 0.5.
  assert.equal(squadF1("Denver Broncos won", "the Broncos"), 0.5);
  // Repeated tokens are matched by count: "x x y" vs "x y y" share min(2,1) x + min(1,2) y = 2;
  // P = 2/3, R = 2/3, F1 = 2/3.
  assert.ok(Math.abs(squadF1("x x y", "x y y") - 2 / 3) < 1e-12);
  assert.equal(squadF1("", "broncos"), 0);
  assert.equal(squadF1("the", "a"), 0, "v1.1: two empty answers score 0");
  const s = squadEvaluate(
    [
      { id: "1", answers: ["Denver Broncos", "Broncos"] },
      { id: "2", answers: ["Santa Clara, California"] },
      { id: "3", answers: ["gold"] },
    ],
    { "1": "broncos", "2": "Santa Clara", extra: "ignored" },
  );
  // q1: EM 1, F1 1 (max over golds); q2: EM 0, F1 = 2*(1)*(2/3)/(1+2/3) = 0.8; q3 unanswered: 0.
  assert.equal(s.n, 3);
  assert.equal(s.unanswered, 1);
  assert.ok(Math.abs(s.exact_match - 100 / 3) < 1e-9);
  assert.ok(Math.abs(s.f1 - (100 * 1.8) / 3) < 1e-9);
});

const OFFICIAL = String.raw`
import json, re, string, sys
from collections import Counter
def normalize_answer(s):
    def remove_articles(text): return re.sub(r'\b(a|an|the)\b', ' ', text)
    def white_space_fix(text): return ' '.join(text.split())
    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)
    def lower(text): return text.lower()
    return white_space_fix(remove_articles(remove_punc(lower(s))))
def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0: return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)
def exact_match_score(prediction, ground_truth): return normalize_answer(prediction) == normalize_answer(ground_truth)
def metric_max_over_ground_truths(metric_fn, prediction, ground_truths): return max(metric_fn(prediction, gt) for gt in ground_truths)
def evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions: continue
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += metric_max_over_ground_truths(exact_match_score, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    return {'exact_match': 100.0 * exact_match / total, 'f1': 100.0 * f1 / total}
data = json.load(open(sys.argv[1]))
norm = [normalize_answer(s) for s in data['strings']]
print(json.dumps({'norm': norm, 'score': evaluate(data['dataset'], data['predictions'])}))
`;

const hasPython = spawnSync("python3", ["-c", "print(1)"], { encoding: "utf8" }).status === 0;

test("squadEvaluate equals a reimplementation of the official evaluate-v1.1.py", { skip: hasPython ? false : "no python3" }, () => {
  const { validation } = readSquadSplit();
  const items = squadItems(validation).slice(0, 300);
  // Predictions of every kind: gold, gold with noise, partial spans, other questions' answers, none.
  const noise = ["", "The ", "a", "!!", " the end", "Ánd ", "x\x1c", "—", "«", "an "];
  const predictions: Record<string, string> = {};
  items.forEach((q, i) => {
    if (i % 7 === 6) return;
    const gold = q.answers[i % q.answers.length]!;
    const words = gold.split(" ");
    const pick = [gold, noise[i % noise.length] + gold.toUpperCase() + noise[(i * 3) % noise.length], words.slice(0, Math.max(1, words.length - 1)).join(" "), items[(i * 31) % items.length]!.answers[0]!, q.context.slice(i % 50, (i % 50) + 40)][i % 5]!;
    predictions[q.id] = pick;
  });
  const strings = [...Object.values(predictions), ...items.flatMap((q) => q.answers), ...noise, "Théâtre the", "l'the", "the_a", "ﬁ the"];
  const dataset = validation.map((a) => ({ ...a, paragraphs: a.paragraphs.map((p) => ({ ...p, qas: p.qas.filter((q) => items.some((x) => x.id === q.id)) })) }));
  const file = join(tmp, "official-in.json");
  writeFileSync(file, JSON.stringify({ dataset, predictions, strings }));
  const r = spawnSync("python3", ["-c", OFFICIAL, file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const py = JSON.parse(r.stdout) as { norm: string[]; score: { exact_match: number; f1: number } };
  assert.deepEqual(strings.map(squadNormalizeAnswer), py.norm);
  const ours = squadEvaluate(items, predictions);
  assert.ok(Math.abs(ours.exact_match - py.score.exact_match) < 1e-9, `${ours.exact_match} vs ${py.score.exact_match}`);
  assert.ok(Math.abs(ours.f1 - py.score.f1) < 1e-9, `${ours.f1} vs ${py.score.f1}`);
  assert.ok(ours.exact_match > 10 && ours.exact_match < 90, "a mix of right and wrong");
});

test("ktu eval squad: predictions.json in the official format, EM/F1 JSON last on stdout, the model's own format", () => {
  const help = runKtu(["eval", "squad", "--help"]);
  assert.equal(help.status, 0);
  for (const o of ["--squad FILE", "validation", "--model MODEL", "--out DIR", "--limit N", "predictions.json", '{"exact_match": x, "f1": y, "n": n}', "context_chars", "greedy"]) assert.ok(help.stdout.includes(o), o);
  // stories260K in a folder with the reader's prompt.json: the QA template is used.
  const model = join(tmp, "m");
  mkdirSync(model);
  for (const f of ["stories260K.bin", "tok512.bin"]) copyFileSync(dataPath("models", "stories260K", f), join(model, f));
  const fmt = JSON.parse(readFileSync(dataPath("models", "reader", "prompt.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(model, "prompt.json"), JSON.stringify({ ...fmt, context_chars: 120, max_new_tokens: 4 }));
  const out = join(tmp, "run");
  const r = runKtu(["eval", "squad", "--model", join(model, "stories260K.bin"), "--out", out, "--limit", "2"], { timeoutMs: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, number>;
  assert.deepEqual(Object.keys(last), ["exact_match", "f1", "n"]);
  assert.equal(last.n, 2);
  const predictions = JSON.parse(readFileSync(join(out, "predictions.json"), "utf8")) as Record<string, string>;
  const items = squadItems(readSquadSplit().validation).slice(0, 2);
  assert.deepEqual(Object.keys(predictions), items.map((q) => q.id));
  const expected = squadEvaluate(items, predictions);
  assert.equal(last.exact_match, expected.exact_match);
  assert.equal(last.f1, expected.f1);
  const scores = JSON.parse(readFileSync(join(out, "scores.json"), "utf8")) as { config: { prompt: string; decode: { temperature: number; maxNewTokens: number } } };
  assert.match(scores.config.prompt, /ktu-compact-v1 \(declared in/);
  assert.equal(scores.config.decode.temperature, 0);
  assert.equal(scores.config.decode.maxNewTokens, 4);
  // --squad FILE: every question of the file.
  const file = join(tmp, "tiny.json");
  writeFileSync(file, JSON.stringify({ version: "1.1", data: [{ title: "T", paragraphs: [{ context: "Paris is in France.", qas: [{ id: "q1", question: "Where is Paris?", answers: [{ text: "France", answer_start: 12 }] }] }] }] }));
  const own = runKtu(["eval", "squad", "--squad", file, "--model", join(model, "stories260K.bin"), "--out", join(tmp, "own")], { timeoutMs: 300_000 });
  assert.equal(own.status, 0, own.stderr);
  assert.equal(JSON.parse(own.stdout.trim().split("\n").at(-1)!).n, 1);
  assert.deepEqual(Object.keys(JSON.parse(readFileSync(join(tmp, "own", "predictions.json"), "utf8"))), ["q1"]);
});
