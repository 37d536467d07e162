import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend } from "../src/model/backend.ts";
import { chatTemplateJinja, encodeChatTurns, getChatTemplate, renderChat } from "../src/model/chat-templates.ts";
import { loadHfModel, saveHfModel } from "../src/model/hf.ts";
import { gpt2TokenizerConfig, gpt2TokenizerJson, HfTokenizer } from "../src/model/hf-tokenizer.ts";
import { openModel } from "../src/model/open.ts";
import { TfLlama } from "../src/model/llama-tf.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { serializeSafetensors } from "../src/model/safetensors.ts";
import type { LlamaModelData } from "../src/model/types.ts";
import { dataPath } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";

const stories = loadLlama2c(dataPath("models/stories260K/stories260K.bin"));
const ids = Int32Array.from([1, 403, 407, 261, 378, 432, 383, 286]);
const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test("HF Llama folder: stories260K saved as LlamaForCausalLM (rotate-half) loads back to the same logits, in fp32 and bf16", async () => {
  await initBackend("wasm");
  const dir = mkdtempSync(join(tmpdir(), "ktu-hf-"));
  await saveHfModel(dir, stories);
  const loaded = loadHfModel(dir);
  assert.equal(loaded.config.ropeStyle, "rotate-half");
  assert.equal(loaded.config.tiedEmbeddings, true);
  const base = new TfLlama(stories).logits(ids, 1, ids.length);
  assert.ok(maxAbsDiff(new TfLlama(loaded).logits(ids, 1, ids.length), base) < 1e-4);
  // A tokenizer whose ids do not fit the model's vocabulary is refused, naming the tokenizer file.
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(gpt2TokenizerJson()));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(gpt2TokenizerConfig));
  assert.throws(() => openModel(dir), /tokenizer\.json, field vocab: the tokenizer has 50257 tokens but the model .*config\.json has only vocab_size 512/);
  const bf16 = mkdtempSync(join(tmpdir(), "ktu-hf-bf16-"));
  await saveHfModel(bf16, stories, { dtype: "BF16" });
  const diff = maxAbsDiff(new TfLlama(loadHfModel(bf16)).logits(ids, 1, ids.length), base);
  assert.ok(diff > 0 && diff < 1.5, `bf16 rounding moves the logits a little: ${diff}`);
});

