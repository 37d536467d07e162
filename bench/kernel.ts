/**
 * Kernel start (process spawn to kernel_info_reply) and the round trip of `1+1` (execute_request to
 * execute_reply), for our kernel, ipykernel (Debian) and tslab, all in the same run.
 *
 *   node --import tsx bench/kernel.ts [--starts 20] [--trips 20] [--budget-s 100]
 *
 * Writes bench/results/kernel.json. Medians; a kernel whose starts exceed the time budget gets fewer
 * runs, and the JSON and the printout say how many.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Dealer } from "zeromq";
import { kernelSpec } from "../kernel/install.ts";
import { decode, encode, makeHeader, Signer, type ConnectionInfo, type Message } from "../kernel/wire.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { repoRoot } from "../src/util/paths.ts";

interface Peer {
  name: string;
  argv: (connectionFile: string) => string[];
}

const PEERS: Peer[] = [
  { name: "know-the-unknown", argv: (f) => (kernelSpec().argv as string[]).map((a) => (a === "{connection_file}" ? f : a)) },
  { name: "ipykernel", argv: (f) => ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", f] },
  { name: "tslab", argv: (f) => [join(repoRoot, "node_modules", ".bin", "tslab"), "kernel", "--config-path", f] },
];

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });

async function connectionFile(dir: string): Promise<{ path: string; info: ConnectionInfo }> {
  const ports = await Promise.all([0, 1, 2, 3, 4].map(() => freePort()));
  const info: ConnectionInfo = {
    transport: "tcp",
    ip: "127.0.0.1",
    shell_port: ports[0]!,
    iopub_port: ports[1]!,
    stdin_port: ports[2]!,
    control_port: ports[3]!,
    hb_port: ports[4]!,
    key: randomBytes(16).toString("hex"),
    signature_scheme: "hmac-sha256",
  };
  const path = join(dir, `kernel-${randomBytes(4).toString("hex")}.json`);
  writeFileSync(path, JSON.stringify(info));
  return { path, info };
}

class Client {
  private readonly shell = new Dealer();
  private readonly signer: Signer;
  private readonly session = randomBytes(8).toString("hex");
  constructor(info: ConnectionInfo) {
    this.signer = new Signer(info.key);
    this.shell.connect(`tcp://${info.ip}:${info.shell_port}`);
  }

  /** Sends a request and resolves with its reply (messages for other requests are skipped). */
  async request(msgType: string, content: Record<string, unknown>): Promise<Message> {
    const header = makeHeader(msgType, this.session);
    await this.shell.send(encode({ identities: [], header, parent_header: {}, metadata: {}, content }, this.signer));
    for (;;) {
      const [frames] = [await this.shell.receive()];
      const decoded = decode(frames, this.signer);
      if (decoded.ok && decoded.message.parent_header.msg_id === header.msg_id) return decoded.message;
    }
  }

  close(): void {
    this.shell.close();
  }
}

const execute = (code: string) => ({ code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true });

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 3000).unref();
  });
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface PeerResult {
  startMs: number;
  starts: number;
  roundTripMs: number;
  trips: number;
  distinctCellMs?: number;
}

async function measure(peer: Peer, dir: string, starts: number, trips: number, budgetMs: number): Promise<PeerResult> {
  const startTimes: number[] = [];
  const tripTimes: number[] = [];
  const distinct: number[] = [];
  const began = Date.now();
  for (let run = 0; run < starts && (run === 0 || Date.now() - began < budgetMs); run++) {
    const { path, info } = await connectionFile(dir);
    const client = new Client(info);
    const t0 = performance.now();
    const child = spawn(peer.argv(path)[0]!, peer.argv(path).slice(1), { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    try {
      const reply = await client.request("kernel_info_request", {});
      startTimes.push(performance.now() - t0);
      if (reply.content.status !== undefined && reply.content.status !== "ok") throw new Error(`${peer.name}: kernel_info_reply ${JSON.stringify(reply.content)}`);
      if (run === 0) {
        // Round trips on the first kernel: one warm-up cell, then `1+1` again and again.
        await client.request("execute_request", execute("1+1"));
        for (let i = 0; i < trips; i++) {
          const t = performance.now();
          await client.request("execute_request", execute("1+1"));
          tripTimes.push(performance.now() - t);
        }
        // Cells never seen before (our kernel type-checks each; a repeated cell is cached).
        for (let i = 0; i < trips; i++) {
          const t = performance.now();
          await client.request("execute_request", execute(`1+${i + 2}`));
          distinct.push(performance.now() - t);
        }
      }
    } finally {
      client.close();
      await stop(child);
    }
  }
  return { startMs: median(startTimes), starts: startTimes.length, roundTripMs: median(tripTimes), trips: tripTimes.length, distinctCellMs: median(distinct) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { starts: { type: "string", default: "20" }, trips: { type: "string", default: "20" }, "budget-s": { type: "string", default: "35" } } });
  const starts = Number(values.starts);
  const trips = Number(values.trips);
  const budgetMs = Number(values["budget-s"]) * 1000;
  const dir = mkdtempSync(join(tmpdir(), "ktu-bench-kernel-"));
  const results: Record<string, PeerResult> = {};
  for (const peer of PEERS) {
    const binary = peer.argv("x")[0]!;
    if (binary.startsWith("/") && !existsSync(binary)) {
      process.stdout.write(`${peer.name}: ${binary} missing, skipped\n`);
      continue;
    }
    results[peer.name] = await measure(peer, dir, starts, trips, budgetMs);
    const r = results[peer.name]!;
    process.stdout.write(
      `${peer.name.padEnd(17)} start ${r.startMs.toFixed(0).padStart(5)} ms (median of ${r.starts})   1+1 round trip ${r.roundTripMs.toFixed(2).padStart(7)} ms (median of ${r.trips})   new cell ${r.distinctCellMs?.toFixed(2).padStart(7)} ms\n`,
    );
  }
  const ours = results["know-the-unknown"];
  const ratios: Record<string, number> = {};
  if (ours) {
    for (const [name, r] of Object.entries(results)) {
      if (name === "know-the-unknown") continue;
      ratios[`start_vs_${name}`] = ours.startMs / r.startMs;
      ratios[`round_trip_vs_${name}`] = ours.roundTripMs / r.roundTripMs;
      ratios[`new_cell_vs_${name}`] = (ours.distinctCellMs ?? NaN) / (r.distinctCellMs ?? NaN);
      process.stdout.write(
        `ours / ${name}: start x${ratios[`start_vs_${name}`]!.toFixed(2)}, 1+1 round trip x${ratios[`round_trip_vs_${name}`]!.toFixed(2)}, new cell x${ratios[`new_cell_vs_${name}`]!.toFixed(2)} (below 1 = ours faster)\n`,
      );
    }
  }
  await writeJsonAtomic(join(repoRoot, "bench", "results", "kernel.json"), {
    date: new Date().toISOString(),
    node: process.version,
    note: "start = spawn to kernel_info_reply; round trip = execute_request to execute_reply of `1+1` repeated (ours: type check cached); new cell = `1+i`, a cell not seen before (ours: full type check)",
    results,
    ratios,
  });
}

await main();
