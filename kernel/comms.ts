import { randomUUID } from "node:crypto";
import type { CommLike, CommManagerLike } from "./io.ts";

type Publish = (msgType: string, content: Record<string, unknown>, metadata?: Record<string, unknown>, buffers?: Buffer[]) => void;

/**
 * Comms in both directions (enough for live updates without widgets): the frontend opens a comm to a
 * target that cell code registered, or cell code opens one; messages go to `onMsg`.
 */
class Comm implements CommLike {
  onMsg?: (data: unknown, message: Record<string, unknown>) => void;
  onClose?: (data: unknown) => void;
  closed = false;
  constructor(
    readonly id: string,
    readonly targetName: string,
    private readonly publish: Publish,
    private readonly forget: (id: string) => void,
  ) {}

  send(data: unknown, metadata: Record<string, unknown> = {}, buffers: Buffer[] = []): void {
    if (this.closed) throw new Error(`comm ${this.id} (${this.targetName}) is closed`);
    this.publish("comm_msg", { comm_id: this.id, data: data ?? {} }, metadata, buffers);
  }

  close(data: unknown = {}): void {
    if (this.closed) return;
    this.closed = true;
    this.forget(this.id);
    this.publish("comm_close", { comm_id: this.id, data });
  }
}

export class CommManager implements CommManagerLike {
  private readonly targets = new Map<string, (comm: CommLike, data: unknown) => void>();
  private readonly comms = new Map<string, Comm>();
  constructor(
    private readonly publish: Publish,
    private readonly log: (line: string) => void,
  ) {}

  private make(id: string, target: string): Comm {
    const comm = new Comm(id, target, this.publish, (gone) => this.comms.delete(gone));
    this.comms.set(id, comm);
    return comm;
  }

  registerTarget(targetName: string, handler: (comm: CommLike, data: unknown) => void): void {
    this.targets.set(targetName, handler);
  }

  open(targetName: string, data: unknown = {}, metadata: Record<string, unknown> = {}): CommLike {
    const comm = this.make(randomUUID(), targetName);
    this.publish("comm_open", { comm_id: comm.id, target_name: targetName, data }, metadata);
    return comm;
  }

  info(targetName?: string): Record<string, { target_name: string }> {
    const comms: Record<string, { target_name: string }> = {};
    for (const [id, comm] of this.comms) if (!targetName || comm.targetName === targetName) comms[id] = { target_name: comm.targetName };
    return comms;
  }

  /** comm_open, comm_msg or comm_close from the frontend. */
  handle(msgType: string, content: Record<string, unknown>, message: Record<string, unknown>): void {
    const id = String(content.comm_id ?? "");
    if (msgType === "comm_open") {
      const target = String(content.target_name ?? "");
      const handler = this.targets.get(target);
      if (!handler) {
        this.log(`comm_open for unknown target ${JSON.stringify(target)}; closing comm ${id}`);
        this.publish("comm_close", { comm_id: id, data: {} });
        return;
      }
      handler(this.make(id, target), content.data);
      return;
    }
    const comm = this.comms.get(id);
    if (!comm) {
      this.log(`${msgType} for unknown comm ${JSON.stringify(id)}; ignored`);
      return;
    }
    if (msgType === "comm_msg") comm.onMsg?.(content.data, message);
    else if (msgType === "comm_close") {
      comm.closed = true;
      this.comms.delete(id);
      comm.onClose?.(content.data);
    }
  }
}
