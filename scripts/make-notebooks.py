#!/usr/bin/python3
"""Writes notebooks/*.ipynb from the cell sources below (outputs empty).

The cells here are the source of truth; scripts/execute-notebooks.sh then runs every notebook with
our kernel and saves the outputs. Run: /usr/bin/python3 scripts/make-notebooks.py [--keep-outputs] [NAME ...]
"""
import json
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
KERNEL = {"name": "know-the-unknown", "display_name": "TypeScript (know-the-unknown)", "language": "typescript"}

PARAMS_NOTE = (
    "// Parameters: change a value and re-run the notebook. KTU_NOTEBOOK_PARAMS (JSON in the environment)\n"
    "// overrides them, which is how the tests run a small version.\n"
)


def params_cell(body: str) -> nbformat.NotebookNode:
    cell = new_code_cell(PARAMS_NOTE + body.strip() + "\n")
    cell.metadata["tags"] = ["parameters"]
    return cell


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip())


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip())


NOTEBOOKS = {}

NOTEBOOKS["01-datasets"] = [
    md("""
# 1. The datasets of US-Tuning

Every dataset of the paper (Li, Tang & Yang, ACL Findings 2025), built from the files shipped in `data/`:
the contextual-QA benchmark from ASQA (the authors' literal filter and our corrected one side by side),
the train/test split by ambiguous question, stage 1 (Sufficient / Insufficient), stage 2 (HotpotQA with
causal instructions and a CHECKING review), the ablation sets, the compact prompts the tiny model is
trained on, and the export for LLaMA-Factory. Method: `shared/docs/paper.md` sections 1.1 to 1.4, copied
into `src/data/README.md`.
"""),
    code("""
import { buildAllDatasets, formatBuildSummary, readAsqa, buildBenchmark, splitBenchmark, buildStage1, buildStage2, readHotpotAll,
  DEFAULT_ASQA_FILE, DEFAULT_HOTPOT_FILES, INSTRUCTIONS, paperTrainConfigs, toYaml, openModel, buildPipelineData, defaultModelPath } from "know-the-unknown";
import * as aq from "arquero";
import { readdirSync, readFileSync } from "node:fs";
"""),
    params_cell("""
const params = {
  asqaFile: DEFAULT_ASQA_FILE,
  splitSeed: 42,
  testFraction: 0.3,
  outDir: "../out/data",
  model: defaultModelPath(),
  maxLen: 256,                 // prompt + answer tokens (the main job's default)
  ...JSON.parse(process.env.KTU_NOTEBOOK_PARAMS ?? "{}"),
};
"""),
    md("## Everything in one call\n\n`buildAllDatasets` is the data part of `npm start` and of `ktu data build`."),
    code("""
const built = await buildAllDatasets({ outDir: params.outDir, asqaFile: params.asqaFile, seed: params.splitSeed, testFraction: params.testFraction });
console.log(formatBuildSummary(built));
"""),
    md("""
## The benchmark: literal and corrected filter

Each ASQA item has several disambiguated questions, each with its own passage. A row shows one passage
with two questions: the **known** one (answerable from it) and its sibling, the **unknown** one. The
authors' filter keeps a row when a known answer is in the shown passage and *no known answer* is in the
other passage; it never looks at the unknown question's answers (paper.md 1.1). The corrected filter also
drops rows whose unknown question's answer is in the shown passage.
"""),
    code("""
const asqa = await readAsqa(params.asqaFile);
const paper = buildBenchmark(asqa.items, { filter: "paper" });
const corrected = buildBenchmark(asqa.items, { filter: "corrected" });
display.table(aq.from([
  { filter: "paper (literal)", ...paper.counts },
  { filter: "corrected", ...corrected.counts },
]));
"""),
    code("""
// Rows the literal filter keeps although the unknown question's answer sits in the shown passage.
const keptIds = new Set(corrected.rows.map((r) => r.id));
const leaky = paper.rows.filter((r) => !keptIds.has(r.id));
console.log(`${leaky.length} of ${paper.rows.length} literal rows have the unknown question's answer in the shown passage`);
display.table(aq.from(leaky.slice(0, 4).map((r) => ({ id: r.id, known_question: r.pos_query, unknown_question: r.neg_query, unknown_answers: r.neg_answer.join(" | "), passage: r.context.slice(0, 160) + "..." }))));
"""),
    md("## Train / test split by ambiguous question\n\nThe authors evaluated on the rows they trained stage 1 on. Here whole ASQA questions go to one side, so no question or passage is on both."),
    code("""
const split = splitBenchmark(paper.rows, { seed: params.splitSeed, testFraction: params.testFraction });
const side = (rows: typeof split.train) => ({ rows: rows.length, questions: new Set(rows.map((r) => r.sample_id)).size, passages: new Set(rows.map((r) => r.context)).size });
const overlap = [...new Set(split.train.map((r) => r.sample_id))].filter((q) => split.test.some((r) => r.sample_id === q)).length;
display.table(aq.from([{ side: "train", ...side(split.train) }, { side: "test", ...side(split.test) }]));
console.log(`ambiguous questions on both sides: ${overlap}`);
"""),
    md("## Stage 1: uncertainty recognition\n\nTwo examples per train-side row, the TASK_COGNITION prompt with the known question (Sufficient) and with the unknown one (Insufficient)."),
    code("""
const stage1 = buildStage1(split.train);
console.log(`${stage1.length} stage-1 examples; labels:`, Object.fromEntries(["Sufficient", "Insufficient"].map((l) => [l, stage1.filter((r) => r.output === l).length])));
console.log(stage1[0].instruction.slice(-420) + stage1[0].output);
"""),
    md("## Stage 2: prompt-sensitive tuning\n\nHotpotQA questions, one causal instruction each in one of five slots, and a reply whose CHECKING marks come from the instruction's verifier (the authors used GPT-4 replies, which are not public)."),
    code("""
const hotpot = (await Promise.all(DEFAULT_HOTPOT_FILES.map((f) => readHotpotAll(f)))).flat();
const stage2 = buildStage2(hotpot, { seed: params.splitSeed, limit: 300 });
const byInstruction = aq.from(stage2.rows.map((r) => ({ instruction: r.instruction_id }))).groupby("instruction").count().orderby(aq.desc("count"));
display.table(byInstruction.slice(0, 10));
console.log(stage2.rows[0].output);
"""),
    code("""
const counts = byInstruction.objects() as { instruction: string; count: number }[];
display.plotly({ data: [{ type: "bar", x: counts.map((c) => c.instruction), y: counts.map((c) => c.count), marker: { color: "slateblue" } }],
  layout: { title: { text: `Causal instructions drawn for ${stage2.rows.length} stage-2 examples (${INSTRUCTIONS.length} in the library)` }, width: 900, height: 380, margin: { b: 140 } } });
"""),
    md("""
## Compact prompts for a tiny model

The embedded model (stories260K) has 512 positions and a 512-piece vocabulary: TASK_COGNITION alone is
635 tokens. The main job therefore uses one-line task prompts that keep the paper's task names and answer
words, and crops each passage to a window around the gold answer (the same window for both questions of a
row, so the crop carries no label). `notebooks/README.md` lists every change.
"""),
    code("""
const { tokenizer } = openModel(params.model);
const compact = await buildPipelineData({ tokenizer, maxLen: params.maxLen, maxNewTokens: 12, paths: built.paths, benchmark: "paper" });
display.table(aq.from(Object.values(compact.sets).map((s) => ({ set: s.name, examples: s.examples.length, cropped: s.cropped, passage_kept: `${(100 * s.keptShare).toFixed(0)}%` }))));
for (const s of Object.values(compact.sets)) console.log(`--- ${s.name}\\n${s.preview[0].prompt}${s.preview[0].target}`);
"""),
    md("## Export for LLaMA-Factory\n\nThe same data as Alpaca JSON with `dataset_info.json`, and the paper's training configs (paper.md 2.1)."),
    code("""
console.log(readdirSync(built.llamafactory.dir).join("\\n"));
const configs = paperTrainConfigs({ modelPath: "meta-llama/Llama-2-7b-chat-hf", datasetDir: built.llamafactory.dir, outputRoot: "runs" });
console.log(Object.keys(configs).join(", "));
console.log(toYaml(Object.values(configs)[0]));
"""),
]

