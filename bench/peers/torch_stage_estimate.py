"""The PyTorch side of bench/real-model-stage-estimate.ts: a random model of a hub model's shape (no download),
LoRA r=8 on q_proj,v_proj via peft, AdamW, batch 1 x SEQ tokens, on the CPU as LLaMA-Factory runs it there.
Prints JSON: ms per example (median after one warm-up step) and the stage hours it implies.
Usage: python bench/peers/torch_stage_estimate.py [smollm2-135m|qwen2.5-0.5b] [SEQ] [STEPS]"""
import json, os, sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from peft import LoraConfig, get_peft_model

shape = sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m"
seq = int(sys.argv[2]) if len(sys.argv) > 2 else 128
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.manual_seed(0)
if shape == "smollm2-135m":
    model = LlamaForCausalLM(LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000, tie_word_embeddings=True))
else:
    model = Qwen2ForCausalLM(Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000, tie_word_embeddings=True))
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(3, model.config.vocab_size, (1, seq))
times = []
for _ in range(steps + 1):
    t = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    times.append((time.perf_counter() - t) * 1000)
ms = sorted(times[1:])[len(times[1:]) // 2]
print(json.dumps({"shape": shape, "engine": f"PyTorch {torch.__version__} CPU ({torch.get_num_threads()} threads) + peft", "tokensPerExample": seq, "msPerExample": round(ms),
                  "stage1Hours": round(1000 * ms / 3.6e6, 2), "stage2Hours": round(5000 * ms / 3.6e6, 2), "cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]}))
