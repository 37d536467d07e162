"""
Measurement tool, not the shipped trainer: a PyTorch prototype of the reader curriculum (issue 14), to find
cheaply which recipe makes a small Llama an extractive reader of the compact TASK_QA prompt. The shipped
reader is trained by the project's TS code (recipes/reader/train.ts); this script only answers "what works".

Input: the token ids that prototype/export.ts writes (shipped BPE 4096 tokenizer, the project's split and
prompts; nothing held apart is in the training files). Model: Llama as llama2.c has it (RMSNorm, RoPE,
SwiGLU, tied embeddings, no biases). Tasks, all in the compact QA prompt
"Trustworthy QA Task, else Not Provided.\nQUESTION: q\nCONTEXT: c\nANSWER: a":
  - before: q = the m words before a span of a train-side passage window, a = the span (induction copy);
  - cloze:  q = words before + " what" + words after + "?", a = the span;
  - qa:     the train side's real span QA pairs (HotpotQA supporting paragraphs, ASQA), random crops.
Curriculum: the synthetic window grows (--levels words) when the teacher-forced exact match of the
synthetic answers over the last 256 examples reaches --promote. Loss: answer tokens weight 1, every other
token --lm-weight (next-token prediction on prompt and passage).

  nice -n 19 python proto.py --out runs/NAME [--dim 128 --layers 4 ...] [--minutes 15]
Resumable: re-running with the same --out continues from runs/NAME/ckpt.pt.
"""
import argparse, json, math, os, random, re, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--data", default="/work/reader-proto/data")
p.add_argument("--out", required=True)
p.add_argument("--dim", type=int, default=128)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--hidden", type=int, default=352)
p.add_argument("--seq", type=int, default=320)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--wd", type=float, default=0.1)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--levels", default="16,32,64,128")
p.add_argument("--promote", type=float, default=0.8)
p.add_argument("--lm-weight", type=float, default=0.2)
p.add_argument("--qa-from-level", type=int, default=2, help="real QA pairs join the mixture at this level")
p.add_argument("--qa-share", type=float, default=0.4)
p.add_argument("--cloze-share", type=float, default=0.5, help="share of cloze among synthetic tasks")
p.add_argument("--repeat-share", type=float, default=0.0, help="share of batches of the dense copy task (question = a window, context = the same window; loss on every copied token)")
p.add_argument("--random-levels", type=int, default=0, help="the first N levels draw their synthetic windows from random word pieces, not passages (no language prior to lean on: only copying predicts)")
p.add_argument("--pool", type=int, default=0, help="random word pieces come from the first N word-like pieces (0: all)")
p.add_argument("--plain-repeat", action="store_true", help="warm-up stage: every batch is BOS + random pieces + newline + the same pieces (no template), loss on the copy; stops when its teacher-forced exact match is >= --promote over 8 batches")
p.add_argument("--plain-len", default="16", help="lengths of the plain repeat sequences (comma list, one drawn per batch)")
p.add_argument("--span-lens", default="1,1,2,2,3,4", help="answer span lengths in words, one drawn per example. Random lengths make the stop unknowable, so teacher-forced EM cannot reach --promote; use 1 to measure the lookup alone")
p.add_argument("--plain-lookup", action="store_true", help="before/cloze tasks without the template: BOS + window + newline + question pieces + '?' -> span")
p.add_argument("--init", default="", help="start from this checkpoint's weights (fresh optimizer and curriculum)")
p.add_argument("--repeat-until-level", type=int, default=99, help="repeat batches only below this level")
p.add_argument("--minutes", type=float, default=15)
p.add_argument("--max-tokens", type=float, default=1e12)
p.add_argument("--eval-every", type=int, default=300)
p.add_argument("--decay-at-tokens", type=float, default=0, help="if >0, cosine-decay lr to 10%% over the tokens after this point up to --max-tokens")
p.add_argument("--seed", type=int, default=1)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--eval-only", action="store_true")
p.add_argument("--full-eval", action="store_true", help="at the end: all hotpot rows, predictions written")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
os.makedirs(args.out, exist_ok=True)
D = args.data

