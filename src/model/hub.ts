/**
 * Models by hub name: `hf:ORG/NAME[@REVISION]` downloads config, tokenizer and weights (one
 * model.safetensors, or model.safetensors.index.json and its shards) from $HF_ENDPOINT (default
 * https://huggingface.co) into huggingface_hub's cache layout, so Python's transformers and ktu share
 * one cache:
 *
 *   $HF_HUB_CACHE (or $HF_HOME/hub, default ~/.cache/huggingface/hub)/models--ORG--NAME/
 *     blobs/<etag>                    the files, named by their ETag (an LFS file's is its sha256)
 *     snapshots/<commit>/<file>       relative symlinks into blobs/
 *     refs/<revision>                 the commit a branch or tag pointed to
 *
 * Downloads resume from blobs/<etag>.incomplete with a Range request (after a dropped connection
 * too), show a progress bar on stderr, and are checked against the ETag (sha256 for LFS files, the
 * git blob sha1 otherwise). HF_TOKEN is sent as a Bearer token; HF_HUB_OFFLINE=1 answers from the
 * cache alone. config.json is fetched and checked first, so a model type ktu does not run fails
 * before any weights are downloaded.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { open } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { InputError } from "../util/errors.ts";
import { writeFileAtomicSync } from "../util/fs.ts";
import { readHfConfig } from "./hf.ts";
import { isDigestEtag, isSafeRepoFile, isSafeRevision } from "./repo-names.ts";

export { isDigestEtag, isSafeRepoFile, isSafeRevision };

export const HF_PREFIX = "hf:";

export interface HubModelRef {
  /** "ORG/NAME". */
  readonly repo: string;
  /** Branch, tag or commit; default "main". */
  readonly revision: string;
}

/** A hub download or lookup that failed; the message says what to do. */
export class HubError extends Error {
  override name = "HubError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export const isHubSpec = (spec: string): boolean => spec.startsWith(HF_PREFIX);

/** "hf:ORG/NAME[@REV]" -> {repo, revision}. */
export function parseHubSpec(spec: string): HubModelRef {
  const body = spec.startsWith(HF_PREFIX) ? spec.slice(HF_PREFIX.length) : spec;
  const at = body.indexOf("@");
  const repo = at < 0 ? body : body.slice(0, at);
  const revision = at < 0 ? "main" : body.slice(at + 1);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(repo) || revision === "" || /[\s]/.test(revision)) {
    throw new InputError(spec, undefined, undefined, "expected hf:ORG/NAME or hf:ORG/NAME@REVISION (a Hugging Face model id)");
  }
  if (!isSafeRevision(revision)) {
    throw new InputError(spec, undefined, "revision", `${JSON.stringify(revision)} is not a branch, tag or commit name (letters, digits, . _ - and / between parts; no "..", no leading "/")`);
  }
  return { repo, revision };
}

// Names from the hub server (or the user) become paths in the cache: each is checked before it does.

const refuseName = (ref: HubModelRef, what: string, name: unknown, source: string): HubError =>
  new HubError(`hf:${ref.repo}@${ref.revision}: refusing ${what} ${JSON.stringify(name)?.slice(0, 200)} from ${source}; nothing was written for it`);

function checkRepoFile(ref: HubModelRef, name: unknown, source: string): string {
  if (!isSafeRepoFile(name)) throw refuseName(ref, "the file name", name, source);
  return name;
}

/** huggingface_hub's cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface");
  return join(home, "hub");
}

export const hubEndpoint = (env: NodeJS.ProcessEnv = process.env): string => (env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");

const offline = (env: NodeJS.ProcessEnv): boolean => ["1", "ON", "YES", "TRUE"].includes((env.HF_HUB_OFFLINE ?? "").toUpperCase());

/** models--ORG--NAME, as huggingface_hub's repo_folder_name. */
export const repoFolder = (cache: string, repo: string): string => join(cache, `models--${repo.replace("/", "--")}`);

const isCommit = (revision: string): boolean => /^[0-9a-f]{40}$/.test(revision);

