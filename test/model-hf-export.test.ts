import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { initBackend } from "../src/model/backend.ts";
import { Decoder } from "../src/model/decode.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { exportModel } from "../src/model/export-cli.ts";
import { HfTokenizer } from "../src/model/hf-tokenizer.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import type { LlamaModelData } from "../src/model/types.ts";
import { LoraAdapter, mergeLora } from "../src/train/lora.ts";
import { dataPath } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";
import { runKtu } from "./helpers/cli.ts";
import { findPython, runPython } from "./helpers/python.ts";

const modelBin = dataPath("models", "stories260K", "stories260K.bin");
const tokBin = dataPath("models", "stories260K", "tok512.bin");
const PROMPT = "Once upon a time";

function greedy(model: LlamaModelData, prompt: number[], n: number): number[] {
  const decoder = new Decoder(model);
  const cache = decoder.newCache(prompt.length + n);
  let logits = decoder.prefill(cache, prompt);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
    out.push(best);
    logits = decoder.step(cache, best);
  }
  return out;
}

/** Texts for tokenizer parity: stories, punctuation, whitespace runs, non-ASCII (byte fallback), empty. */
const TEXTS = [
  "", " ", "a", "  two  spaces ", "Once upon a time, there was a little girl named Lily.", "Hello, world! 123 4567",
  "Lily and Ben went to the park.\nThey played.\n\n", "tab\there", "ünïcödé ✓ 日本語 🚀", "Tim's dog \"Max\" (5) ran: fast; slow?",
  "zzzz qqq xyzzy", "the the the", "ALL CAPS SHOUTING", "\u00e9t\u00e9", "~`!@#$%^&*()_+-={}[]|\\:;'<>,.?/",
];

/** An adapter with non-zero B on q, k and v, so the merge and the PEFT permutation matter. */
function trainedAdapter(model: LlamaModelData): LoraAdapter {
  const rng = new Rng(7);
  const adapter = LoraAdapter.create(model.config, { rank: 4, alpha: 8, dropout: 0, targets: ["wq", "wk", "wv"] }, rng);
  for (const p of adapter.parameters) if (p.kind === "B") adapter.setValues(p, Float32Array.from(p.values, () => (rng.next() - 0.5) * 0.2));
  return adapter;
}

let exported: { dir: string; adapterDir: string; mergedDir: string; peftDir: string } | undefined;
async function exports() {
  if (exported) return exported;
  await initBackend();
  const root = mkdtempSync(join(tmpdir(), "ktu-hf-export-"));
  const dir = join(root, "hf");
  await exportModel({ model: modelBin, tokenizer: tokBin, out: dir, template: "llama2" });
  const adapterDir = join(root, "adapter");
  const adapter = trainedAdapter(loadLlama2c(modelBin));
  await adapter.save(adapterDir, modelBin);
  adapter.dispose();
  const mergedDir = join(root, "merged");
  await exportModel({ model: modelBin, tokenizer: tokBin, adapter: adapterDir, out: mergedDir });
  const peftDir = join(root, "peft");
  await exportModel({ model: modelBin, tokenizer: tokBin, adapter: adapterDir, out: peftDir, format: "peft", baseModelName: dir });
  exported = { dir, adapterDir, mergedDir, peftDir };
  return exported;
}

test("the tokenizer.json made from tok512.bin encodes every text as run.c's encode does", async () => {
  const { dir } = await exports();
  const llama = Llama2cTokenizer.load(tokBin, 512);
  const hf = HfTokenizer.fromDir(dir);
  const story = readFileSync(dataPath("models", "stories260K", "PROVENANCE.md"), "utf8").replace(/<\/?s>|<unk>|\u2581/g, "");
  const texts = [...TEXTS];
  for (let i = 0; i < story.length; i += 61) texts.push(story.slice(i, i + 120));
  for (const text of texts) assert.deepEqual(hf.encode(text, { bos: true }), llama.encode(text, { bos: true }), JSON.stringify(text));
  // run.c's own encodings (data/models/stories260K/reference).
  const cases = JSON.parse(readFileSync(dataPath("models", "stories260K", "reference", "tokenizer_encode_cases.json"), "utf8")) as { text: string; ids_bos1_eos0: number[] }[];
  for (const c of cases) assert.deepEqual(hf.encode(c.text, { bos: true }), c.ids_bos1_eos0, JSON.stringify(c.text));
  const config = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
  assert.equal(config.bos_token, "<s>");
  assert.match(config.chat_template, /\[INST\]/);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8")).eos_token_id, [2, 1]);
});

