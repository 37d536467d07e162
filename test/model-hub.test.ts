import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { lfBaseModel } from "../src/engine/pipeline.ts";
import { loadServedModel } from "../src/engine/serve-cli.ts";
import { exportModel } from "../src/model/export-cli.ts";
import { exportHfModel } from "../src/model/hf-export.ts";
import { cachedSnapshot, downloadHubModel, HubError, hubCacheDir, parseHubSpec } from "../src/model/hub.ts";
import { loadLlama2c } from "../src/model/llama2c.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { openModel } from "../src/model/open.ts";
import { readSafetensors, serializeSafetensors, tensorToFloat32, type SafetensorsInput } from "../src/model/safetensors.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";
import { runKtu } from "./helpers/cli.ts";
import { startFakeHub, type FakeHub } from "./helpers/fake-hub.ts";
import { findPython, runPython } from "./helpers/python.ts";

const modelBin = dataPath("models", "stories260K", "stories260K.bin");
const tokBin = dataPath("models", "stories260K", "tok512.bin");
const root = mkdtempSync(join(tmpdir(), "ktu-hub-"));
const single = join(root, "single");
const sharded = join(root, "sharded");
const gpt = join(root, "gpt");

/** The same weights in two shards with model.safetensors.index.json, as large models ship. */
function shard(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  const file = readSafetensors(join(from, "model.safetensors"));
  const names = [...file.tensors.keys()].sort();
  const halves = [names.slice(0, names.length / 2), names.slice(names.length / 2)];
  const weightMap: Record<string, string> = {};
  halves.forEach((part, i) => {
    const shardName = `model-0000${i + 1}-of-00002.safetensors`;
    const tensors: Record<string, SafetensorsInput> = {};
    for (const name of part) {
      const t = file.tensors.get(name)!;
      tensors[name] = { data: tensorToFloat32(t), shape: t.shape, dtype: "F32" };
      weightMap[name] = shardName;
    }
    writeFileSync(join(to, shardName), serializeSafetensors(tensors, { format: "pt" }));
  });
  writeFileSync(join(to, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]) writeFileSync(join(to, f), readFileSync(join(from, f)));
}

let hub: FakeHub;
before(async () => {
  await exportHfModel(single, { model: loadLlama2c(modelBin), tokenizer: Llama2cTokenizer.load(tokBin, 512) });
  shard(single, sharded);
  mkdirSync(gpt);
  writeFileSync(join(gpt, "config.json"), JSON.stringify({ architectures: ["GPT2LMHeadModel"], model_type: "gpt2" }));
  writeFileSync(join(gpt, "model.safetensors"), readFileSync(join(single, "model.safetensors")));
  hub = await startFakeHub({
    "ktu/stories260K": { dir: single, extra: { "README.md": "# a model card", "pytorch_model.bin": "not fetched" } },
    "ktu/stories260K-sharded": { dir: sharded },
    "ktu/gated": { dir: single, gated: true, token: "hf_secret" },
    "ktu/private": { dir: single, token: "hf_secret" },
    "ktu/gpt2-like": { dir: gpt },
  });
});
after(() => hub.close());

const envFor = (home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ ...process.env, HF_ENDPOINT: hub.url, HF_HOME: home, HF_HUB_CACHE: "", HF_TOKEN: "", HF_HUB_OFFLINE: "", ...extra });
const quiet = { progress: null };

test("hf:ORG/NAME[@REV] names a model; the cache folder follows HF_HUB_CACHE, then HF_HOME", () => {
  assert.deepEqual(parseHubSpec("hf:HuggingFaceTB/SmolLM2-135M-Instruct"), { repo: "HuggingFaceTB/SmolLM2-135M-Instruct", revision: "main" });
  assert.deepEqual(parseHubSpec("hf:Qwen/Qwen2.5-0.5B-Instruct@v1.0"), { repo: "Qwen/Qwen2.5-0.5B-Instruct", revision: "v1.0" });
  assert.throws(() => parseHubSpec("hf:no-org"), /hf:no-org.*expected hf:ORG\/NAME/);
  assert.equal(hubCacheDir({ HF_HUB_CACHE: "/c", HF_HOME: "/h" }), "/c");
  assert.equal(hubCacheDir({ HF_HOME: "/h" }), "/h/hub");
});