vocab = json.load(open(f"{D}/vocab.json"))
T = json.load(open(f"{D}/template.json"))
EOS, NL = T["eos"], T["newline"]
WHAT, QMARK = vocab.index(" what"), vocab.index("?")
is_start = [p.startswith(" ") or p == "\n" for p in vocab]
is_wordlike = [bool(re.match(r"^ [A-Za-z0-9]", p)) for p in vocab]


def decode(ids):
    s = "".join(vocab[i] for i in ids)
    b = bytearray()
    for part in re.split(r"(<0x[0-9A-F]{2}>)", s):
        m = re.match(r"<0x([0-9A-F]{2})>", part)
        b += bytes([int(m.group(1), 16)]) if m else part.encode()
    return b.decode("utf-8", "replace")


def load(name):
    return [json.loads(l) for l in open(f"{D}/{name}")]


corpus = []
for r in load("corpus.jsonl"):
    ids = r["ids"]
    ws = [i for i, t in enumerate(ids) if is_start[t]]
    if len(ws) >= 12:
        corpus.append((ids, ws))
qa_train = load("qa_train.jsonl")
hotpot = load("hotpot_test.jsonl")
bench = load("bench_test.jsonl")
levels = [int(x) for x in args.levels.split(",")]


def prompt(q, c):
    return T["prefix"] + q + T["mid"] + c + T["suffix"]


SPAN_LENS = [int(v) for v in args.span_lens.split(",")]
WORDLIKE = [i for i, ok in enumerate(is_wordlike) if ok]


def random_doc(rng, W):
    pool = WORDLIKE[:args.pool] if args.pool else WORDLIKE
    ids = [rng.choice(pool) for _ in range(W)]
    return ids, list(range(W))


def synth(rng, W, cloze, rand=False):
    """One synthetic example from a train-side passage window of at most W words (or random word pieces)."""
    while True:
        ids, ws = random_doc(rng, W) if rand else rng.choice(corpus)
        n = len(ws)
        Wn = min(W, n)
        s0 = rng.randint(0, n - Wn)
        wend = ws[s0 + Wn] if s0 + Wn < n else len(ids)
        win_ws = ws[s0:s0 + Wn] + [wend]  # word starts inside the window, plus its end
        k = rng.choice(SPAN_LENS)
        if cloze:
            m1, m2 = rng.randint(1, 4), rng.randint(1, 4)
            if m1 + m2 < 3:
                m2 = 3 - m1
        else:
            m1, m2 = rng.randint(3, 6), 0
        if Wn < m1 + k + m2 + 1:
            continue
        pos = rng.randint(m1, Wn - k - m2)
        a = ids[win_ws[pos]:win_ws[pos + k]]
        if not is_wordlike[a[0]] or NL in a:
            continue
        before = ids[win_ws[pos - m1]:win_ws[pos]]
        after = ids[win_ws[pos + k]:win_ws[pos + k + m2]]
        if NL in before or NL in after:
            continue
        q = before + [WHAT] + after + [QMARK] if cloze else before + [QMARK]
        if args.plain_lookup:
            return [T["bos"]] + ids[win_ws[0]:wend] + [NL] + q, a
        return prompt(q, ids[win_ws[0]:wend]), a


def repeat(rng, W, rand=False):
    """Dense copy: QUESTION holds a passage window, CONTEXT repeats it; every repeated token is an induction target."""
    ids, ws = random_doc(rng, W) if rand else rng.choice(corpus)
    n = len(ws)
    Wn = min(W, n)
    s0 = rng.randint(0, n - Wn)
    wend = ws[s0 + Wn] if s0 + Wn < n else len(ids)
    win = [t for t in ids[ws[s0]:wend] if t != NL]
    return T["prefix"] + win + [QMARK] + T["mid"] + win[:1], win[1:] + T["suffix"], False


def plain_repeat(rng, n):
    ids, _ = random_doc(rng, n)
    return [T["bos"]] + ids + [NL] + ids[:1], ids[1:], False


def real_qa(rng):
    r = rng.choice(qa_train)
    return prompt(r["q"], rng.choice(r["ctx"])), r["a"]


# ---- model: llama2.c's Llama ----
class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.w


def rope(x, cos, sin):  # interleaved pairs, as llama2.c
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


