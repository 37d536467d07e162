import { Publisher, Reply, Router } from "zeromq";
import { CommManager } from "./comms.ts";
import { History } from "./history.ts";
import type { Interpreter } from "./interpreter.ts";
import { executionScope, KernelInterrupt, setKernelIo, type ExecutionState, type KernelIo } from "./io.ts";
import { decode, encode, endpoint, makeHeader, PROTOCOL_VERSION, Signer, type ConnectionInfo, type Message } from "./wire.ts";
import { randomUUID } from "node:crypto";
import { kernelExit } from "./guard.ts";

/** How long a reply waits for outputs still being prepared (a figure's PNG) before it goes without them. */
const PENDING_LIMIT_MS = Number(process.env.KTU_KERNEL_PENDING_LIMIT_MS ?? 60_000);

/** Larger messages are dropped unread (a runaway frontend must not take the kernel's memory); zeromq's maxMessageSize on every socket. */
const MAX_MESSAGE_BYTES = Number(process.env.KTU_KERNEL_MAX_MESSAGE_BYTES ?? 256 * 1024 * 1024);

/** zeromq.js allows one send in flight per socket; this queues the rest in order. */
class Sender {
  private chain: Promise<void> = Promise.resolve();
  constructor(
    private readonly socket: { send(frames: Buffer[]): Promise<void> },
    private readonly log: (line: string) => void,
  ) {}
  send(frames: Buffer[]): Promise<void> {
    this.chain = this.chain.then(() => this.socket.send(frames)).catch((error: unknown) => this.log(`send failed: ${(error as Error).message}`));
    return this.chain;
  }
  /** Settles when everything queued so far has been sent. */
  idle(): Promise<void> {
    return this.chain;
  }
}

const toCodePoints = (text: string, utf16: number): number => [...text.slice(0, utf16)].length;
const toUtf16 = (text: string, codePoints: number): number => [...text].slice(0, Math.max(0, codePoints)).join("").length;

/** The protocol layer: sockets, signatures, the shell queue, iopub, stdin, heartbeat, control. */
export class KernelServer {
  private readonly signer: Signer;
  private readonly session = randomUUID();
  // zeromq refuses (and disconnects) a peer whose frame exceeds maxMessageSize before buffering it whole;
  // readLoop's check below still bounds the frames of one message together.
  private readonly shell = new Router({ maxMessageSize: MAX_MESSAGE_BYTES });
  private readonly control = new Router({ maxMessageSize: MAX_MESSAGE_BYTES });
  private readonly stdin = new Router({ maxMessageSize: MAX_MESSAGE_BYTES });
  private readonly iopub = new Publisher({ maxMessageSize: MAX_MESSAGE_BYTES });
  private readonly hb = new Reply({ maxMessageSize: MAX_MESSAGE_BYTES });
  private readonly send: { shell: Sender; control: Sender; stdin: Sender; iopub: Sender };
  private readonly queue: Message[] = [];
  private processing = false;
  private executionCount = 0;
  private cellSerial = 0;
  private current: ExecutionState | undefined;
  private last: ExecutionState | undefined;
  private pendingInput: { resolve: (value: string) => void; reject: (error: Error) => void } | undefined;
  private readonly history = new History();
  private readonly comms: CommManager;
  private readonly streams = new Map<"stdout" | "stderr", { text: string; state: ExecutionState | undefined }>();
  private streamTimer: NodeJS.Timeout | undefined;
  private warmed = false;
  private closing = false;
  readonly log: (line: string) => void;

  constructor(
    private readonly info: ConnectionInfo,
    private readonly interpreter: Interpreter,
    log?: (line: string) => void,
  ) {
    const stderr = process.stderr.write.bind(process.stderr);
    this.log = log ?? ((line) => void stderr(`[ktu kernel] ${line}\n`));
    this.signer = new Signer(info.key);
    this.send = {
      shell: new Sender(this.shell, this.log),
      control: new Sender(this.control, this.log),
      stdin: new Sender(this.stdin, this.log),
      iopub: new Sender(this.iopub, this.log),
    };
    this.comms = new CommManager((msgType, content, metadata, buffers) => this.publish(msgType, content, undefined, metadata, buffers), this.log);
  }