/** A tiny random Qwen2 (q/k/v biases, untied head, GQA) written in Hugging Face naming. */
function writeTinyQwen2(dir: string, fp16: boolean): LlamaModelData {
  const rng = new Rng(11);
  const r = (n: number, s = 0.2) => Float32Array.from({ length: n }, () => rng.normal() * s);
  const dim = 16, hidden = 24, heads = 4, kvHeads = 2, vocab = 40, layers = 2, kv = (dim / heads) * kvHeads;
  const data: LlamaModelData = {
    config: { arch: "llama", dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKvHeads: kvHeads, vocabSize: vocab, seqLen: 64, normEps: 1e-6, ropeTheta: 1e6, ropeStyle: "rotate-half", tiedEmbeddings: false },
    weights: {
      tokenEmbedding: r(vocab * dim, 1),
      finalNorm: Float32Array.from({ length: dim }, () => 1 + rng.normal() * 0.1),
      lmHead: r(vocab * dim),
      layers: Array.from({ length: layers }, () => ({
        attnNorm: Float32Array.from({ length: dim }, () => 1), ffnNorm: Float32Array.from({ length: dim }, () => 1),
        wq: r(dim * dim), wk: r(kv * dim), wv: r(kv * dim), wo: r(dim * dim), w1: r(hidden * dim), w2: r(dim * hidden), w3: r(hidden * dim),
        bq: r(dim), bk: r(kv), bv: r(kv),
      })),
    },
  };
  const t: Record<string, { data: Float32Array; shape: number[]; dtype?: "F16" }> = {};
  const put = (name: string, a: Float32Array, shape: number[]) => (t[name] = { data: a, shape, ...(fp16 ? { dtype: "F16" as const } : {}) });
  put("model.embed_tokens.weight", data.weights.tokenEmbedding, [vocab, dim]);
  put("lm_head.weight", data.weights.lmHead, [vocab, dim]);
  put("model.norm.weight", data.weights.finalNorm, [dim]);
  data.weights.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    put(`${p}input_layernorm.weight`, l.attnNorm, [dim]); put(`${p}post_attention_layernorm.weight`, l.ffnNorm, [dim]);
    put(`${p}self_attn.q_proj.weight`, l.wq, [dim, dim]); put(`${p}self_attn.k_proj.weight`, l.wk, [kv, dim]);
    put(`${p}self_attn.v_proj.weight`, l.wv, [kv, dim]); put(`${p}self_attn.o_proj.weight`, l.wo, [dim, dim]);
    put(`${p}self_attn.q_proj.bias`, l.bq!, [dim]); put(`${p}self_attn.k_proj.bias`, l.bk!, [kv]); put(`${p}self_attn.v_proj.bias`, l.bv!, [kv]);
    put(`${p}mlp.gate_proj.weight`, l.w1, [hidden, dim]); put(`${p}mlp.up_proj.weight`, l.w3, [hidden, dim]); put(`${p}mlp.down_proj.weight`, l.w2, [dim, hidden]);
  });
  writeFileSync(join(dir, "model.safetensors"), serializeSafetensors(t));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: dim, intermediate_size: hidden, num_hidden_layers: layers, num_attention_heads: heads, num_key_value_heads: kvHeads, vocab_size: vocab, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: false, hidden_act: "silu", torch_dtype: fp16 ? "float16" : "float32" }));
  return data;
}

test("HF Qwen2 naming with biases and an untied head (fp32 and fp16); bad folders fail naming file and field", async () => {
  await initBackend("wasm");
  const dir = mkdtempSync(join(tmpdir(), "ktu-qwen-"));
  const truth = writeTinyQwen2(dir, false);
  const loaded = loadHfModel(dir);
  assert.deepEqual(loaded.weights.layers[1]!.bv, truth.weights.layers[1]!.bv);
  assert.equal(loaded.config.nKvHeads, 2);
  const seq = Int32Array.from([3, 7, 1, 30, 12]);
  const want = new TfLlama(truth).logits(seq, 1, seq.length);
  assert.deepEqual(new TfLlama(loaded).logits(seq, 1, seq.length), want);
  // Biases matter: without them the logits differ.
  const noBias = { ...truth, weights: { ...truth.weights, layers: truth.weights.layers.map(({ bq: _q, bk: _k, bv: _v, ...l }) => l) } };
  assert.ok(maxAbsDiff(new TfLlama(noBias).logits(seq, 1, seq.length), want) > 1e-3);
  const half = mkdtempSync(join(tmpdir(), "ktu-qwen16-"));
  writeTinyQwen2(half, true);
  assert.ok(maxAbsDiff(new TfLlama(loadHfModel(half)).logits(seq, 1, seq.length), want) < 2e-2);

  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, architectures: ["GPTNeoXForCausalLM"] }));
  assert.throws(() => loadHfModel(dir), /config\.json.*field architectures.*GPTNeoXForCausalLM.*not supported/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, rope_scaling: { type: "linear", factor: 2 } }));
  assert.throws(() => loadHfModel(dir), /config\.json.*field rope_scaling/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, hidden_size: 32 }));
  assert.throws(() => loadHfModel(dir), /model\.safetensors.*embed_tokens.*shape.*\[40,32\]/);
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  writeFileSync(join(dir, "model.safetensors"), readFileSync(join(dir, "model.safetensors")).subarray(0, 3000));
  assert.throws(() => loadHfModel(dir), /model\.safetensors.*truncated/);
});