NOTEBOOKS["02-stage1-uncertainty-recognition"] = [
    md("""
# 2. Stage 1: uncertainty-recognition tuning

Load the model, train stage 1 step by step with a live loss plot and a progress bar, and evaluate the
Sufficient / Insufficient classifier before and after, with calibration plots. The model is the default one, printed by the cell that loads it: the reader
(`data/models/reader/reader.bin`, a 1.33M-parameter Llama trained from scratch by `recipes/reader`, see
`data/models/reader/MODEL_CARD.md`, asked with the prompts its `prompt.json` declares) when its weights are
there, else stories260K (`data/models/stories260K`). On
stories260K expect the collapse described in `docs/tiny-scale-feasibility.md`; the reader was trained to
match questions against passages first. The diagnostics below say whether the run collapsed.
"""),
    code("""
import { initBackend, describeBackend, openModel, describeModel, buildAllDatasets, buildPipelineData, evaluateArm, SftTrainer, pipelineDefaults, pipelinePrompts,
  reliabilityDiagram, confidenceHistogram, figure } from "know-the-unknown";
import * as aq from "arquero";
"""),
    params_cell("""
const overrides = JSON.parse(process.env.KTU_NOTEBOOK_PARAMS ?? "{}");
const defaults = pipelineDefaults(false, overrides.model);   // the default model, and the lengths its prompt.json declares
const params = {
  model: defaults.model,
  seed: 1,
  maxLen: defaults.maxLen,                       // prompt + answer tokens: reader 320 (its prompt.json), stories260K 256
  maxNewTokens: defaults.maxNewTokens,           // answer length: reader 24, stories260K 12
  contextChars: defaults.contextChars,           // reader: passages cut to 600 characters around the answer first
  trainRows: 256 as number | undefined,          // the first 256 stage-1 examples (undefined: all 486)
  testRows: undefined as number | undefined,    // all test rows
  learningRate: 2e-3,
  epochs: 1,
  maxSteps: 0,                                   // > 0 overrides epochs
  batchSize: 16,
  loraRank: 8,
  outDir: "../out/notebooks/stage1-seed1",
  ...overrides,
};
"""),
    code("""
console.log(describeBackend(await initBackend()));
const { model: base, tokenizer } = openModel(params.model);
console.log(`model: ${describeModel(params.model, base.config).line}`);
const { prompts, stop } = pipelinePrompts(params.model);   // the model's own prompts (prompt.json), else the compact ones
const built = await buildAllDatasets({ outDir: "../out/data" });
const data = await buildPipelineData({ tokenizer, maxLen: params.maxLen, maxNewTokens: params.maxNewTokens, prompts, contextChars: params.contextChars, paths: built.paths, benchmark: "paper", trainRows: params.trainRows, testRows: params.testRows });
console.log(`${base.config.dim}-wide, ${base.config.nLayers} layers; ${data.sets.stage1.examples.length} stage-1 examples, ${data.test.length} test rows`);
"""),
    md("## Before training"),
    code("""
const summary = (e: Awaited<ReturnType<typeof evaluateArm>>, name: string) => ({
  model: name,
  "stage-1 acc %": (100 * e.diagnostics.classification_acc).toFixed(1),
  "AUROC P(Sufficient)": `${e.diagnostics.auroc_p_sufficient.value.toFixed(3)} [${e.diagnostics.auroc_p_sufficient.ci?.map((v) => v.toFixed(2)).join(", ")}]`,
  "majority label": `${e.diagnostics.majority_label} (${(100 * e.diagnostics.majority_label_share).toFixed(0)}%)`,
  "ECE": e.calibration.p_sufficient.ece_equal_width_15.toFixed(3),
  "known %": e.known.value.toFixed(1),
  "unknown %": e.unknown.value.toFixed(1),
});
const before = await evaluateArm(base, tokenizer, data.test, { maxNewTokens: params.maxNewTokens, prompts, stop, draws: 300 });
display.table(aq.from([summary(before, "base")]));
display.plotly(reliabilityDiagram(before.calibration.p_sufficient, { title: "Reliability of P(Sufficient): base, before training" }));
"""),
    md("## Training, step by step\n\nThe trainer is an async iterator of steps. Interrupt the training cell (the stop button) and it stops at its next step, with the kernel and the trainer intact: the cell after it prints the steps done and saves the adapter; change `trainer.config.learningRate` if you like, and run the training cell again to continue where it stopped."),
    code("""
const trainer = new SftTrainer({ model: base, train: data.sets.stage1.examples, outputDir: params.outDir, padId: tokenizer.eosId, baseModelName: params.model,
  config: { learningRate: params.learningRate, numTrainEpochs: params.epochs, maxSteps: params.maxSteps, batchSize: params.batchSize, lrSchedulerType: "cosine", warmupRatio: 0.05, seed: params.seed, loggingSteps: 1, overwriteOutputDir: true,
    lora: { rank: params.loraRank, alpha: 2 * params.loraRank, dropout: 0, targets: ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] } } });
const lossFigure = () => figure([{ type: "scatter", mode: "lines+markers", x: trainer.history.map((s) => s.step), y: trainer.history.map((s) => s.loss), name: "loss" }],
  { title: { text: `Stage 1 training loss (${trainer.totalSteps} steps)` }, width: 640, height: 320, xaxis: { title: { text: "step" }, range: [0, trainer.totalSteps + 1] }, yaxis: { title: { text: "loss" } } });
const bar = progress(trainer.totalSteps, "stage 1");
const plot = display.plotly(lossFigure());
"""),
    code("""
for await (const s of trainer.steps()) {
  bar.update(s.step, `loss ${s.loss.toFixed(4)}`);
  plot.update(lossFigure());
}
"""),
    code("""
console.log(`steps done: ${trainer.history.length} of ${trainer.totalSteps}`);
console.log(trainer.history.map((s) => `step ${s.step}: loss ${s.loss.toFixed(4)}`).join("\\n"));
await trainer.saveAdapter(params.outDir);
console.log(`adapter in ${params.outDir}`);
"""),
    md("## After training"),
    code("""
const stage1Model = trainer.merged();
const after = await evaluateArm(stage1Model, tokenizer, data.test, { maxNewTokens: params.maxNewTokens, prompts, stop, draws: 300 });
display.table(aq.from([summary(before, "base"), summary(after, "stage 1")]));
const d = after.diagnostics;
display.markdown(d.no_discrimination || d.majority_label_share > 0.9
  ? `**No learned discrimination.** After stage 1 the model gives "${d.majority_label}" to ${(100 * d.majority_label_share).toFixed(0)}% of test questions and its AUROC interval contains 0.5: it learned the label prior, not question-to-passage matching.`
  : `The stage-1 classifier separates known from unknown questions: AUROC ${d.auroc_p_sufficient.value.toFixed(3)}.`);
"""),
    md("## Calibration after stage 1\n\nP(Sufficient) against answerability, 15 equal-width bins (calibration.md); the base model's diagram is above, before training."),
    code("""
display.plotly(reliabilityDiagram(after.calibration.p_sufficient, { title: "Reliability of P(Sufficient): after stage 1" }));
"""),
    code("""
const items = (e: typeof after) => e.items.flatMap((o) => [{ confidence: o.known_p_sufficient, question: "known" }, { confidence: o.unknown_p_sufficient, question: "unknown" }]);
display.plotly(confidenceHistogram(items(after), { title: "P(Sufficient) after stage 1, by question kind" }));
"""),
    md("""
## Stage 1 on all three benchmarks

The same training on bAbI task 1 (its validation stories as test rows, its train side for the stage
sets), SQuAD v1.1 (validation articles; train articles) and ASQA, through the main job (`runPipeline`
with arms base, stage1): known, unknown and overall accuracy with 95% cluster-bootstrap intervals,
and the answers that need no model (the first 5 passage words; the same with a word-overlap refusal) on
the same rows beside them. bAbI and SQuAD train their stage sets on their own train sides.
"""),
    code("""
import { runPipeline, summarizePipeline, benchmarkTableRows } from "know-the-unknown";
const allRun = await runPipeline({ ...pipelineDefaults(false, params.model), out: `${params.outDir}-all-benchmarks`, seeds: [params.seed], jobs: 1, arms: ["base", "stage1"],
  maxLen: params.maxLen, trainRows: params.trainRows, testRows: params.testRows ?? 100, ...(params.maxSteps ? { maxSteps: params.maxSteps } : {}) });
const allSummary = summarizePipeline(allRun);
for (const b of Object.values(allSummary.benchmarks)) {
  display.markdown(`### ${b.title}`);
  display.table(aq.from(benchmarkTableRows(b).map(([setting, , known, unknown, overall, , , auroc]) => ({ setting, "known %": known, "unknown %": unknown, "overall %": overall, "AUROC P(Sufficient)": auroc }))));
  display.markdown(`${b.statement}\\n\\n${b.pattern.verdict}`);
}
"""),
]

