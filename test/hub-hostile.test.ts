/**
 * The hub as a hostile server would play it: names that climb out of the cache, ETags and commits that
 * are paths, redirects to another host that would collect HF_TOKEN, bodies cut short without a length.
 * Each case runs a real HTTP server and checks what reached it and what was written on disk.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { downloadHubModel, isSafeRepoFile, isSafeRevision, parseHubSpec } from "../src/model/hub.ts";

interface Seen {
  method: string;
  path: string;
  auth: string | undefined;
}
interface Hostile {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}
type Handler = (req: IncomingMessage, res: ServerResponse, path: string) => void;

const servers: Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve()))))));

async function serve(handler: Handler): Promise<Hostile> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    seen.push({ method: req.method ?? "", path, auth: req.headers.authorization });
    handler(req, res, path);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const config = Buffer.from(JSON.stringify({ architectures: ["LlamaForCausalLM"], hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 10 }));
const gitSha1 = (bytes: Buffer): string => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
const COMMIT = "a".repeat(40);

interface HubFile {
  bytes: Buffer;
  /** Response headers of HEAD and GET (default: ETag = git sha1, Content-Length). */
  headers?: Record<string, string>;
  /** GET sends only this many bytes (then ends the response cleanly). */
  cut?: number;
}

/** A hub that answers the file list and resolve requests from `files`; `sha` and `siblings` may be hostile. */
function hubHandler(files: Record<string, HubFile>, info: { sha?: string; sizes?: Record<string, number> } = {}): Handler {
  return (req, res, path) => {
    if (path.startsWith("/api/models/")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ sha: info.sha ?? COMMIT, siblings: Object.keys(files).map((rfilename) => ({ rfilename, ...(info.sizes?.[rfilename] !== undefined ? { size: info.sizes[rfilename] } : {}) })) }));
      return;
    }
    const m = /^\/[^/]+\/[^/]+\/resolve\/[^/]+\/(.+)$/.exec(path);
    const file = m ? files[decodeURIComponent(m[1]!)] : undefined;
    if (!file) {
      res.writeHead(404, { "x-error-code": "EntryNotFound" });
      res.end();
      return;
    }
    const headers = file.headers ?? { etag: `"${gitSha1(file.bytes)}"`, "content-length": String(file.bytes.length), "x-repo-commit": COMMIT };
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : file.cut === undefined ? file.bytes : file.bytes.subarray(0, file.cut));
  };
}

/** Every path under `dir` (to show that nothing was written outside the cache). */
function tree(dir: string): string[] {
  return existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).sort() : [];
}

function setup(): { root: string; home: string; env: (url: string, extra?: Record<string, string>) => NodeJS.ProcessEnv } {
  // The cache sits deep inside root, so "../" x 6 from a snapshot lands inside root, where the test looks.
  const root = mkdtempSync(join(tmpdir(), "ktu-hostile-"));
  const home = join(root, "a", "b", "c", "home");
  return { root, home, env: (url, extra = {}) => ({ ...process.env, HF_ENDPOINT: url, HF_HOME: home, HF_HUB_CACHE: "", HF_TOKEN: "hf_secret", HF_HUB_OFFLINE: "", ...extra }) };
}
const quiet = { progress: null, retries: 1 };

test("names from the user: a revision with .., an absolute or backslashed one is refused before anything is fetched", () => {
  for (const bad of ["..", "../../x", "refs/../../x", "/etc", "a\\b", "a//b", "./x"]) {
    assert.throws(() => parseHubSpec(`hf:ktu/m@${bad}`), /field revision: .*is not a branch, tag or commit name/, bad);
  }
  for (const good of ["main", "v1.0", "refs/pr/1", COMMIT]) assert.equal(parseHubSpec(`hf:ktu/m@${good}`).revision, good);
  assert.ok(isSafeRevision("refs/pr/1") && !isSafeRevision("refs/pr/.."));
  for (const bad of ["../x", "/abs", "a/../b", "a\\b", "", "a//b", "C:x", "a/./b", "x\u0000"]) assert.ok(!isSafeRepoFile(bad), bad);
  for (const good of ["model.safetensors", "sub/dir/model-00001-of-00002.safetensors", "..hidden"]) assert.ok(isSafeRepoFile(good), good);
});

test("a shard name that climbs out of the cache (../../X, /abs, back\\slash) is refused before any shard is fetched, and nothing is written for it", async () => {
  for (const shard of ["../../../../../../X", "/tmp/ktu-hostile-X", "..\\..\\X", "sub/../../X"]) {
    const { root, home, env } = setup();
    const index = Buffer.from(JSON.stringify({ weight_map: { "model.embed_tokens.weight": "model-00001.safetensors", "model.norm.weight": shard } }));
    const hub = await serve(hubHandler({ "config.json": { bytes: config }, "model.safetensors.index.json": { bytes: index } }));
    await assert.rejects(downloadHubModel("hf:ktu/m", { env: env(hub.url), ...quiet }), (e: Error) => {
      assert.match(e.message, /^hf:ktu\/m@main: refusing the shard name ".*" from model\.safetensors\.index\.json; nothing was written for it$/, shard);
      assert.ok(e.message.includes(JSON.stringify(shard)), e.message);
      return true;
    });
    assert.ok(!hub.seen.some((s) => s.path.includes("X") || s.path.includes("model-00001")), "no shard was requested (and no token sent for one)");
    assert.deepEqual(tree(root).filter((p) => !p.startsWith(join("a", "b", "c", "home"))), ["a", join("a", "b"), join("a", "b", "c")], "nothing outside the cache");
    assert.ok(!existsSync("/tmp/ktu-hostile-X"));
    await hub.close();
  }
});

