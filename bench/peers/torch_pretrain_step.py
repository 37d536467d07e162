# Peer measurement for bench/pretrain-throughput.ts: one full-parameter AdamW training step of a Llama
# (llama2.c layout: RMSNorm, interleaved RoPE, SwiGLU, tied embeddings) from a random init in PyTorch CPU.
# Attention is torch's fused F.scaled_dot_product_attention (is_causal) where it exists (torch 2.x).
# Usage: python3 torch_pretrain_step.py DIM LAYERS HEADS HIDDEN VOCAB B T THREADS STEPS
# Prints one JSON line: median ms/step and tokens/s over the timed steps (first 2 are warm-up), peak RSS.
import json, math, resource, sys, time
import torch, torch.nn.functional as F
dim, L, H, hidden, V, B, T, threads, steps = (int(x) for x in sys.argv[1:10])
torch.set_num_threads(threads); torch.manual_seed(0)
hs = dim // H
def p(*shape, std=0.02): return torch.nn.Parameter(torch.randn(*shape) * std)
emb = p(V, dim)
layers = [dict(an=torch.nn.Parameter(torch.ones(dim)), wqkv=p(3 * dim, dim), wo=p(dim, dim, std=0.02 / math.sqrt(2 * L)),
               fn=torch.nn.Parameter(torch.ones(dim)), w13=p(2 * hidden, dim), w2=p(dim, hidden, std=0.02 / math.sqrt(2 * L))) for _ in range(L)]
fnorm = torch.nn.Parameter(torch.ones(dim))
params = [emb, fnorm] + [t for l in layers for t in l.values()]
decay = [t for t in params if t.dim() == 2]; nodecay = [t for t in params if t.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
pos = torch.arange(T).float(); j = torch.arange(0, hs, 2).float(); ang = pos[:, None] * (10000 ** (-j / hs))[None, :]
cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
def rope(x):
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)
def rms(x, w): return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
mask = torch.full((T, T), float('-inf')).triu(1)
def forward(ids):
    x = emb[ids]
    for l in layers:
        h = rms(x, l["an"])
        q, k, v = (h @ l["wqkv"].T).split(dim, -1)
        q = rope(q.view(B, T, H, hs)).transpose(1, 2); k = rope(k.view(B, T, H, hs)).transpose(1, 2); v = v.view(B, T, H, hs).transpose(1, 2)
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = (((q @ k.transpose(-1, -2)) / math.sqrt(hs) + mask).softmax(-1) @ v)
        x = x + y.transpose(1, 2).reshape(B, T, dim) @ l["wo"].T
        h = rms(x, l["fn"])
        g, u = (h @ l["w13"].T).split(hidden, -1)
        x = x + (F.silu(g) * u) @ l["w2"].T
    return rms(x, fnorm) @ emb.T
gen = torch.Generator().manual_seed(0)
ids = torch.randint(3, V, (B, T + 1), generator=gen)
times = []
for step in range(steps):
    t0 = time.perf_counter()
    loss = F.cross_entropy(forward(ids[:, :-1]).reshape(-1, V), ids[:, 1:].reshape(-1))
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
    times.append(time.perf_counter() - t0)
timed = sorted(times[2:]) if len(times) > 2 else sorted(times)
ms = timed[len(timed) // 2] * 1000
print(json.dumps({"torch": torch.__version__, "threads": threads, "ms_per_step": ms, "tokens_per_s": B * T / ms * 1000, "loss": loss.item(), "params": sum(t.numel() for t in params), "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