NOTEBOOKS["03-stage2-prompt-sensitive"] = [
    md("""
# 3. Stage 2: prompt-sensitive tuning

Merge the stage-1 adapter into the base, train stage 2 on HotpotQA questions that carry a causal
instruction and a CHECKING review, then measure how often the model fulfils such instructions on
questions it has not seen (checked by each instruction's verifier) and whether known-question accuracy
comes back while refusals stay (the paper's claim, paper.md 4.2). The model is the default one, printed by the cell that loads it: the reader
(`data/models/reader/reader.bin`, a 1.33M-parameter Llama trained from scratch by `recipes/reader`, see
`data/models/reader/MODEL_CARD.md`, asked with the prompts its `prompt.json` declares) when its weights are
there, else stories260K (`data/models/stories260K`).
"""),
    code("""
import { initBackend, openModel, describeModel, buildAllDatasets, buildPipelineData, evaluateArm, SftTrainer, LoraAdapter, mergeLora, pipelineDefaults, pipelinePrompts,
  INSTRUCTIONS, readHotpotAll, DEFAULT_HOTPOT_FILES, instructionItems, instructionFollowing, figure } from "know-the-unknown";
import * as aq from "arquero";
import { existsSync, readFileSync } from "node:fs";
"""),
    params_cell("""
const overrides = JSON.parse(process.env.KTU_NOTEBOOK_PARAMS ?? "{}");
const defaults = pipelineDefaults(false, overrides.model);   // the default model, and the lengths its prompt.json declares
const params = {
  model: defaults.model,
  seed: 1,
  maxLen: defaults.maxLen,                       // prompt + answer tokens: reader 320 (its prompt.json), stories260K 256
  maxNewTokens: defaults.maxNewTokens,           // answer length: reader 24, stories260K 12
  contextChars: defaults.contextChars,           // reader: passages cut to 600 characters around the answer first
  trainRows: 256 as number | undefined,
  testRows: undefined as number | undefined,
  stage1Dir: "../out/notebooks/stage1-seed1",   // notebook 2's adapter; trained here if missing
  stage1LearningRate: 2e-3,
  stage2LearningRate: 2e-3,
  epochs: 1,
  maxSteps: 0,
  batchSize: 16,
  instructionRows: 40,                         // held-out HotpotQA questions for instruction following
  outDir: "../out/notebooks/stage2-seed1",
  ...overrides,
};
"""),
    code("""
await initBackend();
const { model: base, tokenizer } = openModel(params.model);
console.log(`model: ${describeModel(params.model, base.config).line}`);
const { prompts, stop } = pipelinePrompts(params.model);   // the model's own prompts (prompt.json), else the compact ones
const built = await buildAllDatasets({ outDir: "../out/data" });
const data = await buildPipelineData({ tokenizer, maxLen: params.maxLen, maxNewTokens: params.maxNewTokens, prompts, contextChars: params.contextChars, paths: built.paths, benchmark: "paper", trainRows: params.trainRows, testRows: params.testRows });
const lora = { rank: 8, alpha: 16, dropout: 0, targets: ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const };
const train = async (model: typeof base, examples: typeof data.sets.stage1.examples, outputDir: string, lr: number, label: string) => {
  const trainer = new SftTrainer({ model, train: examples, outputDir, padId: tokenizer.eosId, baseModelName: params.model,
    config: { learningRate: lr, numTrainEpochs: params.epochs, maxSteps: params.maxSteps, batchSize: params.batchSize, lrSchedulerType: "cosine", warmupRatio: 0.05, seed: params.seed, loggingSteps: 1, overwriteOutputDir: true, lora: { ...lora, targets: [...lora.targets] } } });
  const bar = progress(trainer.totalSteps, label);
  for await (const s of trainer.steps()) bar.update(s.step, `loss ${s.loss.toFixed(4)}`);
  await trainer.saveAdapter(outputDir);
  return trainer;
};
"""),
    md("## The stage-1 model, merged\n\nAs the authors' `Llama2_Stage1_Stage2.yaml`, stage 2 starts from the stage-1 merge."),
    code("""
if (!existsSync(`${params.stage1Dir}/adapter_model.safetensors`)) {
  console.log("no stage-1 adapter from notebook 2: training one now");
  (await train(base, data.sets.stage1.examples, params.stage1Dir, params.stage1LearningRate, "stage 1")).dispose();
}
const adapter1 = LoraAdapter.load(params.stage1Dir, base.config);
const stage1Model = mergeLora(base, adapter1);
adapter1.dispose();
console.log(`merged ${params.stage1Dir} into the base`);
"""),
    md("## The causal instructions\n\nThe library of instructions (the authors' own list is not public; paper.md 1.3), each with a verifier."),
    code("""
const used = aq.from(data.sets.stage2.preview.map((p) => ({ prompt: p.prompt.split("\\n")[0], target: p.target })));
display.table(aq.from(INSTRUCTIONS.map((i) => ({ id: i.id, instruction: i.text }))).slice(0, 12));
display.table(used);
"""),
    md("## Training stage 2"),
    code("""
const trainer2 = await train(stage1Model, data.sets.stage2.examples, params.outDir, params.stage2LearningRate, "stage 2");
const h = trainer2.history;
display.plotly(figure([{ type: "scatter", mode: "lines", x: h.map((s) => s.step), y: h.map((s) => s.loss), name: "stage 2" }], { title: { text: "Stage 2 training loss" }, width: 640, height: 320 }));
const usModel = trainer2.merged();
trainer2.dispose();
"""),
    md("## Does the model follow instructions it has not seen with these questions?\n\nHeld-out HotpotQA questions (not among the stage-2 training samples), one instruction each; the answer part (before CHECKING) goes through the instruction's verifier. Some instructions are met by almost any text (no digits, no commas), so compare with the stage-1 row, whose model never saw an instruction."),
    code("""
const usedIds = new Set(readFileSync(built.paths.stage2, "utf8").trim().split("\\n").map((l) => JSON.parse(l).source_id));
const heldOut = (await Promise.all(DEFAULT_HOTPOT_FILES.map((f) => readHotpotAll(f)))).flat().filter((s) => !usedIds.has(s.id)).slice(0, params.instructionRows);
const items = instructionItems(heldOut, tokenizer, { seed: params.seed, maxLen: params.maxLen, maxNewTokens: 24 });
const rate = (o: Awaited<ReturnType<typeof instructionFollowing>>) => ({ n: o.length, fulfilled: `${(100 * o.filter((x) => x.fulfilled).length / Math.max(1, o.length)).toFixed(1)}%`, correct: `${(100 * o.filter((x) => x.correct).length / Math.max(1, o.length)).toFixed(1)}%`, "writes CHECKING": `${(100 * o.filter((x) => x.has_checking).length / Math.max(1, o.length)).toFixed(1)}%` });
const follow1 = await instructionFollowing(stage1Model, tokenizer, items, { maxNewTokens: 24 });
const follow2 = await instructionFollowing(usModel, tokenizer, items, { maxNewTokens: 24 });
display.table(aq.from([{ model: "stage 1", ...rate(follow1) }, { model: "stage 1 then stage 2", ...rate(follow2) }]));
display.table(aq.from(follow2.slice(0, 6).map((o) => ({ instruction: o.instruction_id, question: o.question.slice(0, 60), gold: o.gold, output: o.output.slice(0, 80), fulfilled: o.fulfilled }))));
"""),
    md("## Known and unknown accuracy: recovered?"),
    code("""
const e1 = await evaluateArm(stage1Model, tokenizer, data.test, { maxNewTokens: params.maxNewTokens, prompts, stop, draws: 300 });
const e2 = await evaluateArm(usModel, tokenizer, data.test, { maxNewTokens: params.maxNewTokens, prompts, stop, draws: 300 });
const row = (name: string, e: typeof e1) => ({ model: name, "known %": e.known.value.toFixed(1), "known 95% CI": e.known.ci?.map((v) => v.toFixed(1)).join("-"), "unknown %": e.unknown.value.toFixed(1), "unknown 95% CI": e.unknown.ci?.map((v) => v.toFixed(1)).join("-"),
  "majority output": `${(100 * e.diagnostics.majority_output_share).toFixed(0)}% "${e.diagnostics.majority_output}"` });
display.table(aq.from([row("stage 1", e1), row("stage 1 then stage 2", e2)]));
display.markdown(e2.diagnostics.collapsed || e2.diagnostics.no_discrimination
  ? `**Collapse:** after stage 2 the most common answer covers ${(100 * e2.diagnostics.majority_output_share).toFixed(0)}% of questions and the known-vs-unknown AUROC interval contains 0.5. Any change between the rows above comes from the label prior, not from recovered skill.`
  : "After stage 2 the model's answers depend on the question: compare the rows above with the paper's pattern.");
"""),
    md("""
## Stage 1 then stage 2 on all three benchmarks

The same training on bAbI task 1 (its validation stories as test rows, its train side for the stage
sets), SQuAD v1.1 (validation articles; train articles) and ASQA, through the main job (`runPipeline`
with arms base, stage1, stage1_stage2): known, unknown and overall accuracy with 95% cluster-bootstrap intervals,
and the answers that need no model (the first 5 passage words; the same with a word-overlap refusal) on
the same rows beside them. bAbI and SQuAD train their stage sets on their own train sides.
"""),
    code("""
import { runPipeline, summarizePipeline, benchmarkTableRows } from "know-the-unknown";
const allRun = await runPipeline({ ...pipelineDefaults(false, params.model), out: `${params.outDir}-all-benchmarks`, seeds: [params.seed], jobs: 1, arms: ["base", "stage1", "stage1_stage2"],
  maxLen: params.maxLen, trainRows: params.trainRows, testRows: params.testRows ?? 100, ...(params.maxSteps ? { maxSteps: params.maxSteps } : {}) });
const allSummary = summarizePipeline(allRun);
for (const b of Object.values(allSummary.benchmarks)) {
  display.markdown(`### ${b.title}`);
  display.table(aq.from(benchmarkTableRows(b).map(([setting, , known, unknown, overall, , , auroc]) => ({ setting, "known %": known, "unknown %": unknown, "overall %": overall, "AUROC P(Sufficient)": auroc }))));
  display.markdown(`${b.statement}\\n\\n${b.pattern.verdict}`);
}
"""),
]