test("GPT-2 tokenizer from encoder.json + vocab.bpe matches all reference vectors", () => {
  const tok = HfTokenizer.gpt2();
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.eosId, 50256);
  const ref = dataPath("models/gpt2-tokenizer/reference");
  const inputs = readFileSync(join(ref, "ggml-vocab-gpt-2.gguf.inp"), "utf8").split("\n__ggml_vocab_test__\n");
  const outputs = readFileSync(join(ref, "ggml-vocab-gpt-2.gguf.out"), "utf8").split("\n");
  let checked = 0;
  inputs.forEach((text, i) => {
    if (i >= outputs.length || (text === "" && i === inputs.length - 1)) return;
    const want = outputs[i]!.trim() === "" ? [] : outputs[i]!.trim().split(/\s+/).map(Number);
    assert.deepEqual(tok.encode(text), want, JSON.stringify(text));
    checked++;
  });
  const hfTik = JSON.parse(readFileSync(join(ref, "gpt2_hf_tik_testdata.json"), "utf8")) as { samples: { text: string; ids: number[] }[] };
  for (const s of hfTik.samples) {
    assert.deepEqual(tok.encode(s.text), s.ids, s.text);
    assert.equal(tok.decode(s.ids), s.text);
  }
  const gpt3 = JSON.parse(readFileSync(join(ref, "gpt3_encoder_test_cases.json"), "utf8")) as { cases: { text: string; ids: number[] }[] };
  for (const c of gpt3.cases) assert.deepEqual(tok.encode(c.text), c.ids, c.text);
  assert.ok(checked >= 40, `${checked} llama.cpp cases`);
  assert.deepEqual(tok.encode("Hello", { bos: true, eos: true }), [50256, 15496, 50256]);
  assert.throws(() => tok.checkVocab(512, "stories260K.bin"), /encoder\.json.*field vocab.*50257.*512/);
});

test("chat templates: LLaMA-Factory token layout and the same text through Jinja", () => {
  const tok = HfTokenizer.gpt2();
  const qwenLike = { ...tok, encode: tok.encode.bind(tok), decode: tok.decode.bind(tok), bosId: tok.bosId, eosId: tok.eosId, vocabSize: tok.vocabSize, tokenToId: (t: string) => (t === "<|im_end|>" ? 7 : tok.tokenToId(t)) };
  const messages = [{ role: "user" as const, content: "What is 2+2?" }, { role: "assistant" as const, content: "4" }];
  const [[prompt, response]] = encodeChatTurns(getChatTemplate("qwen"), qwenLike, messages) as [[number[], number[]]];
  assert.equal(response.at(-1), 7, "qwen ends the answer with <|im_end|> as EOS");
  assert.equal(tok.decode(prompt), "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  const llama2 = getChatTemplate("llama2");
  const [[p2, r2]] = encodeChatTurns(llama2, tok, messages, "Be brief.") as [[number[], number[]]];
  assert.equal(p2[0], tok.bosId);
  assert.equal(tok.decode(p2), "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST]");
  assert.deepEqual(r2, [...tok.encode("4"), tok.eosId]);
  // The Jinja rendering gives the same text as the slots.
  assert.equal(renderChat(llama2, [{ role: "system", content: "Be brief." }, ...messages], { bos: "<s>", eos: "</s>" }), "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST]4</s>");
  assert.equal(renderChat(getChatTemplate("mistral"), [{ role: "user", content: "Hi" }], { bos: "<s>", eos: "</s>" }), "<s>[INST] Hi [/INST]");
  assert.equal(renderChat(getChatTemplate("llama3"), [{ role: "user", content: "Hi" }], { bos: "<|begin_of_text|>", eos: "x" }), "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  assert.match(chatTemplateJinja(getChatTemplate("qwen")), /You are a helpful assistant/);
  assert.throws(() => getChatTemplate("vicuna2"), /unknown chat template "vicuna2"/);
});
