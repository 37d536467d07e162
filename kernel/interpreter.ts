import type { ExecutionState, MimeBundle } from "./io.ts";

/**
 * The language side of the kernel, xeus-style: the protocol layer (server.ts) owns sockets, signing,
 * busy/idle, history, comms and stdin; an Interpreter only evaluates and analyses code.
 */
export interface ErrorInfo {
  ename: string;
  evalue: string;
  traceback: string[];
}

export type ExecuteOutcome = { status: "ok"; value?: MimeBundle } | ({ status: "error" } & ErrorInfo);

export interface LanguageInfo {
  name: string;
  version: string;
  mimetype: string;
  file_extension: string;
  pygments_lexer?: string;
  codemirror_mode?: unknown;
  nbconvert_exporter?: string;
}

export interface Interpreter {
  readonly implementation: string;
  readonly implementationVersion: string;
  readonly languageInfo: LanguageInfo;
  readonly banner: string;
  /** Runs a cell; `cell` numbers every execution (history or not), `executionCount` is what users see. */
  execute(code: string, cell: number, state: ExecutionState): Promise<ExecuteOutcome>;
  /** A user_expressions entry: evaluated without side effects on history, displayed as a bundle. */
  evaluateExpression(expression: string): Promise<{ status: "ok"; data: MimeBundle; metadata: Record<string, unknown> } | ({ status: "error" } & ErrorInfo)>;
  /** Positions are UTF-16 offsets; the server converts from and to code points. Waits for the type checker to load. */
  complete(code: string, offset: number): Promise<{ matches: string[]; start: number; end: number }>;
  inspect(code: string, offset: number, detailLevel: number): Promise<MimeBundle | undefined>;
  isComplete(code: string): { status: "complete" | "incomplete" | "invalid" | "unknown"; indent?: string };
  /** Loads what the first cell would otherwise wait for; called once the kernel has answered kernel_info. */
  warmUp(): Promise<void>;
  shutdown(): Promise<void>;
}