NOTEBOOKS["04-evaluation-and-calibration"] = [
    md("""
# 4. Evaluation and calibration: every variant

The benchmark table over the base model and every variant of the paper's figure (stage 1 only, QA only,
stage 2 only, stage 1 then QA, stage 1 then stage 2), over seeds, with cluster-bootstrap intervals and the
collapse diagnostics beside every number; then reliability diagrams and risk-coverage curves. This runs the
main job (`npm start`) in-process: with the same parameters and output folder it reuses what `npm start`
already finished and only computes what is missing. The model is the default one, printed by the cell that loads it: the reader
(`data/models/reader/reader.bin`, a 1.33M-parameter Llama trained from scratch by `recipes/reader`, see
`data/models/reader/MODEL_CARD.md`, asked with the prompts its `prompt.json` declares) when its weights are
there, else stories260K (`data/models/stories260K`).
"""),
    code("""
import { runPipeline, pipelineDefaults, summarizePipeline, formatCi, formatSpread, diagnosticsChart, reliabilityDiagram, riskCoverageCurve, PIPELINE_ARMS } from "know-the-unknown";
import * as aq from "arquero";
"""),
    params_cell("""
const overrides = JSON.parse(process.env.KTU_NOTEBOOK_PARAMS ?? "{}");
const params = {
  // The default model and npm start's settings: seeds [1, 2, 3], maxLen from the model's prompt.json (reader 320,
  // stories260K 256), lr 2e-3, 1 epoch, batch 16, LoRA r 8 on all projections.
  ...pipelineDefaults(false, overrides.model),
  out: "../out",              // the folder npm start writes; finished steps are reused
  jobs: 1,                    // seeds one after another inside the kernel
  ...overrides,
};
"""),
    code("""
const bar = progress(1 + 5 * params.seeds.length, "evaluations");
let finished = 0;
const result = await runPipeline(params, (e) => { if (e.kind === "step" && e.state !== "started" && e.step.endsWith("evaluate")) bar.update(++finished, e.step); });
const summary = summarizePipeline(result);
console.log(`model: ${summary.model.description.line}; prompts: ${summary.prompt.format}`);
console.log(`${result.evaluations.length} evaluations on ${summary.data.test.n} test rows; ${summary.seconds.toFixed(0)} s`);
"""),
    md("## The benchmark table (mean ± sd over seeds; strict scoring)"),
    code("""
display.table(aq.from(summary.arms.map((a) => ({ arm: a.label, "authors' label": a.paper_label, "known %": formatSpread(a.known), "unknown %": formatSpread(a.unknown), "overall %": formatSpread(a.overall), "collapsed seeds": `${a.collapsed_seeds}/${a.seeds.length}` }))));
"""),
    md("## Per seed, with 95% intervals and the collapse diagnostics"),
    code("""
display.table(aq.from(summary.arms.flatMap((a) => a.seeds.map((s) => ({ arm: a.label, seed: s.seed ?? "-", "known %": formatCi(s.known), "unknown %": formatCi(s.unknown), "overall %": formatCi(s.overall),
  "majority first word": `${(100 * s.diagnostics.majority_output_share).toFixed(0)}% "${s.diagnostics.majority_output}"`, "known refused %": s.known_refused.toFixed(1), "AUROC P(Sufficient)": formatCi(s.diagnostics.auroc_p_sufficient, 2), "ECE": s.ece_p_sufficient.toFixed(3) })))));
display.markdown(`**Verdict.** ${summary.pattern.verdict}\\n\\nWord-overlap reference (no model) on the same rows: AUROC ${formatCi(summary.overlap_reference_auroc, 2)}.`);
"""),
    code("display.plotly(diagnosticsChart(summary));"),
    md("## Calibration\n\nP(Sufficient) on the stage-1 prompt against answerability, for the base model and the US-Tuning model (first seed)."),
    code("""
const first = (arm: string) => result.evaluations.find((e) => e.arm === arm)!;
for (const arm of ["base", "stage1", "stage1_stage2"]) display.plotly(reliabilityDiagram(first(arm).evaluation.calibration.p_sufficient, { title: `Reliability of P(Sufficient): ${arm}` }));
"""),
    code("""
display.plotly(riskCoverageCurve(PIPELINE_ARMS.map((a) => ({ name: a.label, curve: first(a.id).evaluation.calibration.p_sufficient.risk_coverage, aurc: first(a.id).evaluation.calibration.p_sufficient.aurc })),
  { title: "Risk vs coverage, abstaining on low P(Sufficient)" }));
"""),
    code("""
display.table(aq.from(PIPELINE_ARMS.map((a) => { const c = first(a.id).evaluation.calibration.p_sufficient; return { arm: a.label, n: c.n, "ECE (15 bins)": c.ece_equal_width_15.toFixed(3), Brier: c.brier.toFixed(3), AUROC: c.auroc?.toFixed(3) ?? "n/a", AURC: c.aurc.toFixed(3), "null ECE p95": c.null_ece?.p95.toFixed(3) ?? "n/a" }; })));
"""),
    md("""
## All three benchmarks

The main job runs each of bAbI task 1, SQuAD v1.1 and ASQA with its own six arms (the tables above are
those of ASQA, as before). Here each benchmark's table in the shape of the paper's figure (base, stage 1,
US-Tuning, then the ablations; seed means with 95% cluster-bootstrap intervals), the answers that need no
model beside them, the pattern stated with its intervals, and each benchmark's diagnostics.
"""),
    code("""
import { benchmarkTableRows } from "know-the-unknown";
for (const b of Object.values(summary.benchmarks)) {
  display.markdown(`### ${b.title} (${b.test_rows} test rows)`);
  display.table(aq.from(benchmarkTableRows(b).map(([setting, label, known, unknown, overall, seeds, collapsed, auroc]) => ({ setting, "authors' label": label, "known %": known, "unknown %": unknown, "overall %": overall, seeds, "collapsed seeds": collapsed, "AUROC P(Sufficient)": auroc }))));
  display.markdown(`${b.statement}\\n\\n**Verdict.** ${b.pattern.verdict}`);
  display.plotly(diagnosticsChart(summary, b));
}
"""),
]