test("an ETag that is a path or not a digest, and a commit sha that is a path, are refused and write nothing", async () => {
  for (const etag of ["../../../../X", "abc", "W/\"../../X\""]) {
    const { root, home, env } = setup();
    const hub = await serve(hubHandler({ "config.json": { bytes: config, headers: { etag: etag.startsWith("W/") ? etag : `"${etag}"`, "content-length": String(config.length) } }, "model.safetensors": { bytes: Buffer.alloc(8) } }));
    await assert.rejects(downloadHubModel("hf:ktu/m", { env: env(hub.url), ...quiet }), /^HubError: hf:ktu\/m@main: refusing the ETag of config\.json ".*" from http:\/\/127\.0\.0\.1:\d+\/ktu\/m\/resolve\/.*not a sha1 or sha256 hex digest/);
    assert.ok(!hub.seen.some((s) => s.method === "GET" && s.path.includes("resolve")), "not downloaded");
    assert.deepEqual(tree(join(home, "hub")), [], `nothing written for ${etag}`);
    assert.ok(!tree(root).some((p) => p.endsWith("X")));
    await hub.close();
  }
  for (const sha of ["../../../../X", "abc", "A".repeat(40)]) {
    const { home, env } = setup();
    const hub = await serve(hubHandler({ "config.json": { bytes: config }, "model.safetensors": { bytes: Buffer.alloc(8) } }, { sha }));
    await assert.rejects(downloadHubModel("hf:ktu/m", { env: env(hub.url), ...quiet }), new RegExp(`^HubError: hf:ktu/m@main: refusing the commit ${JSON.stringify(sha).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} from .*not 40 hex digits`));
    assert.deepEqual(tree(join(home, "hub")), []);
    await hub.close();
  }
});

test("a redirect to another host never carries HF_TOKEN, for HEAD (no x-linked headers) or GET", async () => {
  const weights = Buffer.from("weights!");
  const other = await serve((req, res, path) => {
    const bytes = path.endsWith("config.json") ? config : weights;
    res.writeHead(200, { etag: `"${gitSha1(bytes)}"`, "content-length": String(bytes.length) });
    res.end(req.method === "HEAD" ? undefined : bytes);
  });
  const files: Record<string, Buffer> = { "config.json": config, "model.safetensors": weights };
  const hub = await serve((req, res, path) => {
    if (path.startsWith("/api/models/")) return hubHandler({ "config.json": { bytes: config }, "model.safetensors": { bytes: weights } })(req, res, path);
    const file = path.split("/").at(-1)!;
    // config.json: HEAD and GET go to the other host, without the hub's x-linked-* headers.
    if (file === "config.json") {
      res.writeHead(302, { location: `${other.url}/steal/config.json` });
      res.end();
      return;
    }
    // model.safetensors: HEAD answers here; the GET is redirected (307) to the other host.
    if (req.method === "HEAD") {
      res.writeHead(200, { etag: `"${gitSha1(files[file]!)}"`, "content-length": String(files[file]!.length), "x-repo-commit": COMMIT });
      res.end();
      return;
    }
    res.writeHead(307, { location: `${other.url}/steal/${file}` });
    res.end();
  });
  const { env } = setup();
  const snapshot = await downloadHubModel("hf:ktu/m", { env: env(hub.url), ...quiet });
  assert.ok(existsSync(join(snapshot, "model.safetensors")) && existsSync(join(snapshot, "config.json")));
  assert.ok(hub.seen.length > 0 && hub.seen.every((s) => s.auth === "Bearer hf_secret"), "the hub itself gets the token");
  assert.deepEqual(
    other.seen.map((s) => `${s.method} ${s.path} ${s.auth}`),
    ["HEAD /steal/config.json undefined", "GET /steal/config.json undefined", "GET /steal/model.safetensors undefined"],
  );
});

test("a body cut short with no Content-Length is never kept: a non-digest ETag is refused, a digest is checked, the file list's size is used", async () => {
  const weights = Buffer.alloc(1000, 3);
  // No Content-Length, an ETag that is no digest: the old code kept half a file as complete.
  {
    const { home, env } = setup();
    const hub = await serve(hubHandler({ "config.json": { bytes: config }, "model.safetensors": { bytes: weights, headers: { etag: '"v1-weights"' }, cut: 500 } }));
    await assert.rejects(downloadHubModel("hf:ktu/m", { env: env(hub.url), ...quiet }), /refusing the ETag of model\.safetensors "v1-weights"/);
    assert.ok(!tree(join(home, "hub")).some((p) => p.includes("v1-weights")));
  }
  // A digest ETag, no length anywhere: the checksum finds the cut.
  {
    const { home, env } = setup();
    const hub = await serve(hubHandler({ "config.json": { bytes: config }, "model.safetensors": { bytes: weights, headers: { etag: `"${gitSha1(weights)}"` }, cut: 500 } }));
    await assert.rejects(downloadHubModel("hf:ktu/m", { env: env(hub.url), ...quiet }), /model\.safetensors: checksum [0-9a-f]{40} does not match the ETag/);
    assert.ok(!tree(join(home, "hub")).some((p) => p.includes(gitSha1(weights))), "no blob, no .incomplete kept as done");
  }
  // The size from the file list (?blobs=true) where the response has none: a short body is a failed attempt.
  {
    const { env } = setup();
    const hub = await serve(hubHandler({ "config.json": { bytes: config }, "model.safetensors": { bytes: weights, headers: { etag: `"${gitSha1(weights)}"` }, cut: 500 } }, { sizes: { "model.safetensors": 1000 } }));
    await assert.rejects(downloadHubModel("hf:ktu/m", { env: env(hub.url), ...quiet }), /model\.safetensors: download failed after 1 attempts: connection closed after 500 of 1000 bytes/);
  }
});
