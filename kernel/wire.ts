import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { InputError } from "../src/util/errors.ts";

/** The Jupyter messaging protocol version this kernel speaks. */
export const PROTOCOL_VERSION = "5.3";
const DELIMITER = Buffer.from("<IDS|MSG>");

/** The connection file a frontend writes before starting the kernel. */
export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme: string;
  kernel_name?: string;
}

export function readConnectionFile(path: string): ConnectionInfo {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new InputError(path, undefined, undefined, `not a readable JSON connection file (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null) throw new InputError(path, undefined, undefined, "expected a JSON object");
  const info = parsed as Record<string, unknown>;
  for (const field of ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"]) {
    const port = info[field];
    if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535) {
      throw new InputError(path, undefined, field, `must be a port number, got ${JSON.stringify(port)}`);
    }
  }
  const transport = info.transport ?? "tcp";
  if (transport !== "tcp" && transport !== "ipc") throw new InputError(path, undefined, "transport", `must be "tcp" or "ipc", got ${JSON.stringify(transport)}`);
  if (typeof info.ip !== "string" || info.ip === "") throw new InputError(path, undefined, "ip", "must be a non-empty string");
  const key = info.key ?? "";
  if (typeof key !== "string") throw new InputError(path, undefined, "key", "must be a string");
  const scheme = info.signature_scheme ?? "hmac-sha256";
  if (scheme !== "hmac-sha256") throw new InputError(path, undefined, "signature_scheme", `only hmac-sha256 is supported, got ${JSON.stringify(scheme)}`);
  return { ...(info as unknown as ConnectionInfo), transport, key, signature_scheme: scheme };
}

/** The endpoint of one channel, bound to the connection file's address only. */
export function endpoint(info: ConnectionInfo, port: number): string {
  return info.transport === "ipc" ? `ipc://${info.ip}-${port}` : `tcp://${info.ip}:${port}`;
}

export interface Header {
  msg_id: string;
  session: string;
  username: string;
  date: string;
  msg_type: string;
  version: string;
}

export interface Message {
  identities: Buffer[];
  header: Header;
  parent_header: Partial<Header>;
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
  buffers: Buffer[];
}

/** HMAC-SHA256 over the four serialized dicts; an empty key means messages are not signed. */
export class Signer {
  private readonly key: Buffer;
  constructor(key: string) {
    this.key = Buffer.from(key, "utf8");
  }

  get signs(): boolean {
    return this.key.length > 0;
  }

  sign(parts: Buffer[]): string {
    if (!this.signs) return "";
    const hmac = createHmac("sha256", this.key);
    for (const part of parts) hmac.update(part);
    return hmac.digest("hex");
  }

  /** Constant-time check, so the time taken says nothing about how much of a forged signature matched. */
  verify(signature: Buffer, parts: Buffer[]): boolean {
    if (!this.signs) return true;
    const expected = Buffer.from(this.sign(parts), "utf8");
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  }
}

export type Decoded = { ok: true; message: Message } | { ok: false; reason: string };

/**
 * Splits a multipart message into identities and parts, checks the signature BEFORE parsing any JSON
 * (so a forged message never reaches the JSON parser, let alone the interpreter), then parses.
 */
export function decode(frames: Buffer[], signer: Signer): Decoded {
  const split = frames.findIndex((frame) => frame.equals(DELIMITER));
  if (split < 0) return { ok: false, reason: "no <IDS|MSG> delimiter" };
  if (frames.length < split + 6) return { ok: false, reason: `expected 5 frames after the delimiter, got ${frames.length - split - 1}` };
  const [signature, ...rest] = frames.slice(split + 1);
  const parts = rest.slice(0, 4);
  if (!signer.verify(signature!, parts)) return { ok: false, reason: "bad signature" };
  const dicts: Record<string, unknown>[] = [];
  const names = ["header", "parent_header", "metadata", "content"];
  for (let i = 0; i < 4; i++) {
    let value: unknown;
    try {
      value = JSON.parse(parts[i]!.toString("utf8"));
    } catch (error) {
      return { ok: false, reason: `${names[i]} is not JSON (${(error as Error).message})` };
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, reason: `${names[i]} is not a JSON object` };
    dicts.push(value as Record<string, unknown>);
  }
  const header = dicts[0] as unknown as Header;
  if (typeof header.msg_type !== "string" || typeof header.msg_id !== "string") return { ok: false, reason: "header lacks msg_type or msg_id" };
  return {
    ok: true,
    message: {
      identities: frames.slice(0, split),
      header,
      parent_header: dicts[1] as Partial<Header>,
      metadata: dicts[2]!,
      content: dicts[3]!,
      buffers: rest.slice(4),
    },
  };
}

export function encode(message: Omit<Message, "buffers"> & { buffers?: Buffer[] }, signer: Signer): Buffer[] {
  const parts = [message.header, message.parent_header, message.metadata, message.content].map((dict) => Buffer.from(JSON.stringify(dict), "utf8"));
  return [...message.identities, DELIMITER, Buffer.from(signer.sign(parts), "utf8"), ...parts, ...(message.buffers ?? [])];
}

export function makeHeader(msgType: string, session: string): Header {
  return { msg_id: randomUUID(), session, username: "kernel", date: new Date().toISOString(), msg_type: msgType, version: PROTOCOL_VERSION };
}