NOTEBOOKS["05-paper-figure"] = [
    md("""
# 5. The paper's figure, and ours beside it

The only numbers of the paper that can be recovered are in the authors' plotting script `temp.py`
(paper.md 4.2): Llama-2-7b-chat, known ("positive") and unknown ("negative") accuracy and their harmonic
mean ("F1 Score"). Below: that figure redrawn as the script draws it, then our own runs in the same layout.
**Every bar names its source; the authors' numbers are theirs, not ours.** The model is the default one, printed by the cell that loads it: the reader
(`data/models/reader/reader.bin`, a 1.33M-parameter Llama trained from scratch by `recipes/reader`, see
`data/models/reader/MODEL_CARD.md`, asked with the prompts its `prompt.json` declares) when its weights are
there, else stories260K (`data/models/stories260K`).
"""),
    code("""
import { TEMP_PY_ROWS, accuracyBarChart, runPipeline, pipelineDefaults, summarizePipeline, formatSpread, oursBarChart, paperComparisonChart } from "know-the-unknown";
import * as aq from "arquero";
"""),
    params_cell("""
const overrides = JSON.parse(process.env.KTU_NOTEBOOK_PARAMS ?? "{}");
const params = {
  ...pipelineDefaults(false, overrides.model),   // the default model and the main job's settings; the same folder reuses npm start's results
  out: "../out",
  jobs: 1,
  ...overrides,
};
"""),
    md("## The authors' figure (source: authors' temp.py)"),
    code("""
display.plotly(accuracyBarChart(TEMP_PY_ROWS, { title: "Authors' numbers (temp.py, Llama-2-7b-chat): source authors, not ours" }));
"""),
    md("## Our runs in the same layout"),
    code("""
const result = await runPipeline(params);
const summary = summarizePipeline(result);
console.log(`model: ${summary.model.description.line}`);
display.plotly(accuracyBarChart(summary.arms.map((a) => ({ label: a.paper_label, overall: a.overall.mean, known: a.known.mean, unknown: a.unknown.mean, source: `${summary.source}, mean of ${a.seeds.length} seed(s)` })),
  { title: `Ours (${summary.source.replace(/^ours: /, "")}): the same layout, y from 0`, ylim: [0, 100] }));
display.plotly(oursBarChart(summary));
"""),
    code("display.plotly(paperComparisonChart(summary));"),
    md("## What differs between the two settings"),
    code("""
const s = summary.settings;
display.table(aq.from([
  { aspect: "model", authors: "Llama-2-7b-chat (7B parameters, 4,096 positions)", ours: `${summary.model.description.line} (${summary.model.params.toLocaleString("en")} parameters, ${summary.model.config.seqLen} positions)` },
  { aspect: "stage-1 data", authors: "ASQA train benchmark (size not stated), first 1,000 examples", ours: `${summary.data.sets.stage1.examples} examples from the train side of 400 ASQA dev items` },
  { aspect: "stage-2 data", authors: "HotpotQA + GPT-4 replies with CHECKING", ours: `${summary.data.sets.stage2.examples} HotpotQA examples, replies built offline and checked by verifiers` },
  { aspect: "prompts", authors: "full templates (TASK_COGNITION, TASK_PROMPT, LLAMA2_CHAT + task assignment)", ours: `compact one-line prompts (${summary.prompt.format}), passages cropped ${s.contextChars ? `to ${s.contextChars} characters around the answer, then ` : ""}to fit ${s.maxLen} tokens` },
  { aspect: "training", authors: "LoRA r 8 on q,v; lr 4e-5 (stage 1) and 5e-5 (stage 2), 1 and 5 epochs, bf16", ours: `LoRA r ${s.loraRank} on ${s.loraTargets.join(",")}; lr ${s.learningRate}, ${s.maxSteps > 0 ? `${s.maxSteps} steps` : `${s.epochs} epoch(s)`}, fp32, TF.js on CPU` },
  { aspect: "test set", authors: "not stated (no split in the code)", ours: `${summary.data.test.n} rows of the held-apart side, cluster-bootstrap intervals` },
  { aspect: "scoring", authors: "not stated (the code's metric changed over time)", ours: "strict span match for known answers; refusal keywords for unknown" },
  { aspect: "seeds", authors: "1 (not stated)", ours: s.seeds.join(", ") },
]));
display.table(aq.from(summary.arms.map((a) => { const p = summary.authors_temp_py.find((r) => r.label === a.paper_label); return { setting: a.label, "authors known / unknown (temp.py)": p ? `${p.known} / ${p.unknown}` : "-", "ours known / unknown": `${formatSpread(a.known)} / ${formatSpread(a.unknown)}` }; })));
display.markdown(`**Does our run show the paper's pattern?** ${summary.pattern.verdict}`);
"""),
    md("""
## Ours on all three benchmarks

The same layout for each benchmark the main job ran (bAbI task 1, SQuAD v1.1, ASQA): the authors have
numbers for ASQA alone, so these are ours only, with each benchmark's pattern stated with its intervals.
"""),
    code("""
for (const b of Object.values(summary.benchmarks)) {
  display.plotly(oursBarChart(summary, b));
  display.markdown(`**${b.title}.** ${b.statement} ${b.pattern.verdict}`);
}
"""),
]

