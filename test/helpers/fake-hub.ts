/**
 * A small HTTP server that answers like the Hugging Face hub's file API, serving model folders:
 *   GET  /api/models/ORG/NAME[/revision/REV]   {id, sha, siblings: [{rfilename}]}
 *   GET  /api/models/ORG/NAME/tree/REV          [{type, path, size, oid, lfs?: {oid, size}}]
 *   HEAD|GET /ORG/NAME/resolve/REV/FILE         small files: 200 with ETag (git blob sha1), X-Repo-Commit,
 *                                               Content-Length; LFS files (*.safetensors): 302 to /cdn/<sha256>
 *                                               with X-Linked-Etag (the sha256), X-Linked-Size, X-Repo-Commit
 *   GET  /cdn/<sha256>                          the bytes, with Range (206) support
 * Options make a repo gated or private (token required), drop a connection mid-file once, and count
 * requests.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";

export interface FakeRepo {
  /** Folder whose files are the repo's files. */
  dir: string;
  /** Requires `Authorization: Bearer <token>`; without it: 401 (private) or 403 GatedRepo (gated). */
  token?: string;
  gated?: boolean;
  /** Extra files (name -> content) on top of the folder's. */
  extra?: Record<string, string | Uint8Array>;
}

interface FileEntry {
  bytes: Buffer;
  lfs: boolean;
  sha256: string;
  gitSha1: string;
}

export interface FakeHub {
  readonly url: string;
  readonly commit: string;
  /** Request lines seen, e.g. "HEAD /org/name/resolve/<sha>/config.json". */
  readonly requests: string[];
  /** Authorization headers seen. */
  readonly authorizations: (string | undefined)[];
  /** The next GET of this file (resolve or CDN) is cut after `afterBytes` bytes. */
  dropOnce(file: string, afterBytes: number): void;
  close(): Promise<void>;
}

export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const commit = randomBytes(20).toString("hex");
  const files = new Map<string, Map<string, FileEntry>>();
  const bySha = new Map<string, { repo: string; file: string; entry: FileEntry }>();
  for (const [repo, spec] of Object.entries(repos)) {
    const map = new Map<string, FileEntry>();
    const add = (name: string, bytes: Buffer) => {
      const entry: FileEntry = {
        bytes,
        lfs: name.endsWith(".safetensors"),
        sha256: createHash("sha256").update(bytes).digest("hex"),
        gitSha1: createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex"),
      };
      map.set(name, entry);
      if (entry.lfs) bySha.set(entry.sha256, { repo, file: name, entry });
    };
    for (const name of readdirSync(spec.dir)) if (statSync(join(spec.dir, name)).isFile()) add(name, readFileSync(join(spec.dir, name)));
    for (const [name, content] of Object.entries(spec.extra ?? {})) add(name, Buffer.from(content));
    files.set(repo, map);
  }
  const requests: string[] = [];
  const authorizations: (string | undefined)[] = [];
  const drops = new Map<string, number>();

  const refuse = (res: ServerResponse, spec: FakeRepo): void => {
    if (spec.gated) {
      res.writeHead(403, { "x-error-code": "GatedRepo", "x-error-message": "Access to model is restricted. You must have access to it and be authenticated to access it. Please log in." });
    } else res.writeHead(401, { "x-error-code": "RepoNotFound", "x-error-message": "Invalid credentials in Authorization header" });
    res.end();
  };
  const send = (req: IncomingMessage, res: ServerResponse, key: string, entry: FileEntry, headers: Record<string, string>): void => {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    let start = 0;
    let end = entry.bytes.length - 1;
    if (range) {
      start = Number(range[1]);
      if (range[2]) end = Number(range[2]);
      if (start >= entry.bytes.length) {
        res.writeHead(416, { "content-range": `bytes */${entry.bytes.length}` });
        res.end();
        return;
      }
    }
    const body = entry.bytes.subarray(start, end + 1);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      "content-length": String(body.length),
      "accept-ranges": "bytes",
      ...(range ? { "content-range": `bytes ${start}-${end}/${entry.bytes.length}` } : {}),
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const drop = drops.get(key);
    if (drop !== undefined) {
      drops.delete(key);
      res.write(body.subarray(0, drop));
      // A dropped connection: the body stops short of Content-Length.
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    res.end(body);
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    requests.push(`${req.method} ${url.pathname}`);
    authorizations.push(req.headers.authorization);
    const path = decodeURIComponent(url.pathname);
    const authorized = (spec: FakeRepo) => !spec.token || req.headers.authorization === `Bearer ${spec.token}`;
    let m = /^\/api\/models\/([^/]+\/[^/]+)(?:\/(revision|tree)\/([^/]+))?\/?$/.exec(path);
    if (m) {
      const [, repo, kind, rev] = m;
      const spec = repos[repo!];
      if (!spec) {
        res.writeHead(404, { "x-error-code": "RepoNotFound", "content-type": "application/json" });
        res.end(JSON.stringify({ error: "Repository not found" }));
        return;
      }
      if (!authorized(spec)) return refuse(res, spec);
      if (rev && rev !== "main" && rev !== commit) {
        res.writeHead(404, { "x-error-code": "RevisionNotFound", "content-type": "application/json" });
        res.end(JSON.stringify({ error: `Invalid rev id: ${rev}` }));
        return;
      }
      const map = files.get(repo!)!;
      res.writeHead(200, { "content-type": "application/json" });
      if (kind === "tree") {
        res.end(JSON.stringify([...map].map(([name, e]) => ({ type: "file", path: name, size: e.bytes.length, oid: e.gitSha1, ...(e.lfs ? { lfs: { oid: e.sha256, size: e.bytes.length, pointerSize: 134 } } : {}) }))));
      } else res.end(JSON.stringify({ id: repo, modelId: repo, sha: commit, private: Boolean(spec.token), gated: spec.gated ? "manual" : false, siblings: [...map.keys()].map((rfilename) => ({ rfilename })) }));
      return;
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m) {
      const [, repo, rev, file] = m;
      const spec = repos[repo!];
      if (!spec) {
        res.writeHead(404, { "x-error-code": "RepoNotFound" });
        res.end();
        return;
      }
      if (!authorized(spec)) return refuse(res, spec);
      if (rev !== "main" && rev !== commit) {
        res.writeHead(404, { "x-error-code": "RevisionNotFound" });
        res.end();
        return;
      }
      const entry = files.get(repo!)!.get(file!);
      if (!entry) {
        res.writeHead(404, { "x-error-code": "EntryNotFound", "x-error-message": `${file} does not exist on "${rev}"` });
        res.end();
        return;
      }
      if (entry.lfs) {
        res.writeHead(302, {
          // Another origin, as the hub's LFS CDN is: "localhost" for the server's 127.0.0.1.
          location: `http://localhost:${(server.address() as { port: number }).port}/cdn/${entry.sha256}?repo=${encodeURIComponent(repo!)}`,
          "x-repo-commit": commit,
          "x-linked-etag": `"${entry.sha256}"`,
          "x-linked-size": String(entry.bytes.length),
          etag: `"${entry.gitSha1}"`,
        });
        res.end();
        return;
      }
      return send(req, res, file!, entry, { etag: `"${entry.gitSha1}"`, "x-repo-commit": commit, "content-type": "application/octet-stream" });
    }
    m = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    const hit = m ? bySha.get(m[1]!) : undefined;
    if (hit) return send(req, res, hit.file, hit.entry, { etag: `"${hit.entry.sha256}"`, "content-type": "application/octet-stream" });
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    commit,
    requests,
    authorizations,
    dropOnce: (file, afterBytes) => drops.set(file, afterBytes),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