test("a download fills huggingface_hub's cache layout: blobs by ETag, snapshots/<commit> links, refs/main", async () => {
  const home = mkdtempSync(join(root, "home-"));
  const snapshot = await downloadHubModel("hf:ktu/stories260K", { env: envFor(home), ...quiet });
  const folder = join(home, "hub", "models--ktu--stories260K");
  assert.equal(snapshot, join(folder, "snapshots", hub.commit));
  assert.equal(readFileSync(join(folder, "refs", "main"), "utf8"), hub.commit);
  const weights = join(snapshot, "model.safetensors");
  assert.ok(lstatSync(weights).isSymbolicLink());
  const sha256 = (await import("node:crypto")).createHash("sha256").update(readFileSync(join(single, "model.safetensors"))).digest("hex");
  assert.equal(readlinkSync(weights), `../../blobs/${sha256}`, "an LFS file's blob is named by its sha256");
  assert.match(readlinkSync(join(snapshot, "config.json")), /^\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/, "a small file's blob is named by its git blob sha1");
  assert.ok(!existsSync(join(snapshot, "pytorch_model.bin")) && !existsSync(join(snapshot, "README.md")), "only what ktu reads is fetched");
  assert.equal(cachedSnapshot({ repo: "ktu/stories260K", revision: "main" }, join(home, "hub")), snapshot);
  // A second call asks the hub for the commit and fetches nothing.
  const before = hub.requests.length;
  await downloadHubModel("hf:ktu/stories260K", { env: envFor(home), ...quiet });
  assert.deepEqual(hub.requests.slice(before), ["GET /api/models/ktu/stories260K/revision/main"]);
  // The sharded repo: the index and every shard.
  const shardedSnapshot = await downloadHubModel(`hf:ktu/stories260K-sharded@${hub.commit}`, { env: envFor(home), ...quiet });
  for (const f of ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) assert.ok(existsSync(join(shardedSnapshot, f)), f);
  assert.ok(!existsSync(join(home, "hub", "models--ktu--stories260K-sharded", "refs")), "a commit needs no ref");
  const a = openModel(snapshot).model.weights.layers[2]!.wq;
  const b = openModel(shardedSnapshot).model.weights.layers[2]!.wq;
  assert.deepEqual(a, b);
});