NOTEBOOKS["06-full-size-with-llamafactory"] = [
    md("""
# 6. Full size: Llama-2-7B through LLaMA-Factory

The paper's own setting: LoRA on Llama-2-7b-chat with the authors' configs (paper.md 2.1), run by
LLaMA-Factory on GPUs (`docs/llamafactory.md`; `modelPath` may be a folder or `hf:meta-llama/Llama-2-7b-chat-hf`
with `HF_TOKEN` set), then evaluated through an OpenAI-compatible endpoint
(for example `llamafactory-cli api` or vLLM) with the paper's full prompts. Without a GPU, LLaMA-Factory
or the weights, the notebook says so and skips the heavy cells; the configs are still written and checked.
"""),
    code("""
import { buildAllDatasets, paperTrainConfigs, toYaml, runLfPipeline, lfJobs, lfJobsTable, lfLossFigure, resolveLfCli, readBenchmark,
  OpenAICompatibleSource, runBenchmark, TASK_ASSIGNMENT, scoreRow, summarizeRows } from "know-the-unknown";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import * as aq from "arquero";
"""),
    params_cell("""
const params = {
  modelPath: process.env.KTU_LLAMA2_7B ?? "/models/llama-2-7b-chat-hf",
  outDir: "../out/llamafactory-runs",
  gpus: [0],
  ablations: [] as string[],                  // e.g. ["stage1-qa", "stage2-only", "qa-only"]
  endpoint: process.env.KTU_ENDPOINT ?? "",   // e.g. http://localhost:8000/v1 serving the final model
  servedModel: "us-tuning",
  testRows: 50,
  ...JSON.parse(process.env.KTU_NOTEBOOK_PARAMS ?? "{}"),
};
"""),
    code("""
const has = (cmd: string, args: string[]) => { try { execFileSync(cmd, args, { stdio: "ignore", timeout: 20000 }); return true; } catch { return false; } };
const gpu = has("nvidia-smi", ["-L"]);
const lf = has(resolveLfCli()[0], ["version"]);
const weights = params.modelPath.startsWith("hf:") || existsSync(`${params.modelPath}/config.json`);
const ready = gpu && lf && weights;
display.table(aq.from([{ check: "NVIDIA GPU (nvidia-smi)", found: gpu }, { check: `LLaMA-Factory (${resolveLfCli().join(" ")})`, found: lf }, { check: `weights at ${params.modelPath}`, found: weights }]));
display.markdown(ready ? "Everything is here: the training cells run." : "**Skipped:** this machine lacks " + [!gpu && "a GPU", !lf && "LLaMA-Factory", !weights && "the Llama-2-7B weights"].filter(Boolean).join(", ") + ". The configs below are still built and shown; set `KTU_LLAMA2_7B` and install LLaMA-Factory on a GPU machine to run the rest.");
"""),
    md("## The data and the paper's configs"),
    code("""
const built = await buildAllDatasets({ outDir: "../out/data" });
const configs = paperTrainConfigs({ modelPath: params.modelPath, datasetDir: built.llamafactory.dir, outputRoot: params.outDir });
display.table(aq.from(Object.entries(configs).map(([name, c]) => ({ config: name, dataset: c.dataset, learning_rate: c.learning_rate, epochs: c.num_train_epochs, base: String(c.model_name_or_path).split("/").at(-1) }))));
console.log(toYaml(Object.values(configs)[0]));
"""),
    md("## Stage 1, merge, stage 2, merge (and ablations)"),
    code("""
if (ready) {
  const view = display.table(lfJobsTable(lfJobs()));
  const result = await runLfPipeline({ modelPath: params.modelPath, datasetDir: built.llamafactory.dir, outDir: params.outDir, gpus: params.gpus, ablations: params.ablations as never,
    onStep: (e) => { console.log(`${e.type}: ${e.step.name}`); view.update(lfJobsTable(lfJobs())); } });
  console.log(result.status, result.steps);
} else console.log("skipped: no GPU / LLaMA-Factory / weights");
"""),
    md("""
## A real hub model on a CPU

The same pipeline runs on a small real model by its hub name, e.g. `hf:HuggingFaceTB/SmolLM2-135M-Instruct`
(template `smollm2`) or `hf:Qwen/Qwen2.5-0.5B-Instruct` (template `qwen`): ktu downloads it into the
huggingface_hub cache that LLaMA-Factory reads too, and the paper's YAMLs run with `use_cpu: true` (bf16 on a
CPU needs it). It only downloads when `params.hubModel` is set (or `KTU_HUB_MODEL`), and needs LLaMA-Factory
(`scripts/install-llamafactory.sh`). How long each stage takes is estimated below from a same-shaped random
model on ktu's in-process trainer (`bench/real-model-stage-estimate.ts`), not measured on the real run.
"""),
    code("""
import { readFileSync as readText } from "node:fs";
const hubModel = process.env.KTU_HUB_MODEL ?? (params as { hubModel?: string }).hubModel ?? "";
for (const shape of ["smollm2-135m", "smollm2-135m-torch"]) {
  try {
    const e = JSON.parse(readText(`../bench/results/stage-estimate-${shape}.json`, "utf8"));
    display.table(aq.from([{ shape: e.shape, engine: e.backend === "wasm" || e.backend === "cpu" ? `ktu in-process (TF.js ${e.backend})` : e.backend, "load average": e.loadavg, "tokens/example": e.tokensPerExample, "ms/example": e.msPerExample, "stage 1 (1000 ex.) h": e.stage1Hours, "stage 2 (5 x 1000 ex.) h": e.stage2Hours, measured: e.measuredAt.slice(0, 10) }]));
  } catch { console.log(`no estimate for ${shape}: run node --import tsx bench/real-model-stage-estimate.ts --shape ${shape} (--backend cpu where wasm runs out of its 4 GB)`); }
}
if (hubModel && lf) {
  const result = await runLfPipeline({ modelPath: hubModel, template: hubModel.includes("Qwen") ? "qwen" : "smollm2", datasetDir: built.llamafactory.dir, outDir: "../out/hub-model-runs",
    trainOverrides: { use_cpu: true, max_samples: 200 }, env: { DISABLE_VERSION_CHECK: "1" }, onStep: (e) => console.log(`${e.type}: ${e.step.name}`) });
  console.log(result.status, result.steps, result.finalModel);
} else console.log(hubModel ? "skipped: LLaMA-Factory is not installed" : "skipped: set params.hubModel (or KTU_HUB_MODEL), e.g. hf:HuggingFaceTB/SmolLM2-135M-Instruct, to download and train it");
"""),
    md("## Evaluation through an OpenAI-compatible endpoint\n\nThe paper's evaluation prompt (LLAMA2_CHAT with the task assignment) on the held-apart test side."),
    code("""
if (params.endpoint) {
  const rows = readBenchmark(built.paths.splitPaperTest).slice(0, params.testRows);
  const source = new OpenAICompatibleSource({ baseUrl: params.endpoint, model: params.servedModel });
  const { predictions, errors } = await runBenchmark(rows, source, { prompt: "llama2_chat", taskAssignment: TASK_ASSIGNMENT });
  const gold = new Map(rows.map((r) => [String(r.id), r.pos_answer]));
  const s = summarizeRows(predictions.map((p) => scoreRow(String(p.id), gold.get(String(p.id))!, p.pos_prediction, p.neg_prediction, "strict")));
  display.table(aq.from([{ model: params.servedModel, n: s.n, "known %": s.known_acc.toFixed(1), "unknown %": s.unknown_acc.toFixed(1), "overall %": s.overall.toFixed(1), errors: errors.length }]));
} else console.log("skipped: set params.endpoint (or KTU_ENDPOINT) to an OpenAI-compatible server of the trained model");
"""),
]


