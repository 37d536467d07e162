import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "ktu-data-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const fixture = (name: string): string => join(repoRoot, "test", "fixtures", "data", name);
const jsonl = (file: string): Record<string, unknown>[] => readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

test("ktu data benchmark writes the paper's columns and prints the counts, for both filters", () => {
  const out = join(tmp, "bench");
  const r = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /items: 400/);
  assert.match(r.stdout, /pairs before filter: 454/);
  assert.match(r.stdout, /pairs after filter: 342/);
  const rows = jsonl(join(out, "benchmark.jsonl"));
  assert.equal(rows.length, 342);
  assert.deepEqual(Object.keys(rows[0]!).slice(0, 5), ["id", "context", "pos_query", "pos_answer", "neg_query"]);
  assert.ok(Array.isArray(rows[0]!.pos_answer));
  const corrected = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--filter", "corrected", "--out", join(tmp, "bench-c")]);
  assert.match(corrected.stdout, /pairs after filter: 289/);
  const original = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "tfds_dummy_ASQA.json"), "--split", "dev", "--out", join(tmp, "bench-o")]);
  assert.equal(original.status, 0, original.stderr);
  assert.match(original.stdout, /layout: original, split: dev/);
});

test("ktu data split, stage1, stage2 and export chain on the real files", () => {
  const bench = join(tmp, "bench", "benchmark.jsonl");
  if (!existsSync(bench)) runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", join(tmp, "bench")]);
  const split = runKtu(["data", "split", "--benchmark", bench, "--out", join(tmp, "split"), "--seed", "42", "--test-fraction", "0.3"]);
  assert.equal(split.status, 0, split.stderr);
  assert.match(split.stdout, /train: 243 rows \(83 questions\)/);
  assert.match(split.stdout, /test: 99 rows \(36 questions\)/);
  const train = join(tmp, "split", "train.jsonl");
  const s1 = runKtu(["data", "stage1", "--benchmark", train, "--out", join(tmp, "s1")]);
  assert.equal(s1.status, 0, s1.stderr);
  assert.match(s1.stdout, /stage-1 rows: 486/);
  const s2 = runKtu(["data", "stage2", "--hotpot", dataPath("hotpotqa", "hipporag_hotpot_train_100.json"), "--hotpot", dataPath("hotpotqa", "rpt_hf_distractor_validation_train.jsonl"), "--limit", "150", "--out", join(tmp, "s2")]);
  assert.equal(s2.status, 0, s2.stderr);
  assert.match(s2.stdout, /stage-2 rows: 150/);
  assert.equal(jsonl(join(tmp, "s2", "stage2.jsonl")).filter((r) => String(r.source_id).length > 0).length, 150);
  const ex = runKtu(["data", "export", "--benchmark", train, "--hotpot", dataPath("hotpotqa", "hipporag_hotpot_train_100.json"), "--limit", "50", "--model-path", "/models/llama-2-7b-chat-hf", "--out", join(tmp, "lf")]);
  assert.equal(ex.status, 0, ex.stderr);
  const info = JSON.parse(readFileSync(join(tmp, "lf", "dataset_info.json"), "utf8")) as Record<string, unknown>;
  assert.equal(Object.keys(info).length, 5);
  const cfg = parseYaml(readFileSync(join(tmp, "lf", "configs", "train_lora", "Llama2_Stage1.yaml"), "utf8")) as Record<string, unknown>;
  assert.equal(cfg.model_name_or_path, "/models/llama-2-7b-chat-hf");
  assert.equal(JSON.parse(readFileSync(join(tmp, "lf", "TrustworthyLLM_Cognition_Finetuning_Dataset.json"), "utf8")).length, 486);
});

test("bad input exits 1 with one line naming file, record and field; --skip-bad skips and counts", () => {
  const out = join(tmp, "bad");
  const r = runKtu(["data", "benchmark", "--asqa", fixture("asqa_missing_qa_pairs.jsonl"), "--out", out]);
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^ktu: .*asqa_missing_qa_pairs\.jsonl, line 2, field qa_pairs: missing$/);
  assert.ok(!existsSync(join(out, "benchmark.jsonl")));
  const skip = runKtu(["data", "benchmark", "--asqa", fixture("asqa_missing_qa_pairs.jsonl"), "--out", out, "--skip-bad"]);
  assert.equal(skip.status, 0, skip.stderr);
  assert.match(skip.stdout, /items: 2 \(used: 2, skipped bad: 1\)/);
  const utf8 = runKtu(["data", "stage2", "--hotpot", fixture("hotpot_bad_utf8.jsonl"), "--out", out]);
  assert.equal(utf8.status, 1);
  assert.match(utf8.stderr, /hotpot_bad_utf8\.jsonl, line 2: not valid UTF-8/);
  const usage = runKtu(["data", "benchmark", "--out", out]);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--asqa is required/);
});

test("a failed write leaves neither a partial file nor a temp file", () => {
  const out = join(tmp, "atomic");
  // benchmark.jsonl is a folder, so the final rename fails after the temp file was written.
  mkdirSync(join(out, "benchmark.jsonl"), { recursive: true });
  const r = runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", out]);
  assert.equal(r.status, 1);
  assert.deepEqual(readdirSync(out), ["benchmark.jsonl"]);
  // An earlier good output survives a later failed run untouched.
  const keep = join(tmp, "keep");
  mkdirSync(keep);
  writeFileSync(join(keep, "benchmark.jsonl"), "previous\n");
  assert.equal(runKtu(["data", "benchmark", "--asqa", fixture("asqa_truncated.jsonl"), "--out", keep]).status, 1);
  assert.equal(readFileSync(join(keep, "benchmark.jsonl"), "utf8"), "previous\n");
});

test("--help works on every data subcommand and on start", () => {
  for (const sub of ["benchmark", "split", "stage1", "stage2", "export", "build"]) {
    const r = runKtu(["data", sub, "--help"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: ktu data ${sub} `));
  }
  assert.match(runKtu(["start", "--help"]).stdout, /^Usage: ktu start/);
});

test("ktu data build (the data part of ktu start) builds every dataset and prints the summary table", () => {
  const r = runKtu(["data", "build", "--out", join(tmp, "start", "data")]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /benchmark \(paper filter\)\s+342\s+of 454 ordered pairs/);
  assert.match(r.stdout, /benchmark \(corrected filter\)\s+289/);
  assert.match(r.stdout, /stage 2 \(PromptSensitive\)\s+300/);
  // The same split as `ktu data split --seed 42 --test-fraction 0.3`; stage 1 on its train side.
  assert.match(r.stdout, /split train \/ test \(paper\)\s+243 \/ 99\s+83 \/ 36 questions/);
  assert.match(r.stdout, /split train \/ test \(corrected\)\s+208 \/ 81/);
  assert.match(r.stdout, /stage 1 \(Cognition\)\s+486/);
  assert.match(r.stdout, /ablation Cognition_PSQA\s+729/);
  const summary = JSON.parse(readFileSync(join(tmp, "start", "data", "summary.json"), "utf8")) as { counts: { stage1: number; split: { paper: { train: number } } } };
  assert.equal(summary.counts.stage1, 2 * summary.counts.split.paper.train);
  assert.ok(existsSync(join(tmp, "start", "data", "llamafactory", "configs", "train_lora", "Llama2_Stage1_Stage2.yaml")));
});