class Block(nn.Module):
    def __init__(s, d, h, hid):
        super().__init__()
        s.h = h
        s.n1, s.n2 = RMSNorm(d), RMSNorm(d)
        s.wq, s.wk, s.wv, s.wo = (nn.Linear(d, d, bias=False) for _ in range(4))
        s.w1, s.w3 = nn.Linear(d, hid, bias=False), nn.Linear(d, hid, bias=False)
        s.w2 = nn.Linear(hid, d, bias=False)

    def forward(s, x, cos, sin):
        B, L, d = x.shape
        y = s.n1(x)
        q, k, v = (w(y).view(B, L, s.h, d // s.h).transpose(1, 2) for w in (s.wq, s.wk, s.wv))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + s.wo(a.transpose(1, 2).reshape(B, L, d))
        y = s.n2(x)
        return x + s.w2(F.silu(s.w1(y)) * s.w3(y))


class Llama(nn.Module):
    def __init__(s, V, d, L, h, hid, seq):
        super().__init__()
        s.emb = nn.Embedding(V, d)
        s.blocks = nn.ModuleList(Block(d, h, hid) for _ in range(L))
        s.norm = RMSNorm(d)
        hd = d // h
        f = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        t = torch.outer(torch.arange(seq).float(), f)
        s.register_buffer("cos", t.cos(), persistent=False)
        s.register_buffer("sin", t.sin(), persistent=False)
        for n, prm in s.named_parameters():
            if prm.dim() == 2:
                nn.init.normal_(prm, std=0.02 / (math.sqrt(2 * L) if n.endswith(("wo.weight", "w2.weight")) else 1))

    def forward(s, idx):
        L = idx.shape[1]
        x = s.emb(idx)
        for b in s.blocks:
            x = b(x, s.cos[:L], s.sin[:L])
        return s.norm(x) @ s.emb.weight.T


model = Llama(len(vocab), args.dim, args.layers, args.heads, args.hidden, args.seq)
nparam = sum(p.numel() for p in model.parameters())
decay = [p for p in model.parameters() if p.dim() == 2]
nodecay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": nodecay, "weight_decay": 0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
state = {"step": 0, "tokens": 0, "level": 0, "seconds": 0.0, "hist": [], "level_log": []}
ck = f"{args.out}/ckpt.pt"
if args.init and not os.path.exists(ck):
    model.load_state_dict(torch.load(args.init, weights_only=False)["model"])
    print(f"weights from {args.init}")
if os.path.exists(ck):
    c = torch.load(ck, weights_only=False)
    model.load_state_dict(c["model"]); opt.load_state_dict(c["opt"]); state = c["state"]
    print(f"resumed at step {state['step']}, {state['tokens']/1e6:.2f}M tokens, level {state['level']}")
print(f"{nparam} parameters ({nparam*4/1e6:.1f} MB fp32), args {vars(args)}", flush=True)


def batch_of(examples):
    examples = [e if len(e) == 3 else (e[0], e[1], True) for e in examples]
    L = max(len(pq) + len(a) + 1 for pq, a, _ in examples)
    x = torch.zeros(len(examples), L - 1, dtype=torch.long)
    y = torch.full((len(examples), L - 1), -1, dtype=torch.long)
    w = torch.zeros(len(examples), L - 1)
    for i, (pq, a, eos) in enumerate(examples):
        s = pq + a + ([EOS] if eos else [])
        n = len(s) - 1
        x[i, :n] = torch.tensor(s[:-1]); y[i, :n] = torch.tensor(s[1:])
        w[i, :n] = args.lm_weight
        w[i, len(pq) - 1:n] = 1.0
    return x, y, w


@torch.no_grad()
def greedy(prompts, max_new=12):
    model.eval()
    outs = []
    for i in range(0, len(prompts), 32):
        chunk = [list(pq[-(args.seq - max_new):]) for pq in prompts[i:i + 32]]
        done = [False] * len(chunk)
        gen = [[] for _ in chunk]
        for _ in range(max_new):
            L = max(len(c) for c in chunk)
            x = torch.zeros(len(chunk), L, dtype=torch.long)
            for j, c in enumerate(chunk):
                x[j, :len(c)] = torch.tensor(c)
            lg = model(x)
            for j, c in enumerate(chunk):
                if done[j]:
                    continue
                t = int(lg[j, len(c) - 1].argmax())
                if t in (EOS, NL):
                    done[j] = True
                else:
                    gen[j].append(t); c.append(t)
            if all(done):
                break
        outs += [decode(g) for g in gen]
    model.train()
    return outs


def norm_squad(s):
    s = re.sub(r"[^\w\s]|_", "", s.lower())  # SQuAD: punctuation dropped (approximation of \p{P}\p{S})
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return s.split()


def strict_ok(pred, golds):
    t = norm_squad(pred)
    for g in golds:
        n = norm_squad(g)
        if n and any(t[i:i + len(n)] == n for i in range(len(t) - len(n) + 1)):
            return True
    return False


def cluster_ci(vals, groups, draws=2000):
    byg = {}
    for v, g in zip(vals, groups):
        byg.setdefault(g, []).append(v)
    keys = list(byg)
    r = random.Random(12345)
    st = []
    for _ in range(draws):
        s = [v for _ in keys for v in byg[r.choice(keys)]]
        st.append(sum(s) / len(s))
    st.sort()
    return [round(st[int(0.025 * draws)], 3), round(st[int(0.975 * draws)], 3)]


def wilson(k, n, z=1.96):
    p_ = k / n
    c = (p_ + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p_ * (1 - p_) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0, c - h), 3), round(min(1, c + h), 3)]


