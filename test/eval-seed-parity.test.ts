import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readBenchmark } from "../src/eval/io.ts";
import { pythonListRepr } from "../src/eval/python.ts";
import { scoreRow } from "../src/eval/scoring.ts";
import { Rng } from "../src/util/rng.ts";
import { dataPath } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

/**
 * Differential check against Python itself: the seed's scoring as paper.md 3.1 states it, run by
 * python3 on the real ASQA benchmark with str(list) made by Python, against our scorer, on
 * predictions built to hit the quirks (gold fragments, single words, refusal phrases, empties).
 */
const PYTHON = "/usr/bin/python3";
const SEED_SCORER = String.raw`
import json, sys
NEG_12 = ['not mentioned', 'not provided', 'not given', "'t mentioned", "'t provided", "'t given", 'not provide',
          "'t provide", "'t mention", "not mention", "no context provided", "insufficient"]
NEG_20 = NEG_12 + ["not familiar", "not aware", "apologize", "not able to", "not make sense", "'t make sense", "'t know", "not know"]
rows = [json.loads(l) for l in open(sys.argv[1])]
preds = {p["id"]: p for p in map(json.loads, open(sys.argv[2]))}
out = []
for r in rows:
    cell = str(r["pos_answer"])          # what save_xls_dataset stored
    p = preds[r["id"]]
    res = {"id": r["id"], "repr": cell}
    for version in ("2024-08", "2024-04"):
        gold = cell[1:-1].split(',')
        gold = [a.strip()[1:-1].lower() for a in gold]
        if version == "2024-08":
            for j in range(len(gold)):
                gold.extend(gold[j].split())
            gold = list(set(gold))
        a1 = p["pos_prediction"].lower()
        known = any(a1.find(g) != -1 for g in gold)
        a2 = p["neg_prediction"].lower()
        words = NEG_20 if version == "2024-08" else NEG_12
        unknown = (version == "2024-08" and len(a2.strip()) == 0) or any(a2.find(w) != -1 for w in words)
        res[version] = [known, unknown]
    out.append(res)
json.dump(out, sys.stdout)
`;

test("our 2024-08 and 2024-04 verdicts equal the seed's rules run by Python on the real benchmark", { skip: !existsSync(PYTHON) && "no /usr/bin/python3" }, () => {
  const tmp = mkdtempSync(join(tmpdir(), "ktu-eval-parity-"));
  const built = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", join(tmp, "bench")]);
  assert.equal(built.status, 0, built.stderr);
  const benchPath = join(tmp, "bench", "benchmark.jsonl");
  const rows = readBenchmark(benchPath);
  const rng = new Rng(7);
  const fillers = ["It was in", "The answer is", "According to the passage,", "", "   ", "Sorry, I don't know.", "This is NOT PROVIDED here.", "I apologize", "the", "Insufficient context"];
  const preds = rows.map((row) => {
    const answers = row.pos_answer as string[];
    const gold = answers[rng.int(0, answers.length - 1)]!;
    const words = gold.split(/\s+/);
    const pick = rng.int(0, 5);
    const pos =
      pick === 0 ? `${rng.pick(fillers)} ${gold.toUpperCase()}.`
      : pick === 1 ? `${rng.pick(fillers)} ${words[rng.int(0, words.length - 1)]}`
      : pick === 2 ? gold.slice(1, -1)
      : pick === 3 ? rng.pick(fillers)
      : pick === 4 ? `${gold}, ${rng.pick(fillers)}`
      : "Something else entirely";
    return { id: row.id, pos_prediction: pos, neg_prediction: rng.pick(fillers) };
  });
  const predPath = join(tmp, "preds.jsonl");
  writeFileSync(predPath, preds.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const py = spawnSync(PYTHON, ["-c", SEED_SCORER, benchPath, predPath], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(py.status, 0, py.stderr);
  const seed = JSON.parse(py.stdout) as { id: number; repr: string; "2024-08": [boolean, boolean]; "2024-04": [boolean, boolean] }[];
  assert.equal(seed.length, rows.length);
  let commaAnswers = 0;
  let differsByVersion = 0;
  seed.forEach((s, i) => {
    const row = rows[i]!;
    assert.equal(pythonListRepr(row.pos_answer as string[]), s.repr, `str(list) of id ${row.id}`);
    if ((row.pos_answer as string[]).some((a) => a.includes(","))) commaAnswers++;
    for (const version of ["2024-08", "2024-04"] as const) {
      const ours = scoreRow(String(row.id), row.pos_answer, preds[i]!.pos_prediction, preds[i]!.neg_prediction, version);
      assert.deepEqual([ours.known_correct, ours.unknown_correct], s[version], `id ${row.id}, ${version}: ${JSON.stringify(preds[i])} vs ${s.repr}`);
    }
    if (s["2024-08"][0] !== s["2024-04"][0]) differsByVersion++;
  });
  // The sample really exercises the quirks.
  assert.ok(commaAnswers > 0, "some gold answers hold a comma");
  assert.ok(differsByVersion > 10, `word expansion changed ${differsByVersion} verdicts`);
});
