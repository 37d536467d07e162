/**
 * The native kernels against PyTorch on the same shapes and thread counts, measured alternately in one
 * run (a persistent Python worker times each op right after we time ours, so both see the same load).
 * Prints one JSON line per (op, shape, threads): ours and torch's GFLOP/s (or ms for memory-bound ops),
 * the ratio (>1: we are faster), and the load average before and after.
 *
 *   node --import tsx bench/native-ops.ts [--threads 1,2] [--only gemm|attention|ce|norm|adamw] [--python PATH] [--ms 300]
 *
 * Timing: every call of a --ms window is timed; ours_ms/torch_ms are the fastest call (the least disturbed
 * by other processes: compare these on a busy machine), *_median_ms the median. ratio = torch / ours.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";

import { ropeTables } from "../src/model/llama-tf.ts";
import { requireNative } from "../src/model/native.ts";
import type { LlamaConfig } from "../src/model/types.ts";

const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const threadList = opt("threads", "1,2").split(",").map(Number);
const only = opt("only", "");
const windowMs = Number(opt("ms", "300"));
const python = opt("python", existsSync("/work/venv/bin/python") ? "/work/venv/bin/python" : "python3");
const loadavg = (): number[] => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);

const e = requireNative();

// The Python side: reads one JSON request per line, times the op with torch, answers seconds per call.
const worker = String.raw`
import json, sys, time, torch, torch.nn.functional as F
def best(fn, ms):
    fn(); fn()
    times = []; t0 = time.perf_counter()
    while time.perf_counter() - t0 < ms / 1000 or len(times) < 5:
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    times.sort()
    return [times[0], times[len(times) // 2]]
print(json.dumps({"torch": torch.__version__}), flush=True)
for line in sys.stdin:
    r = json.loads(line); torch.set_num_threads(r["threads"]); op = r["op"]; ms = r["ms"]
    if op == "gemm":
        M, N, K, ta, tb = r["M"], r["N"], r["K"], r["ta"], r["tb"]
        a = torch.randn(K, M).t() if ta else torch.randn(M, K)
        b = torch.randn(N, K).t() if tb else torch.randn(K, N)
        c = torch.empty(M, N)
        fn = lambda: torch.matmul(a, b, out=c)
    elif op == "attention":
        B, T, H, KV, hd = r["B"], r["T"], r["H"], r["KV"], r["hd"]
        q = torch.randn(B, H, T, hd, requires_grad=True); k = torch.randn(B, KV, T, hd, requires_grad=True); v = torch.randn(B, KV, T, hd, requires_grad=True)
        g = torch.randn(B, H, T, hd)
        def fn():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=KV != H)
            o.backward(g)
    elif op == "ce":
        R, V = r["R"], r["V"]
        x = torch.randn(R, V, requires_grad=True); t = torch.randint(0, V, (R,))
        def fn():
            F.cross_entropy(x, t).backward()
    elif op == "rmsnorm":
        N, D = r["N"], r["D"]
        x = torch.randn(N, D, requires_grad=True); w = torch.randn(D, requires_grad=True); g = torch.randn(N, D)
        def fn():
            F.rms_norm(x, (D,), w, 1e-5).backward(g)
    elif op == "swiglu":
        N, Fd = r["N"], r["F"]
        x = torch.randn(N, 2 * Fd, requires_grad=True); g = torch.randn(N, Fd)
        def fn():
            a, b = x.chunk(2, dim=1)
            (F.silu(a) * b).backward(g)
    elif op == "adamw":
        n = r["n"]
        p = torch.nn.Parameter(torch.randn(n)); p.grad = torch.randn(n)
        o = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.1)
        fn = lambda: o.step()
    print(json.dumps({"s": best(fn, ms)}), flush=True)
`;
const py = spawn(python, ["-c", worker], { stdio: ["pipe", "pipe", "inherit"] });
const lines = createInterface({ input: py.stdout! })[Symbol.asyncIterator]();
const nextLine = async (): Promise<Record<string, unknown>> => {
  const r = await lines.next();
  if (r.done) throw new Error("the torch worker exited");
  return JSON.parse(r.value) as Record<string, unknown>;
};
const torchVersion = (await nextLine()).torch as string;
const askTorch = async (req: Record<string, unknown>): Promise<[number, number]> => {
  py.stdin!.write(JSON.stringify({ ...req, ms: windowMs }) + "\n");
  return (await nextLine()).s as [number, number];
};

/** [fastest, median] seconds per call over a window: the fastest is the least disturbed by other processes. */
function timeOurs(fn: () => void): [number, number] {
  fn();
  fn();
  const times: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < windowMs || times.length < 5) {
    const t = performance.now();
    fn();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return [times[0]!, times[times.length >> 1]!];
}