REFUSE = ["not mentioned", "not provided", "not given", "'t mentioned", "'t provided", "'t given", "not provide", "'t provide", "'t mention", "not mention", "no context provided", "insufficient", "not familiar", "not aware", "apologize", "not able to", "not make sense", "'t make sense", "'t know", "not know"]
eval_rng = random.Random(999)
synth_eval = [synth(eval_rng, levels[-1], c % 2 == 1) for c in range(32)]


def evaluate(full=False):
    t0 = time.time()
    res = {"step": state["step"], "tokens": state["tokens"], "level": state["level"]}
    outs = greedy([pq for pq, _ in synth_eval])
    res["synth_em"] = sum(o.strip() == decode(a).strip() for o, (_, a) in zip(outs, synth_eval)) / len(synth_eval)
    kn = greedy([r["known"] for r in bench], max_new=12 if full else 6)
    un = greedy([r["unknown"] for r in bench]) if full else [" x"] * len(bench)
    k08 = [int(any(g in o.lower() for g in r["gold08"])) for o, r in zip(kn, bench)]
    kst = [int(strict_ok(o, r["pos_answer"])) for o, r in zip(kn, bench)]
    grp = [r["sample_id"] for r in bench]
    res["known08"] = sum(k08) / len(k08); res["known08_ci"] = cluster_ci(k08, grp)
    res["known_strict"] = sum(kst) / len(kst); res["known_strict_ci"] = cluster_ci(kst, grp)
    res["unknown_refusal08"] = sum(o.strip() == "" or any(w in o.lower() for w in REFUSE) for o in un) / len(un)
    res["empty_known"] = sum(o.strip() == "" for o in kn) / len(kn)
    res["majority_share"] = max(kn.count(o) for o in kn) / len(kn)
    hp = hotpot if full else hotpot[:24]
    ho = greedy([r["prompt"] for r in hp], max_new=24 if full else 16)
    em = sum(o.strip() == r["answer"].strip() for o, r in zip(ho, hp))
    res["hotpot_em"] = em / len(hp); res["hotpot_n"] = len(hp); res["hotpot_wilson"] = wilson(em, len(hp))
    res["hotpot_strict"] = sum(strict_ok(o, [r["answer"]]) for o, r in zip(ho, hp)) / len(hp)
    res["examples"] = [(decode(r["known"][-12:]), r["pos_answer"][:2], o) for r, o in zip(bench[:4], kn[:4])]
    res["eval_s"] = round(time.time() - t0, 1)
    if full:
        with open(f"{args.out}/predictions.jsonl", "w") as f:
            for r, o, u in zip(bench, kn, un):
                f.write(json.dumps({"sample_id": r["sample_id"], "known_pred": o, "unknown_pred": u, "pos_answer": r["pos_answer"]}) + "\n")
            for r, o in zip(hp, ho):
                f.write(json.dumps({"hotpot": r["group"], "pred": o, "answer": r["answer"]}) + "\n")
    with open(f"{args.out}/eval.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")
    print("EVAL", json.dumps(res), flush=True)
    return res