test("a dropped connection resumes with a Range request; a partial .incomplete file is resumed; a wrong checksum is refused", async () => {
  const home = mkdtempSync(join(root, "home-"));
  const lines: string[] = [];
  const progress = { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream;
  hub.dropOnce("model.safetensors", 300_000);
  const start = hub.requests.length;
  const snapshot = await downloadHubModel("hf:ktu/stories260K", { env: envFor(home), progress });
  assert.deepEqual(readFileSync(join(snapshot, "model.safetensors")), readFileSync(join(single, "model.safetensors")));
  const cdn = hub.requests.slice(start).filter((r) => r.startsWith("GET /cdn/"));
  assert.equal(cdn.length, 2, "one cut short, one resumed");
  assert.match(lines.join(""), /connection dropped at 300000 bytes .*resuming/);
  assert.match(lines.join(""), /hf:ktu\/stories260K model\.safetensors \[#{24}\] 100\.0% 1\.0\/1\.0 MB/);

  // An interrupted earlier download: blobs/<sha256>.incomplete holds the first bytes.
  const home2 = mkdtempSync(join(root, "home-"));
  const bytes = readFileSync(join(single, "model.safetensors"));
  const sha = (await import("node:crypto")).createHash("sha256").update(bytes).digest("hex");
  const blobs = join(home2, "hub", "models--ktu--stories260K", "blobs");
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(blobs, `${sha}.incomplete`), bytes.subarray(0, 500_000));
  const served = hub.requests.length;
  await downloadHubModel("hf:ktu/stories260K", { env: envFor(home2), ...quiet });
  assert.ok(existsSync(join(blobs, sha)) && !existsSync(join(blobs, `${sha}.incomplete`)));
  assert.equal(hub.requests.slice(served).filter((r) => r.startsWith("GET /cdn/")).length, 1);

  // A partial file with wrong bytes: the finished blob fails the sha256 check and is removed.
  const home3 = mkdtempSync(join(root, "home-"));
  const blobs3 = join(home3, "hub", "models--ktu--stories260K", "blobs");
  mkdirSync(blobs3, { recursive: true });
  writeFileSync(join(blobs3, `${sha}.incomplete`), Buffer.alloc(500_000, 7));
  await assert.rejects(downloadHubModel("hf:ktu/stories260K", { env: envFor(home3), ...quiet }), /model\.safetensors: checksum [0-9a-f]{64} does not match the ETag [0-9a-f]{64}; the download was removed/);
  assert.ok(!existsSync(join(blobs3, `${sha}.incomplete`)) && !existsSync(join(blobs3, sha)));
});

test("clear errors: no such model or revision, gated and private models (HF_TOKEN sent as Bearer), a model type ktu does not run, offline without a cache", async () => {
  const home = mkdtempSync(join(root, "home-"));
  const env = envFor(home);
  await assert.rejects(downloadHubModel("hf:ktu/nope", { env, ...quiet }), (e: HubError) => e.status === 404 && /hf:ktu\/nope@main: no such model at http:\/\/127\.0\.0\.1:\d+ \(404/.test(e.message));
  await assert.rejects(downloadHubModel("hf:ktu/stories260K@v9", { env, ...quiet }), /hf:ktu\/stories260K@v9: revision "v9" not found/);
  await assert.rejects(downloadHubModel("hf:ktu/gated", { env, ...quiet }), (e: HubError) => e.status === 403 && /a gated model \(403\); accept its license at http:\/\/127\.0\.0\.1:\d+\/ktu\/gated and set HF_TOKEN .*no HF_TOKEN was set/.test(e.message));
  await assert.rejects(downloadHubModel("hf:ktu/private", { env, ...quiet }), /hf:ktu\/private@main: 401 unauthorized .*private or does not exist \(no HF_TOKEN was set\)/);
  const start = hub.authorizations.length;
  const snapshot = await downloadHubModel("hf:ktu/gated", { env: envFor(home, { HF_TOKEN: "hf_secret" }), ...quiet });
  assert.ok(existsSync(join(snapshot, "model.safetensors")));
  const sent = hub.authorizations.slice(start);
  assert.ok(sent.includes("Bearer hf_secret"));
  const cdnRequests = hub.requests.slice(-sent.length).map((r, i) => [r, sent[i]] as const).filter(([r]) => r.startsWith("GET /cdn/"));
  assert.ok(cdnRequests.length > 0 && cdnRequests.every(([, auth]) => auth === undefined), "the token is not sent to the LFS CDN host");
  const before = hub.requests.length;
  await assert.rejects(downloadHubModel("hf:ktu/gpt2-like", { env, ...quiet }), /hf:ktu\/gpt2-like@main: a model type ktu does not run: .*GPT2LMHeadModel.*is not supported/);
  assert.ok(!hub.requests.slice(before).some((r) => r.includes("safetensors") || r.startsWith("GET /cdn/")), "no weights were downloaded");
  await assert.rejects(downloadHubModel("hf:ktu/stories260K", { env: envFor(home, { HF_HUB_OFFLINE: "1" }), ...quiet }), /HF_HUB_OFFLINE is set and the model is not in the cache/);
  const closed = await closedPort();
  await assert.rejects(downloadHubModel("hf:ktu/stories260K", { env: envFor(home, { HF_ENDPOINT: `http://127.0.0.1:${closed}` }), ...quiet }), /cannot reach http:\/\/127\.0\.0\.1:\d+ for the model's file list: ECONNREFUSED \(set HF_HUB_OFFLINE=1/);
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The stand-in hub in its own process, so that synchronous callers (the ktu CLI, openModel) can reach it. */
async function hubProcess(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "test", "helpers", "fake-hub-cli.ts"), "--repo", `ktu/stories260K=${single}`, "--repo", `ktu/sharded=${sharded}`, "--drop", "model-00002-of-00002.safetensors:100000"], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      const m = /url (\S+)/.exec(d.toString());
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`fake hub exited ${code}`)));
  });
  return { url, child };
}