const rand = (n: number): Float32Array => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
};

async function report(op: string, shape: Record<string, number | boolean | string>, threads: number, flops: number, ours: () => void): Promise<void> {
  const before = loadavg();
  e.setThreads(threads);
  const [s, sMed] = timeOurs(ours);
  const [t, tMed] = await askTorch({ op, threads, ...shape });
  const after = loadavg();
  const line: Record<string, unknown> = { op, ...shape, threads, simd: e.info().simd, ours_ms: +(s * 1e3).toFixed(4), torch_ms: +(t * 1e3).toFixed(4) };
  if (flops > 0) Object.assign(line, { ours_gflops: +(flops / s / 1e9).toFixed(1), torch_gflops: +(flops / t / 1e9).toFixed(1) });
  Object.assign(line, { ratio: +(t / s).toFixed(3), ours_median_ms: +(sMed * 1e3).toFixed(4), torch_median_ms: +(tMed * 1e3).toFixed(4), ratio_median: +(tMed / sMed).toFixed(3) });
  Object.assign(line, { torch: torchVersion, loadavg_before: before, loadavg_after: after });
  console.log(JSON.stringify(line));
}

// The linear layers of the benched models, rows = tokens (8x128 or 4x256): forward x W^T, input grad
// dy W, weight grad dy^T x; plus LoRA rank-16 products and the vocabulary heads.
const linear: Array<[string, number, number, number]> = [
  ["d128 qkv", 1024, 384, 128], ["d128 w13", 1024, 704, 128], ["d128 w2", 1024, 128, 352], ["d128 head", 1024, 4096, 128],
  ["d256 qkv", 1024, 768, 256], ["d256 w13", 1024, 1344, 256], ["d256 w2", 1024, 256, 672],
  ["smol qkv", 1024, 960, 576], ["smol wo", 1024, 576, 576], ["smol w13", 1024, 3072, 576], ["smol w2", 1024, 576, 1536], ["smol head", 1024, 49152, 576],
];
const lora: Array<[string, number, number, number, boolean, boolean]> = [
  ["lora x A^T (r16)", 1024, 16, 576, false, true], ["lora u B^T", 1024, 576, 16, false, true], ["lora dA = du^T x", 16, 576, 1024, true, false], ["lora dB = dy^T u", 576, 16, 1024, true, false],
];