test("ktu model export --format hf: ktu generate on the folder prints exactly what it prints on the llama2.c files", () => {
  const root = mkdtempSync(join(tmpdir(), "ktu-hf-cli-"));
  const out = join(root, "hf");
  const r = runKtu(["model", "export", "--format", "hf", "--model", modelBin, "--tokenizer", tokBin, "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) assert.ok(existsSync(join(out, f)), f);
  const args = ["--prompt", PROMPT, "--steps", "60", "--temperature", "0"];
  const original = runKtu(["generate", "--model", modelBin, "--tokenizer", tokBin, ...args]);
  const fromHf = runKtu(["generate", "--model", out, ...args]);
  assert.equal(original.status, 0, original.stderr);
  assert.equal(fromHf.status, 0, fromHf.stderr);
  assert.ok(original.stdout.length > 100);
  assert.equal(fromHf.stdout, original.stdout);
  const bad = runKtu(["model", "export", "--model", modelBin, "--adapter", root, "--out", join(root, "x")]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--adapter .* is not a LoRA adapter folder \(no adapter_config\.json\)/);
});

test("--adapter merges into the exported weights; --format peft writes the adapter permuted for the HF layout", async () => {
  const { dir, adapterDir, mergedDir, peftDir } = await exports();
  const base = loadLlama2c(modelBin);
  const adapter = LoraAdapter.load(adapterDir, base.config);
  const ours = mergeLora(base, adapter);
  adapter.dispose();
  const prompt = Llama2cTokenizer.load(tokBin, 512).encode(PROMPT, { bos: true });
  const expected = greedy(ours, prompt, 40);
  assert.deepEqual(greedy(loadHfModel(mergedDir), prompt, 40), expected);
  // The PEFT adapter applied to the exported (rotate-half) base gives the same model.
  const hfBase = loadHfModel(dir);
  const peft = LoraAdapter.load(peftDir, hfBase.config);
  assert.deepEqual(greedy(mergeLora(hfBase, peft), prompt, 40), expected);
  peft.dispose();
  const config = JSON.parse(readFileSync(join(peftDir, "adapter_config.json"), "utf8"));
  assert.deepEqual([config.peft_type, config.task_type, config.r, config.base_model_name_or_path], ["LORA", "CAUSAL_LM", 4, dir]);
  assert.deepEqual(config.target_modules, ["q_proj", "k_proj", "v_proj"]);
});

const py = findPython(["torch", "transformers", "peft"]);
test("transformers loads the export with AutoModelForCausalLM/AutoTokenizer and continues the prompt as ktu does; peft loads the adapter", { skip: py.skip }, async () => {
  const { dir, mergedDir, peftDir } = await exports();
  const llama = Llama2cTokenizer.load(tokBin, 512);
  const prompt = llama.encode(PROMPT, { bos: true });
  const code = `
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
base_dir, merged_dir, peft_dir, prompt, texts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
tok = AutoTokenizer.from_pretrained(base_dir)
model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
ids = tok(prompt, return_tensors="pt").input_ids
gen = model.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=None, pad_token_id=0)[0][ids.shape[1]:].tolist()
merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
gen_merged = merged.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=None, pad_token_id=0)[0][ids.shape[1]:].tolist()
with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), peft_dir)
diff = (with_adapter(ids).logits - merged(ids).logits).abs().max().item()
print(json.dumps({"prompt_ids": ids[0].tolist(), "gen": gen, "gen_merged": gen_merged, "peft_vs_merged": diff,
  "encoded": [tok(t)["input_ids"] for t in texts], "decoded": tok.decode(gen, skip_special_tokens=True),
  "chat": tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)}))
`;
  const answer = runPython(py.python!, code, [dir, mergedDir, peftDir, PROMPT, JSON.stringify(TEXTS)]) as {
    prompt_ids: number[];
    gen: number[];
    gen_merged: number[];
    peft_vs_merged: number;
    encoded: number[][];
    decoded: string;
    chat: string;
  };
  assert.deepEqual(answer.prompt_ids, prompt, "AutoTokenizer adds BOS and the dummy-prefix space as run.c does");
  TEXTS.forEach((text, i) => assert.deepEqual(answer.encoded[i], llama.encode(text, { bos: true }), JSON.stringify(text)));
  assert.deepEqual(answer.gen, greedy(loadLlama2c(modelBin), prompt, 40), "greedy continuation");
  assert.deepEqual(answer.gen_merged, greedy(loadHfModel(mergedDir), prompt, 40));
  assert.ok(answer.peft_vs_merged < 1e-4, `peft base+adapter vs merged logits differ by ${answer.peft_vs_merged}`);
  assert.equal(answer.decoded, llama.decode(answer.gen, prompt.at(-1)));
  assert.equal(answer.chat, "<s>[INST] hi [/INST]");
});