test("HF_ENDPOINT=... HF_HOME=... ktu generate --model hf:ORG/NAME prints what run.c prints for the llama2.c files; then offline from the cache", async () => {
  const { url, child } = await hubProcess();
  try {
    const home = mkdtempSync(join(root, "home-"));
    const args = ["--prompt", "Once upon a time", "--steps", "60", "--temperature", "0"];
    const reference = runKtu(["generate", "--model", modelBin, "--tokenizer", tokBin, ...args]);
    assert.equal(reference.status, 0, reference.stderr);
    for (const name of ["ktu/stories260K", "ktu/sharded"]) {
      const r = runKtu(["generate", "--model", `hf:${name}`, ...args], { env: { HF_ENDPOINT: url, HF_HOME: home, HF_HUB_OFFLINE: "", HF_HUB_CACHE: "" } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, reference.stdout, name);
      assert.match(r.stderr, /100\.0%/, "a progress bar on stderr");
    }
    // And against run.c's own output (data/models/stories260K/reference, greedy from an empty prompt).
    const runC = readFileSync(dataPath("models", "stories260K", "reference", "run_t0_empty_n200.txt"), "utf8");
    const fromHub = runKtu(["generate", "--model", "hf:ktu/stories260K", "--steps", "200", "--temperature", "0"], { env: { HF_ENDPOINT: url, HF_HOME: home, HF_HUB_OFFLINE: "", HF_HUB_CACHE: "" } });
    assert.equal(fromHub.stdout, runC);
    const offline = runKtu(["generate", "--model", "hf:ktu/stories260K", ...args], { env: { HF_ENDPOINT: "http://127.0.0.1:1", HF_HOME: home, HF_HUB_OFFLINE: "1", HF_HUB_CACHE: "" } });
    assert.equal(offline.status, 0, offline.stderr);
    assert.equal(offline.stdout, reference.stdout);
    // ktu eval run takes the hub name too (tokenizer from the repo), answering as the llama2.c files do.
    const bench = join(root, "bench");
    assert.equal(runKtu(["data", "benchmark", "--asqa", dataPath("asqa", "asqa_dev_first400.jsonl"), "--out", bench]).status, 0);
    const evalArgs = ["eval", "run", "--benchmark", join(bench, "benchmark.jsonl"), "--limit", "2", "--max-tokens", "8", "--prompt", "normal"];
    const viaFile = runKtu([...evalArgs, "--model", modelBin, "--out", join(root, "eval-file")]);
    assert.equal(viaFile.status, 0, viaFile.stderr);
    const viaHub = runKtu([...evalArgs, "--model", "hf:ktu/stories260K", "--out", join(root, "eval-hub")], { env: { HF_ENDPOINT: "http://127.0.0.1:1", HF_HOME: home, HF_HUB_OFFLINE: "1", HF_HUB_CACHE: "" } });
    assert.equal(viaHub.status, 0, viaHub.stderr);
    assert.equal(readFileSync(join(root, "eval-hub", "predictions.jsonl"), "utf8"), readFileSync(join(root, "eval-file", "predictions.jsonl"), "utf8"));
    assert.equal(viaHub.stdout.trim().split("\n").at(-1), viaFile.stdout.trim().split("\n").at(-1), "the score JSON is the last line");
    const missing = runKtu(["generate", "--model", "hf:ktu/absent", ...args], { env: { HF_ENDPOINT: url, HF_HOME: home, HF_HUB_OFFLINE: "", HF_HUB_CACHE: "" } });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /hf:ktu\/absent@main: no such model/);
    // ktu model download prints the snapshot; ktu model export reads a hub model too.
    const dl = runKtu(["model", "download", "hf:ktu/stories260K"], { env: { HF_ENDPOINT: url, HF_HOME: home, HF_HUB_OFFLINE: "", HF_HUB_CACHE: "" } });
    assert.equal(dl.status, 0, dl.stderr);
    assert.match(dl.stdout.trim(), /models--ktu--stories260K\/snapshots\/[0-9a-f]{40}$/);
    // The LLaMA-Factory pipeline takes a hub name too: it trains on the snapshot folder in the shared cache.
    const saved = { ...process.env };
    Object.assign(process.env, { HF_ENDPOINT: url, HF_HOME: home, HF_HUB_OFFLINE: "", HF_HUB_CACHE: "" });
    try {
      assert.equal(lfBaseModel("hf:ktu/stories260K"), dl.stdout.trim());
      assert.equal(lfBaseModel("meta-llama/Llama-2-7b-chat-hf"), "meta-llama/Llama-2-7b-chat-hf", "a plain hub id is left to LLaMA-Factory");
      // ktu serve's loader and ktu model export take hub names as well.
      const served = await loadServedModel("hf:ktu/sharded");
      assert.equal(served.model.config.dim, 64);
      const exported = join(home, "re-export");
      await exportModel({ model: "hf:ktu/stories260K", out: exported, template: "llama2" });
      assert.match(JSON.parse(readFileSync(join(exported, "tokenizer_config.json"), "utf8")).chat_template, /\[INST\]/);
    } finally {
      for (const key of ["HF_ENDPOINT", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE"]) if (saved[key] === undefined) delete process.env[key]; else process.env[key] = saved[key];
    }
    // ktu train: model_name_or_path as a hub name (and, as LLaMA-Factory reads it, a bare ORG/NAME).
    const trainDir = join(home, "train");
    mkdirSync(trainDir);
    writeFileSync(join(trainDir, "tiny.json"), JSON.stringify(Array.from({ length: 4 }, (_, i) => ({ instruction: `q${i}`, input: "", output: "Lily was happy." }))));
    writeFileSync(join(trainDir, "dataset_info.json"), JSON.stringify({ tiny: { file_name: "tiny.json", columns: { prompt: "instruction", query: "input", response: "output" } } }));
    for (const model of ["hf:ktu/sharded", "ktu/stories260K"]) {
      const yaml = join(trainDir, "train.yaml");
      writeFileSync(yaml, [`model_name_or_path: ${model}`, "stage: sft", "do_train: true", "finetuning_type: lora", "lora_target: q_proj,v_proj", "dataset: tiny", `dataset_dir: ${trainDir}`, "template: llama2", "cutoff_len: 32", `output_dir: ${join(trainDir, "out")}`, "max_steps: 1", "per_device_train_batch_size: 2", "overwrite_output_dir: true", "report_to: none"].join("\n") + "\n");
      const trained = runKtu(["train", "--config", yaml], { env: { HF_ENDPOINT: url, HF_HOME: home, HF_HUB_OFFLINE: "", HF_HUB_CACHE: "" } });
      assert.equal(trained.status, 0, `${model}: ${trained.stderr}`);
      assert.ok(existsSync(join(trainDir, "out", "adapter_model.safetensors")), model);
    }
    const config = join(home, "s1.yaml");
    assert.equal(runKtu(["lf", "config", "--preset", "stage1", "--model", "hf:ktu/stories260K@v2", "--out", config], { env: { KTU_LF_KEYS: "shipped" } }).status, 0);
    const yaml = readFileSync(config, "utf8");
    assert.match(yaml, /^model_name_or_path: ktu\/stories260K\nmodel_revision: v2$/m);
  } finally {
    child.kill("SIGTERM");
  }
});

const py = findPython(["huggingface_hub", "transformers", "torch"]);
test("Python's huggingface_hub and transformers read the cache ktu filled (local_files_only, offline), and download from the stand-in hub as from the real one", { skip: py.skip }, async () => {
  const home = mkdtempSync(join(root, "home-"));
  const ours = await downloadHubModel("hf:ktu/stories260K-sharded", { env: envFor(home), ...quiet });
  const read = `
import json, torch
from huggingface_hub import snapshot_download
from transformers import AutoModelForCausalLM, AutoTokenizer
path = snapshot_download("ktu/stories260K-sharded", local_files_only=True)
model = AutoModelForCausalLM.from_pretrained("ktu/stories260K-sharded", local_files_only=True, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained("ktu/stories260K-sharded", local_files_only=True)
ids = tok("Once upon a time", return_tensors="pt").input_ids
gen = model.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)[0].tolist()
print(json.dumps({"path": path, "gen": gen}))
`;
  const cacheEnv = { HF_HOME: home, HF_HUB_CACHE: join(home, "hub"), HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:1" };
  const answer = runPython(py.python!, read, [], cacheEnv) as { path: string; gen: number[] };
  assert.equal(answer.path, ours);
  const expected = runKtu(["generate", "--model", ours, "--prompt", "Once upon a time", "--steps", String(answer.gen.length - 1), "--temperature", "0"]);
  assert.equal(`${Llama2cTokenizer.load(tokBin, 512).decode(answer.gen.slice(1), 1)}\n`, expected.stdout);

  // The other way: huggingface_hub downloads from the stand-in hub (so it answers as the hub does).
  const { url, child } = await hubProcess(); // in its own process: spawnSync blocks this one
  let fresh: string[];
  try {
    const download = `
import json, os, sys
from huggingface_hub import snapshot_download
path = snapshot_download("ktu/sharded", cache_dir=sys.argv[1])
print(json.dumps(sorted(os.listdir(path))))
`;
    fresh = runPython(py.python!, download, [join(home, "python-cache")], { HF_HOME: home, HF_HUB_CACHE: join(home, "python-cache"), HF_HUB_OFFLINE: "0", HF_ENDPOINT: url }) as string[];
  } finally {
    child.kill("SIGTERM");
  }
  assert.deepEqual(fresh, ["config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"]);
});