def keep_outputs(cells, path: Path):
    """The new sources in the saved notebook, its outputs and formatting untouched; returns its JSON and the changed cells."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    if len(saved["cells"]) > len(cells):
        sys.exit(f"{path}: {len(saved['cells'])} saved cells, {len(cells)} now; --keep-outputs needs the same cells, or new ones at the end (re-execute instead)")
    # New cells at the end come in without outputs (not executed yet).
    for new in cells[len(saved["cells"]):]:
        cell = json.loads(nbformat.writes(new_notebook(cells=[new])))["cells"][0]
        cell["source"] = new.source.splitlines(keepends=True)
        saved["cells"].append(cell)
    changed = []
    for i, (new, old) in enumerate(zip(cells, saved["cells"])):
        if new.cell_type != old["cell_type"]:
            sys.exit(f"{path}: cell {i} was {old['cell_type']}, is {new.cell_type} now")
        if new.source != "".join(old["source"]):
            changed.append(i)
            old["source"] = new.source.splitlines(keepends=True)
    return json.dumps(saved, indent=1, ensure_ascii=False) + "\n", changed


def main(args):
    # --keep-outputs: put the sources into the saved notebooks without dropping their outputs (the cells
    # that changed then show outputs of their old source until scripts/execute-notebooks.sh runs them).
    keep = "--keep-outputs" in args
    names = [a for a in args if a != "--keep-outputs"]
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        path = out / f"{name}.ipynb"
        if keep:
            text, changed = keep_outputs(cells, path)
            path.write_text(text, encoding="utf-8")
            print(f"updated the sources of notebooks/{name}.ipynb, outputs kept; changed cells (re-execute them): {changed}")
            continue
        nb = new_notebook(cells=cells, metadata={"kernelspec": KERNEL, "language_info": {"name": "typescript", "file_extension": ".ts"}})
        nbformat.write(nb, path)
        print(f"wrote notebooks/{name}.ipynb ({len(cells)} cells)")


if __name__ == "__main__":
    main(sys.argv[1:])
