/**
 * The kernel process against an oversized message on a raw DEALER socket: zeromq's maxMessageSize
 * refuses it (disconnecting that peer) before the kernel buffers it, so the kernel never sees it; the
 * next, valid request from another socket is answered.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Dealer } from "zeromq";
import { decode, encode, makeHeader, Signer, type ConnectionInfo } from "../kernel/wire.ts";
import { repoRoot } from "../src/util/paths.ts";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("an oversized frame is refused by zeromq (maxMessageSize) before the kernel reads it; the kernel answers the next request", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ktu-kernel-limit-"));
  const info: ConnectionInfo = { transport: "tcp", ip: "127.0.0.1", shell_port: await freePort(), iopub_port: await freePort(), stdin_port: await freePort(), control_port: await freePort(), hb_port: await freePort(), key: "k3y", signature_scheme: "hmac-sha256" };
  const file = join(dir, "connection.json");
  writeFileSync(file, JSON.stringify(info));
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "kernel", "main.ts"), "-f", file], { cwd: repoRoot, env: { ...process.env, KTU_KERNEL_MAX_MESSAGE_BYTES: "1000000" }, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const signer = new Signer(info.key);
  const request = (msgType: string) => encode({ identities: [], header: makeHeader(msgType, "test"), parent_header: {}, metadata: {}, content: {} }, signer);
  try {
    const big = new Dealer();
    big.connect(`tcp://127.0.0.1:${info.shell_port}`);
    // One 2 MB frame (the content), signed: without maxMessageSize the kernel buffered it and logged it as dropped.
    const frames = request("kernel_info_request");
    frames[frames.length - 1] = Buffer.from(JSON.stringify({ pad: "x".repeat(2_000_000) }));
    await big.send(frames);
    const ok = new Dealer({ receiveTimeout: 60_000 });
    ok.connect(`tcp://127.0.0.1:${info.shell_port}`);
    await ok.send(request("kernel_info_request"));
    const [reply] = await Promise.all([ok.receive()]);
    const decoded = decode(reply!, signer);
    assert.ok(decoded.ok, JSON.stringify(decoded));
    assert.equal(decoded.message.header.msg_type, "kernel_info_reply");
    await new Promise((r) => setTimeout(r, 300));
    assert.doesNotMatch(log, /dropped a \d+-byte message/, "the big message never reached the kernel's read loop");
    big.close();
    ok.close();
  } finally {
    child.kill("SIGKILL");
  }
});