def save():
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "args": vars(args)}, ck + ".tmp")
    os.replace(ck + ".tmp", ck)


if args.eval_only:
    evaluate(full=args.full_eval)
    raise SystemExit
rng = random.Random(args.seed * 1000003 + state["step"])
t_start = time.time() - state["seconds"]
deadline = time.time() + args.minutes * 60
log = open(f"{args.out}/log.jsonl", "a")
acc_loss = acc_n = 0.0
while time.time() < deadline and state["tokens"] < args.max_tokens:
    lvl = state["level"]
    W = levels[min(lvl, len(levels) - 1)]
    qa_share = args.qa_share if lvl >= args.qa_from_level else 0.0
    rep = args.repeat_share if lvl < args.repeat_until_level else 0.0
    u = rng.random()
    task = "plain" if args.plain_repeat else "repeat" if u < rep else "qa" if u < rep + qa_share else ("cloze" if rng.random() < args.cloze_share else "before")
    ex = []
    plen = rng.choice([int(v) for v in args.plain_len.split(",")])
    while len(ex) < args.batch:
        rand = lvl < args.random_levels
        e = plain_repeat(rng, plen) if task == "plain" else real_qa(rng) if task == "qa" else repeat(rng, max(W, 16), rand) if task == "repeat" else synth(rng, W, task == "cloze", rand)
        if len(e[0]) + len(e[1]) + 1 <= args.seq:
            ex.append(e)
    x, y, w = batch_of(ex)
    lr = args.lr * min(1.0, (state["step"] + 1) / args.warmup)
    if args.decay_at_tokens > 0 and state["tokens"] > args.decay_at_tokens:
        fr = min(1.0, (state["tokens"] - args.decay_at_tokens) / max(1.0, args.max_tokens - args.decay_at_tokens))
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * fr)))
    for g in opt.param_groups:
        g["lr"] = lr
    logits = model(x)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1).clamp(min=0), reduction="none").view_as(w)
    loss = (ce * w).sum() / w.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    opt.step()
    with torch.no_grad():
        ans = w == 1.0
        correct = ((logits.argmax(-1) == y) | ~ans).all(1).float()
        ans_loss = float((ce * ans).sum() / ans.sum())
    em = float(correct.mean())
    ntok = int((y >= 0).sum())
    state["step"] += 1; state["tokens"] += ntok
    if task == "plain":
        state["hist"] = (state["hist"] + [em])[-8:]
        if len(state["hist"]) == 8 and sum(state["hist"]) / 8 >= args.promote:
            print(f"PLAIN REPEAT SOLVED at step {state['step']}, {state['tokens']/1e6:.2f}M tokens", flush=True)
            break
    if task in ("before", "cloze"):
        state["hist"] = (state["hist"] + [em] * 1)[-8:]  # 8 batches = 256 examples
        if len(state["hist"]) == 8 and sum(state["hist"]) / 8 >= args.promote and lvl < len(levels) - 1:
            state["level"] += 1; state["hist"] = []
            state["level_log"].append({"level": state["level"], "step": state["step"], "tokens": state["tokens"]})
            print(f"PROMOTE to level {state['level']} (W={levels[state['level']]}) at step {state['step']}, {state['tokens']/1e6:.2f}M tokens", flush=True)
    state["seconds"] = time.time() - t_start
    log.write(json.dumps({"step": state["step"], "tok": state["tokens"], "lvl": lvl, "task": task, "loss": round(float(loss.detach()), 4), "ans_loss": round(ans_loss, 4), "tf_em": round(em, 3), "gn": round(gn, 3), "lr": lr, "s": round(state["seconds"], 1)}) + "\n")
    if state["step"] % 50 == 0:
        log.flush()
        print(f"step {state['step']} tok {state['tokens']/1e6:.2f}M lvl {lvl} {task} loss {float(loss.detach()):.3f} ans {ans_loss:.3f} tfEM {em:.2f} {state['tokens']/max(1,state['seconds']):.0f} tok/s", flush=True)
    if state["step"] % args.eval_every == 0:
        save()
        if not args.plain_repeat:
            evaluate()
save()
if not args.plain_repeat:
    evaluate(full=args.full_eval)
print(f"stopped at step {state['step']}, {state['tokens']/1e6:.2f}M tokens, {state['seconds']/60:.1f} min", flush=True)
