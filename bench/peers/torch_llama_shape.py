# Peer measurement for bench/lora-135m.ts: a Llama of a given shape with random weights in PyTorch CPU
# (RMSNorm, rotate-half RoPE, GQA through F.scaled_dot_product_attention, SwiGLU, tied embeddings).
#   lora:  LoRA (PEFT arithmetic: scale alpha/r, A random, B small random) on all seven projections,
#          AdamW on the adapters only, frozen base, loss on every position: one training step.
#   score: prefill of B prompts of T tokens, no gradient: the mean token NLL (logits at every position).
# Usage: python3 torch_llama_shape.py MODE DIM LAYERS HEADS KV_HEADS HIDDEN VOCAB B T THREADS STEPS RANK
# Prints one JSON line: median wall and CPU ms per step after 1 warm-up, peak RSS.
import json, math, resource, sys, time
import torch, torch.nn.functional as F
mode = sys.argv[1]
dim, L, H, KV, hidden, V, B, T, threads, steps, r = (int(x) for x in sys.argv[2:13])
torch.set_num_threads(threads); torch.manual_seed(0)
hs = dim // H
def w(*shape, std=0.02): return torch.randn(*shape) * std
emb = w(V, dim)
layers = [dict(an=torch.ones(dim), wq=w(dim, dim), wk=w(KV * hs, dim), wv=w(KV * hs, dim), wo=w(dim, dim), fn=torch.ones(dim),
               w1=w(hidden, dim), w3=w(hidden, dim), w2=w(dim, hidden)) for _ in range(L)]
fnorm = torch.ones(dim)
scale = 2.0  # alpha 2r
adapters = []
if mode == "lora":
    for l in layers:
        ad = {}
        for name in ["wq", "wk", "wv", "wo", "w1", "w3", "w2"]:
            out, inp = l[name].shape
            a = (torch.rand(r, inp) * 2 - 1) / math.sqrt(inp); b = torch.randn(out, r) * 0.01
            ad[name] = (a.requires_grad_(), b.requires_grad_())
        adapters.append(ad)
params = [t for ad in adapters for pair in ad.values() for t in pair]
opt = torch.optim.AdamW(params, lr=1e-4) if params else None
pos = torch.arange(T).float(); j = torch.arange(0, hs, 2).float(); ang = pos[:, None] * (10000 ** (-j / hs))[None, :]
cos = torch.cat([ang.cos(), ang.cos()], -1)[None, None]; sin = torch.cat([ang.sin(), ang.sin()], -1)[None, None]
def rope(x):  # B, h, T, hs, rotate-half
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin
def rms(x, g): return g * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
def proj(x, l, ad, name):
    y = x @ l[name].T
    if ad is not None:
        a, b = ad[name]; y = y + (x @ a.T) @ b.T * scale
    return y
def forward(ids):
    x = emb[ids]
    for i, l in enumerate(layers):
        ad = adapters[i] if adapters else None
        h = rms(x, l["an"])
        q = rope(proj(h, l, ad, "wq").view(B, T, H, hs).transpose(1, 2))
        k = rope(proj(h, l, ad, "wk").view(B, T, KV, hs).transpose(1, 2))
        v = proj(h, l, ad, "wv").view(B, T, KV, hs).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + proj(y.transpose(1, 2).reshape(B, T, dim), l, ad, "wo")
        h = rms(x, l["fn"])
        x = x + proj(F.silu(proj(h, l, ad, "w1")) * proj(h, l, ad, "w3"), l, ad, "w2")
    return rms(x, fnorm) @ emb.T
gen = torch.Generator().manual_seed(0)
ids = torch.randint(3, V, (B, T + 1), generator=gen)
times, cpu = [], []
for step in range(steps):
    t0 = time.perf_counter(); c0 = time.process_time()
    if mode == "lora":
        loss = F.cross_entropy(forward(ids[:, :-1]).reshape(-1, V), ids[:, 1:].reshape(-1))
        opt.zero_grad(); loss.backward(); opt.step()
    else:
        with torch.no_grad():
            loss = F.cross_entropy(forward(ids[:, :-1]).reshape(-1, V), ids[:, 1:].reshape(-1))
    times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
timed = sorted(times[1:]) if len(times) > 1 else times
ms = timed[len(timed) // 2] * 1000
cpu_t = sorted(cpu[1:]) if len(cpu) > 1 else cpu
print(json.dumps({"torch": torch.__version__, "mode": mode, "threads": threads, "ms_per_step": ms, "cpu_ms_per_step": cpu_t[len(cpu_t) // 2] * 1000,
                  "tokens_per_s": B * T / ms * 1000, "loss": loss.item(), "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