/** The snapshot folder of a revision already in the cache (refs/<rev> or the commit itself), if any. */
export function cachedSnapshot(ref: HubModelRef, cache = hubCacheDir()): string | undefined {
  const folder = repoFolder(cache, ref.repo);
  let commit: string | undefined;
  if (isCommit(ref.revision)) commit = ref.revision;
  else if (isSafeRevision(ref.revision) && existsSync(join(folder, "refs", ref.revision))) commit = readFileSync(join(folder, "refs", ref.revision), "utf8").trim();
  if (!commit || !isCommit(commit)) return undefined;
  const snapshot = join(folder, "snapshots", commit);
  return existsSync(join(snapshot, "config.json")) && hasWeights(snapshot) ? snapshot : undefined;
}

function hasWeights(dir: string): boolean {
  if (existsSync(join(dir, "model.safetensors"))) return true;
  const index = join(dir, "model.safetensors.index.json");
  if (!existsSync(index)) return false;
  let shards: string[];
  try {
    shards = indexShards(JSON.parse(readFileSync(index, "utf8")), index);
  } catch {
    return false;
  }
  return shards.every((shard) => existsSync(join(dir, shard)));
}

/** The shard names of a model.safetensors.index.json, each a safe relative name; throws naming a bad one. */
export function indexShards(index: unknown, source: string, ref?: HubModelRef): string[] {
  const map = index !== null && typeof index === "object" ? (index as { weight_map?: unknown }).weight_map : undefined;
  if (map === null || typeof map !== "object" || Array.isArray(map)) throw new InputError(source, undefined, "weight_map", `must be an object of tensor name -> shard file, got ${JSON.stringify(map)?.slice(0, 100)}`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const shard of shards) {
    if (isSafeRepoFile(shard)) continue;
    if (ref) throw refuseName(ref, "the shard name", shard, source);
    throw new InputError(source, undefined, "weight_map", `the shard name ${JSON.stringify(shard)?.slice(0, 200)} is not a relative file name inside the model folder`);
  }
  return (shards as string[]).sort();
}

export interface HubDownloadOptions {
  env?: NodeJS.ProcessEnv;
  /** Progress lines go here (default process.stderr); null for none. */
  progress?: NodeJS.WritableStream | null;
  /** Attempts per file when the connection drops (each resumes where the last stopped). Default 5. */
  retries?: number;
  /** Only these files (default: config, generation config, tokenizer files and the safetensors weights). */
  files?: (siblings: readonly string[]) => string[];
}

const WANTED = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"];

/** The files ktu needs from a model repo: config, tokenizer, generation config, safetensors weights (sharded or not). */
export function wantedFiles(siblings: readonly string[]): string[] {
  const names = new Set(siblings);
  const files = WANTED.filter((f) => names.has(f));
  if (names.has("model.safetensors")) files.push("model.safetensors");
  else if (names.has("model.safetensors.index.json")) files.push("model.safetensors.index.json");
  return files;
}

/** The request headers for a URL: the Bearer token only when the URL is on $HF_ENDPOINT's origin, never another host's. */
function headersFor(url: string, env: NodeJS.ProcessEnv, extra: Record<string, string> = {}): Record<string, string> {
  const token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  const sameOrigin = new URL(url).origin === new URL(hubEndpoint(env)).origin;
  return token && sameOrigin ? { ...extra, authorization: `Bearer ${token}` } : { ...extra };
}

/**
 * fetch that follows redirects itself (up to 10; none with `follow: false`), so that each hop's headers
 * are chosen for its own URL: the token goes to $HF_ENDPOINT's origin only, on any method.
 */
async function fetchNoLeak(url: string, method: "GET" | "HEAD", extra: Record<string, string>, env: NodeJS.ProcessEnv, follow = true): Promise<Response> {
  let target = url;
  for (let hops = 0; ; hops++) {
    const response = await fetch(target, { method, headers: headersFor(target, env, extra), redirect: "manual" });
    const location = response.headers.get("location");
    if (!follow || response.status < 300 || response.status >= 400 || !location || hops >= 10) {
      Object.defineProperty(response, "finalUrl", { value: target });
      return response;
    }
    await response.body?.cancel().catch(() => undefined);
    target = new URL(location, target).href;
  }
}

/** The URL a fetchNoLeak response came from. */
const finalUrl = (response: Response, fallback: string): string => (response as { finalUrl?: string }).finalUrl ?? fallback;