  async start(): Promise<void> {
    await Promise.all([
      this.shell.bind(endpoint(this.info, this.info.shell_port)),
      this.control.bind(endpoint(this.info, this.info.control_port)),
      this.stdin.bind(endpoint(this.info, this.info.stdin_port)),
      this.iopub.bind(endpoint(this.info, this.info.iopub_port)),
      this.hb.bind(endpoint(this.info, this.info.hb_port)),
    ]);
    const io: KernelIo = {
      publish: (msgType, content, state) => this.publish(msgType, content, state),
      input: (prompt, password) => this.input(prompt, password),
      comms: this.comms,
    };
    setKernelIo(io);
    this.captureStreams();
    process.on("SIGINT", () => this.interrupt("SIGINT"));
    void this.heartbeat();
    void this.readLoop(this.shell, "shell", (message) => {
      this.queue.push(message);
      void this.processQueue();
    });
    void this.readLoop(this.control, "control", (message) => void this.handleControl(message));
    void this.readLoop(this.stdin, "stdin", (message) => this.handleStdin(message));
  }

  private async heartbeat(): Promise<void> {
    try {
      for await (const frames of this.hb) await this.hb.send(frames);
    } catch (error) {
      if (!this.closing) this.log(`heartbeat stopped: ${(error as Error).message}`);
    }
  }

  private async readLoop(socket: Router, channel: string, handle: (message: Message) => void): Promise<void> {
    try {
      for await (const frames of socket) {
        const size = frames.reduce((sum, frame) => sum + frame.length, 0);
        if (size > MAX_MESSAGE_BYTES) {
          this.log(`${channel}: dropped a ${size}-byte message (limit ${MAX_MESSAGE_BYTES} bytes)`);
          continue;
        }
        const decoded = decode(frames, this.signer);
        if (!decoded.ok) {
          this.log(`${channel}: dropped a message: ${decoded.reason}`);
          continue;
        }
        try {
          handle(decoded.message);
        } catch (error) {
          this.log(`${channel}: ${decoded.message.header.msg_type} failed: ${(error as Error).stack ?? error}`);
        }
      }
    } catch (error) {
      if (!this.closing) this.log(`${channel} socket stopped: ${(error as Error).message}`);
    }
  }

  // --- sending ------------------------------------------------------------------------------------

  private reply(sender: Sender, parent: Message, msgType: string, content: Record<string, unknown>, metadata: Record<string, unknown> = {}): Promise<void> {
    return sender.send(encode({ identities: parent.identities, header: makeHeader(msgType, this.session), parent_header: parent.header, metadata, content }, this.signer));
  }

  private publish(msgType: string, content: Record<string, unknown>, state?: ExecutionState, metadata: Record<string, unknown> = {}, buffers?: Buffer[]): void {
    if (msgType !== "stream") this.flushStreams();
    const owner = state ?? executionScope.getStore() ?? this.last;
    if (owner?.silent) return;
    this.publishWithParent(msgType, content, owner?.parent ?? {}, metadata, buffers);
  }

  private publishWithParent(msgType: string, content: Record<string, unknown>, parent: Record<string, unknown>, metadata: Record<string, unknown> = {}, buffers?: Buffer[]): void {
    const header = makeHeader(msgType, this.session);
    void this.send.iopub.send(encode({ identities: [Buffer.from(msgType)], header, parent_header: parent, metadata, content, buffers }, this.signer));
  }

  private status(parent: Message, state: "busy" | "idle"): void {
    this.publishWithParent("status", { execution_state: state }, parent.header as unknown as Record<string, unknown>);
  }

  /** console.log, process.stdout.write and friends become stream messages of the cell that wrote them. */
  private captureStreams(): void {
    for (const name of ["stdout", "stderr"] as const) {
      const stream = process[name];
      stream.write = ((chunk: unknown, encoding?: unknown, callback?: unknown) => {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
        this.bufferStream(name, text);
        const done = typeof encoding === "function" ? encoding : callback;
        if (typeof done === "function") queueMicrotask(() => (done as () => void)());
        return true;
      }) as typeof stream.write;
    }
  }