for (const threads of threadList) {
  if (!only || only === "gemm") {
    for (const [name, M, N, K] of linear) {
      for (const [kind, m, n, k, ta, tb] of [["fwd", M, N, K, false, true], ["dx", M, K, N, false, false], ["dW", N, K, M, true, false]] as const) {
        if (name.endsWith("head") && kind === "dW" && N > 8192) continue;
        const A = rand(m * k);
        const B = rand(k * n);
        const C = new Float32Array(m * n);
        await report("gemm", { name: `${name} ${kind}`, M: m, N: n, K: k, ta, tb }, threads, 2 * m * n * k, () =>
          e.sgemm(ta, tb, m, n, k, 1, A, ta ? m : k, B, tb ? k : n, 0, C, n),
        );
      }
    }
    for (const [name, m, n, k, ta, tb] of lora) {
      const A = rand(m * k);
      const B = rand(k * n);
      const C = new Float32Array(m * n);
      await report("gemm", { name, M: m, N: n, K: k, ta, tb }, threads, 2 * m * n * k, () => e.sgemm(ta, tb, m, n, k, 1, A, ta ? m : k, B, tb ? k : n, 0, C, n));
    }
  }
  if (!only || only === "attention") {
    for (const [B, T, H, KV, hd] of [[8, 128, 4, 4, 32], [8, 128, 8, 8, 32], [4, 256, 9, 3, 64], [8, 64, 8, 4, 8]]) {
      const config = { dim: H! * hd!, nHeads: H, ropeTheta: 10000, ropeStyle: "interleaved" } as unknown as LlamaConfig;
      const { cos, sin } = ropeTables(config, T!);
      const q = rand(B! * T! * H! * hd!);
      const k = rand(B! * T! * KV! * hd!);
      const v = rand(B! * T! * KV! * hd!);
      const dout = rand(q.length);
      const out = new Float32Array(q.length);
      const lse = new Float32Array(B! * H! * T!);
      const dq = new Float32Array(q.length);
      const dk = new Float32Array(k.length);
      const dv = new Float32Array(v.length);
      // Causal: half the T x T scores; forward 2 products, backward 5 (recomputed scores included), of 2*hd flops each.
      const flops = B! * H! * (T! * (T! + 1)) / 2 * 2 * hd! * 7;
      await report("attention", { B: B!, T: T!, H: H!, KV: KV!, hd: hd! }, threads, flops, () => {
        e.attentionForward(q, k, v, B!, T!, H!, KV!, hd!, cos, sin, 0, out, lse);
        e.attentionBackward(dout, q, k, v, out, lse, B!, T!, H!, KV!, hd!, cos, sin, 0, dq, dk, dv);
      });
    }
  }
  if (!only || only === "ce") {
    for (const [R, V] of [[1024, 4096], [512, 49152]]) {
      const x = rand(R! * V!);
      const work = new Float32Array(x.length);
      const t = Int32Array.from({ length: R! }, () => Math.floor(Math.random() * V!));
      // In place, as the trainer uses it: the copy is timed too (a fresh logits array each step).
      await report("ce", { R: R!, V: V! }, threads, 0, () => {
        work.set(x);
        e.crossEntropy(work, t, R!, V!, 1 / R!, work);
      });
    }
  }
  if (!only || only === "norm") {
    for (const [N, D] of [[1024, 128], [1024, 576]]) {
      const x = rand(N! * D!);
      const w = rand(D!);
      const y = new Float32Array(x.length);
      const rstd = new Float32Array(N!);
      const dx = new Float32Array(x.length);
      const dw = new Float32Array(D!);
      await report("rmsnorm", { N: N!, D: D! }, threads, 0, () => {
        e.rmsnormForward(x, w, N!, D!, 1e-5, y, rstd);
        e.rmsnormBackward(y, x, w, rstd, N!, D!, dx, dw);
      });
    }
    for (const [N, F] of [[1024, 352], [1024, 1536]]) {
      const gu = rand(N! * 2 * F!);
      const h = new Float32Array(N! * F!);
      const dgu = new Float32Array(gu.length);
      await report("swiglu", { N: N!, F: F! }, threads, 0, () => {
        e.swigluForward(gu, N!, F!, h);
        e.swigluBackward(h, gu, N!, F!, dgu);
      });
    }
  }
  if (!only || only === "adamw") {
    const n = 1_330_000;
    const p = rand(n);
    const g = rand(n);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    await report("adamw", { n }, threads, 0, () => {
      const clip = Math.min(1, 1 / (Math.sqrt(e.sumSquares(g)) + 1e-6));
      e.adamw(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1 - 1e-4, clip, 0.1, 0.03);
    });
  }
}
py.stdin!.end();