/** A clear error for a failed hub response, by status and huggingface's X-Error-Code. */
async function hubFailure(response: Response, ref: HubModelRef, what: string, env: NodeJS.ProcessEnv): Promise<HubError> {
  const code = response.headers.get("x-error-code") ?? "";
  const serverMessage = response.headers.get("x-error-message") ?? (await response.text().catch(() => "")).slice(0, 200);
  const page = `${hubEndpoint(env)}/${ref.repo}`;
  const token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN ? "the HF_TOKEN that was sent" : "no HF_TOKEN was set";
  const name = `hf:${ref.repo}@${ref.revision}`;
  if (code === "GatedRepo" || (response.status === 403 && /gated|access to model/i.test(serverMessage))) {
    return new HubError(`${name}: a gated model (${response.status}); accept its license at ${page} and set HF_TOKEN to a token of that account (${token})`, response.status);
  }
  if (response.status === 401) return new HubError(`${name}: ${response.status} unauthorized for ${what}; the repo is private or does not exist (${token}): set HF_TOKEN to a token with access`, 401);
  if (response.status === 403) return new HubError(`${name}: 403 forbidden for ${what} (${token}): the token has no access to ${page}`, 403);
  if (response.status === 404) {
    if (code === "RevisionNotFound") return new HubError(`${name}: revision ${JSON.stringify(ref.revision)} not found in ${page}`, 404);
    if (code === "EntryNotFound") return new HubError(`${name}: ${what} not found in the repo`, 404);
    return new HubError(`${name}: no such model at ${hubEndpoint(env)} (404 for ${what}); check the name (ORG/NAME)`, 404);
  }
  return new HubError(`${name}: ${what}: HTTP ${response.status} ${serverMessage}`.trim(), response.status);
}

/** fetch with three tries on network errors (a reused keep-alive connection the server closed, a blip). */
async function hubFetch(url: string, method: "GET" | "HEAD", extra: Record<string, string>, env: NodeJS.ProcessEnv, ref: HubModelRef, what: string, follow = true): Promise<Response> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await fetchNoLeak(url, method, extra, env, follow);
    } catch (error) {
      last = error;
      const code = (error as { cause?: { code?: string } }).cause?.code;
      if (code === "ECONNREFUSED" || code === "ENOTFOUND") break;
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
  }
  const cause = (last as { cause?: { message?: string; code?: string } }).cause;
  throw new HubError(`hf:${ref.repo}@${ref.revision}: cannot reach ${new URL(url).origin} for ${what}: ${cause?.code ?? cause?.message ?? (last as Error).message} (set HF_HUB_OFFLINE=1 to use the cache alone)`);
}

interface FileMeta {
  etag: string;
  size: number | undefined;
  /** Where the bytes are (the CDN location after an LFS redirect). */
  url: string;
  commit: string | undefined;
}