  private bufferStream(name: "stdout" | "stderr", text: string): void {
    const state = executionScope.getStore() ?? this.last;
    const pending = this.streams.get(name);
    if (pending && pending.state !== state) this.flushStreams();
    const entry = this.streams.get(name) ?? { text: "", state };
    entry.text += text;
    this.streams.set(name, entry);
    this.streamTimer ??= setTimeout(() => this.flushStreams(), 30);
    if (entry.text.length > 64 * 1024) this.flushStreams();
  }

  private flushStreams(): void {
    if (this.streamTimer) clearTimeout(this.streamTimer);
    this.streamTimer = undefined;
    for (const [name, { text, state }] of this.streams) {
      this.streams.delete(name);
      if (text !== "" && !state?.silent) this.publishWithParent("stream", { name, text }, state?.parent ?? {});
    }
  }

  // --- shell --------------------------------------------------------------------------------------

  private async processQueue(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      for (let message = this.queue.shift(); message; message = this.queue.shift()) {
        this.status(message, "busy");
        try {
          await this.handleShell(message);
        } catch (error) {
          this.log(`shell: ${message.header.msg_type} failed: ${(error as Error).stack ?? error}`);
        }
        this.flushStreams();
        this.status(message, "idle");
      }
    } finally {
      this.processing = false;
    }
  }

  private kernelInfo(): Record<string, unknown> {
    const i = this.interpreter;
    return {
      status: "ok",
      protocol_version: PROTOCOL_VERSION,
      implementation: i.implementation,
      implementation_version: i.implementationVersion,
      language_info: i.languageInfo,
      banner: i.banner,
      help_links: [{ text: "know-the-unknown kernel", url: "https://jupyter-client.readthedocs.io/en/latest/messaging.html" }],
      // No debug_request support: saying so keeps JupyterLab from asking for a debugger session.
      debugger: false,
    };
  }

  private afterKernelInfo(): void {
    if (this.warmed) return;
    this.warmed = true;
    // Load the type checker once the frontend knows the kernel is up, not before it answers.
    setTimeout(() => void this.interpreter.warmUp().catch((error: unknown) => this.log(`warm-up failed: ${(error as Error).message}`)), 0);
  }

  private async handleShell(message: Message): Promise<void> {
    const content = message.content;
    const reply = (msgType: string, body: Record<string, unknown>, metadata?: Record<string, unknown>) => this.reply(this.send.shell, message, msgType, body, metadata);
    switch (message.header.msg_type) {
      case "kernel_info_request":
        await reply("kernel_info_reply", this.kernelInfo());
        this.afterKernelInfo();
        return;
      case "execute_request":
        return this.execute(message);
      case "complete_request": {
        const code = String(content.code ?? "");
        const offset = toUtf16(code, Number(content.cursor_pos ?? [...code].length));
        const { matches, start, end } = await this.interpreter.complete(code, offset);
        await reply("complete_reply", { status: "ok", matches, cursor_start: toCodePoints(code, start), cursor_end: toCodePoints(code, end), metadata: {} });
        return;
      }
      case "inspect_request": {
        const code = String(content.code ?? "");
        const data = await this.interpreter.inspect(code, toUtf16(code, Number(content.cursor_pos ?? [...code].length)), Number(content.detail_level ?? 0));
        await reply("inspect_reply", { status: "ok", found: data !== undefined, data: data ?? {}, metadata: {} });
        return;
      }
      case "is_complete_request":
        await reply("is_complete_reply", this.interpreter.isComplete(String(content.code ?? "")));
        return;
      case "history_request":
        await reply("history_reply", { status: "ok", history: this.history.query(content) });
        return;
      case "comm_info_request":
        await reply("comm_info_reply", { status: "ok", comms: this.comms.info(typeof content.target_name === "string" ? content.target_name : undefined) });
        return;
      case "comm_open":
      case "comm_msg":
      case "comm_close":
        this.runAsRequest(message, () => this.comms.handle(message.header.msg_type, content, message as unknown as Record<string, unknown>));
        return;
      case "shutdown_request":
        return this.shutdown(message, this.send.shell);
      case "interrupt_request":
        this.interrupt("interrupt_request");
        await reply("interrupt_reply", { status: "ok" });
        return;
      default:
        this.log(`shell: unknown msg_type ${JSON.stringify(message.header.msg_type)}; ignored`);
    }
  }

  private newState(message: Message, executionCount: number): ExecutionState {
    return {
      parent: message.header as unknown as Record<string, unknown>,
      identities: message.identities,
      allowStdin: message.content.allow_stdin === true,
      silent: message.content.silent === true,
      executionCount,
      interrupted: false,
      pending: new Set(),
      onInterrupt: new Set(),
      abort: new AbortController(),
    };
  }

  /** Comm handlers run with the comm message as the parent of what they print or display. */
  private runAsRequest(message: Message, work: () => void): void {
    const state = this.newState(message, this.executionCount);
    executionScope.run(state, () => {
      try {
        work();
      } catch (error) {
        this.log(`comm handler failed: ${(error as Error).stack ?? error}`);
      }
    });
  }

  private async execute(message: Message): Promise<void> {
    const content = message.content;
    const code = typeof content.code === "string" ? content.code : "";
    const silent = content.silent === true;
    const storeHistory = !silent && content.store_history !== false;
    if (storeHistory) this.executionCount++;
    const count = this.executionCount;
    if (!silent) this.publishWithParent("execute_input", { code, execution_count: count }, message.header as unknown as Record<string, unknown>);
    if (storeHistory) this.history.add(count, code);
    // Hand execute_input to zeromq before the cell runs: a synchronous loop would otherwise hold it
    // in our queue, and the frontend would never learn the cell started.
    await this.send.iopub.idle();
    const state = this.newState(message, count);
    this.current = state;
    this.last = state;
    let outcome;
    try {
      outcome = await executionScope.run(state, () => this.interpreter.execute(code, ++this.cellSerial, state));
      await this.settlePending(state);
    } finally {
      this.current = undefined;
    }
    this.flushStreams();
    const reply = (body: Record<string, unknown>) => this.reply(this.send.shell, message, "execute_reply", body, { status: body.status });
    if (outcome.status === "ok") {
      if (outcome.value && !silent) {
        this.publishWithParent("execute_result", { execution_count: count, data: outcome.value, metadata: {} }, state.parent);
        if (storeHistory && typeof outcome.value["text/plain"] === "string") this.history.setOutput(count, outcome.value["text/plain"]);
      }
      const userExpressions: Record<string, unknown> = {};
      const expressions = content.user_expressions;
      if (expressions && typeof expressions === "object") {
        for (const [name, expression] of Object.entries(expressions as Record<string, unknown>)) {
          userExpressions[name] = await this.interpreter.evaluateExpression(String(expression));
        }
      }
      await reply({ status: "ok", execution_count: count, payload: [], user_expressions: userExpressions });
      return;
    }
    const { ename, evalue, traceback } = outcome;
    if (!silent) this.publishWithParent("error", { ename, evalue, traceback }, state.parent);
    // The cells to abort are those queued while this one ran, chosen before the error reply goes out:
    // a request the frontend sends after seeing the reply must run, not be aborted.
    const queuedBehind = content.stop_on_error !== false ? await this.queuedExecutes() : [];
    await reply({ status: "error", execution_count: count, ename, evalue, traceback });
    await this.abortExecutes(queuedBehind);
  }

  /**
   * Waits for the outputs a cell is still preparing (a figure's PNG), so they reach the frontend, and a
   * saved notebook, before the reply. An interrupt ends the wait at once; a render that hangs, after
   * PENDING_LIMIT_MS.
   */
  private async settlePending(state: ExecutionState): Promise<void> {
    if (state.interrupted || state.pending.size === 0) return;
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    state.onInterrupt.add(stop);
    const timer = setTimeout(() => {
      this.log(`execution ${state.executionCount}: outputs still pending after ${PENDING_LIMIT_MS} ms; replying without them`);
      stop();
    }, PENDING_LIMIT_MS);
    try {
      while (state.pending.size > 0 && !state.interrupted) {
        const all = Promise.all([...state.pending]).then(() => "settled" as const);
        if ((await Promise.race([all, stopped.then(() => "stopped" as const)])) === "stopped") return;
      }
    } finally {
      clearTimeout(timer);
      state.onInterrupt.delete(stop);
    }
  }

  /** The execute requests waiting in the queue, after letting those already in the socket reach it. */
  private async queuedExecutes(): Promise<Message[]> {
    await new Promise((resolve) => setImmediate(resolve));
    return this.queue.filter((message) => message.header.msg_type === "execute_request");
  }

  /** After a failed cell, the cells queued behind it are not run (ipykernel's reply: "aborted"). */
  private async abortExecutes(messages: Message[]): Promise<void> {
    for (const message of messages) {
      const at = this.queue.indexOf(message);
      if (at < 0) continue;
      this.queue.splice(at, 1);
      this.status(message, "busy");
      await this.reply(this.send.shell, message, "execute_reply", { status: "aborted", execution_count: this.executionCount }, { status: "aborted" });
      this.status(message, "idle");
    }
  }

  // --- stdin, interrupt, control -----------------------------------------------------------------

  private input(prompt: string, password: boolean): Promise<string> {
    const state = executionScope.getStore() ?? this.current;
    if (!state || !state.allowStdin) {
      return Promise.reject(new Error("input() needs a frontend that accepts input: this request has allow_stdin false"));
    }
    this.flushStreams();
    this.pendingInput?.reject(new Error("superseded by a newer input request"));
    return new Promise<string>((resolve, reject) => {
      this.pendingInput = { resolve, reject };
      state.onInterrupt.add(() => reject(new KernelInterrupt()));
      const request = { identities: state.identities, header: makeHeader("input_request", this.session), parent_header: state.parent, metadata: {}, content: { prompt, password } };
      void this.send.stdin.send(encode(request, this.signer));
    });
  }

  private handleStdin(message: Message): void {
    if (message.header.msg_type !== "input_reply") {
      this.log(`stdin: unexpected ${message.header.msg_type}; ignored`);
      return;
    }
    const pending = this.pendingInput;
    this.pendingInput = undefined;
    if (!pending) this.log("stdin: input_reply with no pending input; ignored");
    else pending.resolve(String(message.content.value ?? ""));
  }

  /** Stops the running cell: its await points throw, its promise is abandoned, the kernel goes on. */
  interrupt(source: string): void {
    const state = this.current;
    if (!state) {
      this.log(`${source}: nothing is running`);
      return;
    }
    this.log(`${source}: interrupting execution ${state.executionCount}`);
    state.interrupted = true;
    state.abort.abort(new KernelInterrupt());
    for (const callback of state.onInterrupt) callback();
  }

  private async handleControl(message: Message): Promise<void> {
    const reply = (msgType: string, body: Record<string, unknown>) => this.reply(this.send.control, message, msgType, body);
    switch (message.header.msg_type) {
      case "kernel_info_request":
        await reply("kernel_info_reply", this.kernelInfo());
        this.afterKernelInfo();
        return;
      case "interrupt_request":
        this.interrupt("interrupt_request");
        await reply("interrupt_reply", { status: "ok" });
        return;
      case "shutdown_request":
        return this.shutdown(message, this.send.control);
      default:
        this.log(`control: unknown msg_type ${JSON.stringify(message.header.msg_type)}; ignored`);
    }
  }

  private async shutdown(message: Message, sender: Sender): Promise<void> {
    const restart = message.content.restart === true;
    this.log(`shutdown requested (restart: ${restart})`);
    this.interrupt("shutdown");
    await this.reply(sender, message, "shutdown_reply", { status: "ok", restart });
    this.publishWithParent("shutdown_reply", { status: "ok", restart }, message.header as unknown as Record<string, unknown>);
    await this.close();
    kernelExit(0);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.flushStreams();
    await Promise.race([Promise.all(Object.values(this.send).map((sender) => sender.idle())), new Promise((resolve) => setTimeout(resolve, 500))]);
    await this.interpreter.shutdown().catch(() => undefined);
    for (const socket of [this.shell, this.control, this.stdin, this.iopub, this.hb]) {
      socket.linger = 200;
      socket.close();
    }
    setKernelIo(undefined);
  }
}