const unquote = (etag: string | null): string | undefined => etag?.replace(/^W\//, "").replace(/^"|"$/g, "") || undefined;

/** HEAD .../resolve/REV/FILE without following redirects, as huggingface_hub's get_hf_file_metadata. */
async function fileMeta(ref: HubModelRef, revision: string, file: string, env: NodeJS.ProcessEnv, listedSize: number | undefined): Promise<FileMeta> {
  const url = `${hubEndpoint(env)}/${ref.repo}/resolve/${encodeURIComponent(revision)}/${file.split("/").map(encodeURIComponent).join("/")}`;
  const headers = { "accept-encoding": "identity" };
  let response = await hubFetch(url, "HEAD", headers, env, ref, file, false);
  let target = url;
  // A relative redirect (a renamed repo) is followed; an absolute one is the LFS CDN: its metadata is here.
  for (let hops = 0; response.status >= 300 && response.status < 400 && hops < 5; hops++) {
    const location = response.headers.get("location");
    if (!location) break;
    const next = new URL(location, target).href;
    if (response.headers.get("x-linked-etag") || response.headers.get("x-linked-size")) {
      target = next;
      break;
    }
    target = next;
    response = await hubFetch(target, "HEAD", headers, env, ref, file, false);
  }
  if (response.status >= 400) throw await hubFailure(response, ref, file, env);
  const etag = unquote(response.headers.get("x-linked-etag")) ?? unquote(response.headers.get("etag"));
  if (!etag) throw new HubError(`hf:${ref.repo}@${ref.revision}: ${file}: the server sent no ETag, so the download cannot be checked or cached`);
  // The blob is named by the ETag and checked against it: only a sha1 or sha256 hex digest is either a safe name or a checksum.
  if (!isDigestEtag(etag)) throw refuseName(ref, `the ETag of ${file}`, etag, target.replace(/\?.*$/, "") + " (not a sha1 or sha256 hex digest, so the download could not be checked)");
  const sizeText = response.headers.get("x-linked-size") ?? response.headers.get("content-length");
  const announced = sizeText !== null && /^\d+$/.test(sizeText) ? Number(sizeText) : undefined;
  if (announced !== undefined && listedSize !== undefined && announced !== listedSize) {
    throw new HubError(`hf:${ref.repo}@${ref.revision}: ${file}: the server announced ${announced} bytes, its file list ${listedSize}; refusing to download`);
  }
  return { etag, size: announced ?? listedSize, url: target, commit: response.headers.get("x-repo-commit") ?? undefined };
}

class Progress {
  private last = 0;
  private readonly tty: boolean;
  constructor(
    private readonly out: NodeJS.WritableStream | null,
    private readonly label: string,
    private readonly total: number | undefined,
  ) {
    this.tty = Boolean((out as { isTTY?: boolean } | null)?.isTTY);
  }
  update(done: number, force = false): void {
    if (!this.out) return;
    const now = Date.now();
    if (!force && now - this.last < (this.tty ? 200 : 2000)) return;
    this.last = now;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const fraction = this.total ? Math.min(1, done / this.total) : undefined;
    const bar = fraction === undefined ? "" : `[${"#".repeat(Math.round(fraction * 24)).padEnd(24, ".")}] ${(fraction * 100).toFixed(1).padStart(5)}% `;
    const text = `${this.label} ${bar}${mb(done)}${this.total ? `/${mb(this.total)}` : ""} MB`;
    this.out.write(this.tty ? `\r${text}\x1b[K${force ? "\n" : ""}` : `${text}\n`);
  }
}

/** sha256 (an LFS file's ETag) or the git blob sha1 (a small file's ETag) of a file; undefined for other ETags. */
async function contentHash(path: string, etag: string): Promise<string | undefined> {
  const kind = /^[0-9a-f]{64}$/.test(etag) ? "sha256" : /^[0-9a-f]{40}$/.test(etag) ? "sha1" : undefined;
  if (!kind) return undefined;
  const hash = createHash(kind);
  if (kind === "sha1") hash.update(`blob ${statSync(path).size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Downloads into blobs/<etag>, resuming blobs/<etag>.incomplete with Range after a drop. */
async function downloadBlob(ref: HubModelRef, file: string, meta: FileMeta, blob: string, env: NodeJS.ProcessEnv, options: HubDownloadOptions): Promise<void> {
  const partial = `${blob}.incomplete`;
  mkdirSync(dirname(blob), { recursive: true });
  const progress = new Progress(options.progress === undefined ? process.stderr : options.progress, `hf:${ref.repo} ${file}`, meta.size);
  const attempts = options.retries ?? 5;
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const have = existsSync(partial) ? statSync(partial).size : 0;
    if (meta.size !== undefined && have === meta.size) break;
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (have > 0) headers.range = `bytes=${have}-`;
    // The CDN of an LFS redirect is another host: the token is sent to $HF_ENDPOINT's origin only (headersFor).
    let response: Response;
    try {
      response = await fetchNoLeak(meta.url, "GET", headers, env);
    } catch (error) {
      lastError = error as Error;
      await new Promise((r) => setTimeout(r, Math.min(4000, 250 * 2 ** (attempt - 1))));
      continue;
    }
    if (response.status === 416 && meta.size !== undefined && have >= meta.size) break;
    if (response.status >= 400) throw await hubFailure(response, ref, file, env);
    const append = response.status === 206 && have > 0;
    const handle = await open(partial, append ? "a" : "w");
    let done = append ? have : 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        await handle.write(chunk);
        done += chunk.length;
        progress.update(done);
      }
      await handle.close();
      lastError = undefined;
      if (meta.size === undefined || done >= meta.size) break;
      lastError = new Error(`connection closed after ${done} of ${meta.size} bytes`);
    } catch (error) {
      await handle.close().catch(() => undefined);
      lastError = error as Error;
      (options.progress === undefined ? process.stderr : options.progress)?.write(`\nhf:${ref.repo} ${file}: connection dropped at ${done} bytes (${(error as Error).message}); resuming (attempt ${attempt + 1} of ${attempts})\n`);
      await new Promise((r) => setTimeout(r, Math.min(4000, 250 * 2 ** (attempt - 1))));
    }
  }
  if (lastError) throw new HubError(`hf:${ref.repo}@${ref.revision}: ${file}: download failed after ${attempts} attempts: ${lastError.message}; run again to resume from ${partial}`);
  if (!existsSync(partial)) throw new HubError(`hf:${ref.repo}@${ref.revision}: ${file}: the server sent no body`);
  const size = statSync(partial).size;
  if (meta.size !== undefined && size !== meta.size) {
    rmSync(partial, { force: true });
    throw new HubError(`hf:${ref.repo}@${ref.revision}: ${file}: got ${size} bytes, the server announced ${meta.size}; the partial file was removed`);
  }
  // fileMeta admits digest ETags only, so every blob kept is checked here.
  const hash = await contentHash(partial, meta.etag);
  if (hash !== meta.etag) {
    rmSync(partial, { force: true });
    throw new HubError(`hf:${ref.repo}@${ref.revision}: ${file}: checksum ${hash} does not match the ETag ${meta.etag}; the download was removed, run again`);
  }
  progress.update(size, true);
  renameSync(partial, blob);
}

/** snapshots/<commit>/<file> -> ../../blobs/<etag> (relative, as huggingface_hub links). */
function linkSnapshot(snapshot: string, file: string, blob: string): void {
  const link = join(snapshot, file);
  mkdirSync(dirname(link), { recursive: true });
  const target = relative(dirname(link), blob);
  try {
    if (readlinkSync(link) === target) return;
    unlinkSync(link);
  } catch {
    // no link yet
  }
  symlinkSync(target, link);
}

async function fetchFile(ref: HubModelRef, commit: string, file: string, folder: string, env: NodeJS.ProcessEnv, options: HubDownloadOptions, sizes: ReadonlyMap<string, number>): Promise<void> {
  checkRepoFile(ref, file, "the repo's file list");
  if (!isCommit(commit)) throw refuseName(ref, "the commit", commit, "the hub");
  const snapshot = join(folder, "snapshots", commit);
  if (existsSync(join(snapshot, file))) return;
  const meta = await fileMeta(ref, commit, file, env, sizes.get(file));
  const blob = join(folder, "blobs", meta.etag);
  if (!existsSync(blob)) await downloadBlob(ref, file, meta, blob, env, options);
  linkSnapshot(snapshot, file, blob);
}

/** The repo's commit and file names at a revision (GET /api/models/ORG/NAME/revision/REV). */
async function repoInfo(ref: HubModelRef, env: NodeJS.ProcessEnv): Promise<{ commit: string; files: string[]; sizes: Map<string, number> }> {
  const url = `${hubEndpoint(env)}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}?blobs=true`;
  const response = await hubFetch(url, "GET", {}, env, ref, "the model's file list");
  if (!response.ok) throw await hubFailure(response, ref, "the model's file list", env);
  const info = (await response.json().catch(() => null)) as { sha?: unknown; siblings?: unknown } | null;
  if (info === null || typeof info !== "object" || typeof info.sha !== "string" || !Array.isArray(info.siblings)) throw new HubError(`hf:${ref.repo}@${ref.revision}: ${url} did not answer like the hub (no sha or siblings)`);
  if (!isCommit(info.sha)) throw refuseName(ref, "the commit", info.sha, url + " (not 40 hex digits)");
  const files: string[] = [];
  const sizes = new Map<string, number>();
  for (const sibling of info.siblings as { rfilename?: unknown; size?: unknown; lfs?: { size?: unknown } }[]) {
    const name = sibling?.rfilename;
    if (typeof name !== "string") continue;
    files.push(name);
    const size = sibling.lfs?.size ?? sibling.size;
    if (typeof size === "number" && Number.isSafeInteger(size) && size >= 0) sizes.set(name, size);
  }
  return { commit: info.sha, files, sizes };
}

/**
 * Downloads (or finds in the cache) a model by hub name and returns its snapshot folder, which
 * openModel reads like any model folder.
 */
export async function downloadHubModel(spec: string, options: HubDownloadOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const ref = parseHubSpec(spec);
  const cache = hubCacheDir(env);
  const folder = repoFolder(cache, ref.repo);
  if (offline(env)) {
    const found = cachedSnapshot(ref, cache);
    if (!found) throw new HubError(`hf:${ref.repo}@${ref.revision}: HF_HUB_OFFLINE is set and the model is not in the cache ${folder} (no complete snapshot for ${ref.revision}); download it once without HF_HUB_OFFLINE`);
    return found;
  }
  const { commit, files: siblings, sizes } = await repoInfo(ref, env);
  const files = (options.files ?? wantedFiles)(siblings);
  for (const file of files) checkRepoFile(ref, file, "the repo's file list");
  if (!files.includes("config.json")) throw new HubError(`hf:${ref.repo}@${ref.revision}: the repo has no config.json, so it is not a transformers model ktu can run (files: ${siblings.slice(0, 10).join(", ")})`);
  if (!files.some((f) => f.startsWith("model.safetensors"))) {
    throw new HubError(`hf:${ref.repo}@${ref.revision}: the repo has no model.safetensors or model.safetensors.index.json (PyTorch .bin or GGUF weights are not read by ktu)`);
  }
  const snapshot = join(folder, "snapshots", commit);
  await fetchFile(ref, commit, "config.json", folder, env, options, sizes);
  try {
    readHfConfig(snapshot);
  } catch (error) {
    throw new HubError(`hf:${ref.repo}@${ref.revision}: a model type ktu does not run: ${(error as Error).message}`);
  }
  for (const file of files) if (file !== "config.json") await fetchFile(ref, commit, file, folder, env, options, sizes);
  const index = join(snapshot, "model.safetensors.index.json");
  if (existsSync(index)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(index, "utf8"));
    } catch (error) {
      throw new HubError(`hf:${ref.repo}@${ref.revision}: model.safetensors.index.json is not JSON: ${(error as Error).message}`);
    }
    // Every shard name is checked before the first is fetched.
    const shards = indexShards(parsed, "model.safetensors.index.json", ref);
    for (const shard of shards) await fetchFile(ref, commit, shard, folder, env, options, sizes);
  }
  if (!isCommit(ref.revision)) {
    // A revision may hold slashes (refs/pr/1): huggingface_hub nests the ref file the same way.
    mkdirSync(dirname(join(folder, "refs", ref.revision)), { recursive: true });
    writeFileAtomicSync(join(folder, "refs", ref.revision), commit);
  }
  return snapshot;
}

/**
 * The same, synchronously, for the synchronous model loaders (openModel): from the cache when
 * HF_HUB_OFFLINE is set, else in a child process that runs downloadHubModel (progress on stderr).
 */
export function resolveHubModelSync(spec: string, env: NodeJS.ProcessEnv = process.env): string {
  const ref = parseHubSpec(spec);
  if (offline(env)) {
    const found = cachedSnapshot(ref, hubCacheDir(env));
    if (!found) throw new HubError(`hf:${ref.repo}@${ref.revision}: HF_HUB_OFFLINE is set and the model is not in the cache ${repoFolder(hubCacheDir(env), ref.repo)}; download it once without HF_HUB_OFFLINE`);
    return found;
  }
  const tsx = import.meta.resolve("tsx/esm/api");
  const self = import.meta.url;
  const boot = `const m = await import(${JSON.stringify(tsx)}); m.register(); const hub = await import(${JSON.stringify(self)});
try { process.stdout.write(await hub.downloadHubModel(process.argv[1]) + "\\n"); } catch (e) { process.stdout.write("ERROR " + JSON.stringify({ message: e.message, status: e.status }) + "\\n"); }`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", boot, spec], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env, maxBuffer: 1 << 20 });
  const last = out.trim().split("\n").at(-1) ?? "";
  if (last.startsWith("ERROR ")) {
    const { message, status } = JSON.parse(last.slice(6)) as { message: string; status?: number };
    throw new HubError(message, status);
  }
  return last;
}

/** A model argument as a local path: `hf:ORG/NAME[@REV]` is downloaded (or found in the cache), anything else is returned as is. */
export const resolveModelPath = (spec: string): string => (isHubSpec(spec) ? resolveHubModelSync(spec) : spec);

/** What a repo folder of the cache holds: its revisions (refs) and snapshots. */
export function cachedRevisions(repo: string, cache = hubCacheDir()): { refs: Record<string, string>; snapshots: string[] } {
  const folder = repoFolder(cache, repo);
  const refsDir = join(folder, "refs");
  const refs = existsSync(refsDir) ? Object.fromEntries(readdirSync(refsDir).map((name) => [name, readFileSync(join(refsDir, name), "utf8").trim()])) : {};
  const snapshotsDir = join(folder, "snapshots");
  return { refs, snapshots: existsSync(snapshotsDir) ? readdirSync(snapshotsDir) : [] };
}
