import { AsyncLocalStorage } from "node:async_hooks";

/** The global through which rewritten cell code reaches the kernel (interrupt checks). */
export const RUNTIME = "__ktu";

/** A Jupyter MIME bundle: MIME type to data. */
export type MimeBundle = Record<string, unknown>;

/** Thrown into a cell's await points once the user interrupts it. */
export class KernelInterrupt extends Error {
  override name = "KeyboardInterrupt";
  constructor() {
    super("the cell was interrupted");
  }
}

/**
 * What one request (an execute_request, or a comm message) owns while it runs. Cell code reaches its
 * state through AsyncLocalStorage, so output printed or displayed from a callback, a timer or a
 * background promise still goes to the cell that started it, and an interrupt stops exactly the work
 * that this cell started.
 */
export interface ExecutionState {
  /** The request header that outputs name as their parent. */
  readonly parent: Record<string, unknown>;
  readonly identities: Buffer[];
  readonly allowStdin: boolean;
  /** A silent request publishes nothing on iopub but its busy/idle status. */
  readonly silent: boolean;
  readonly executionCount: number;
  interrupted: boolean;
  /** Outputs still being prepared (a PNG render, say); the reply waits for them. */
  readonly pending: Set<Promise<unknown>>;
  readonly onInterrupt: Set<() => void>;
  /** Aborts when the cell is interrupted, for library code that wants to stop cleanly. */
  readonly abort: AbortController;
}

export const executionScope = new AsyncLocalStorage<ExecutionState>();

/** The protocol layer's services, as the display API and the evaluator see them. */
export interface KernelIo {
  /** Publishes on iopub with the parent of `state` (default: the current execution, else the last one). */
  publish(msgType: string, content: Record<string, unknown>, state?: ExecutionState): void;
  /** Asks the frontend for a line of input over the stdin channel. */
  input(prompt: string, password: boolean): Promise<string>;
  /** The comm manager, for kernel-side comms. */
  readonly comms: CommManagerLike;
}

export interface CommLike {
  readonly id: string;
  readonly targetName: string;
  send(data: unknown, metadata?: Record<string, unknown>, buffers?: Buffer[]): void;
  close(data?: unknown): void;
  onMsg?: (data: unknown, message: Record<string, unknown>) => void;
  onClose?: (data: unknown) => void;
}

export interface CommManagerLike {
  open(targetName: string, data?: unknown, metadata?: Record<string, unknown>): CommLike;
  registerTarget(targetName: string, handler: (comm: CommLike, data: unknown) => void): void;
}

let io: KernelIo | undefined;

export function setKernelIo(value: KernelIo | undefined): void {
  io = value;
}

/** The kernel's services; throws outside a kernel, where there is nowhere to display to. */
export function kernelIo(): KernelIo {
  if (!io) throw new Error("not running inside the know-the-unknown Jupyter kernel: there is no frontend to display to");
  return io;
}

export const insideKernel = (): boolean => io !== undefined;

/** Keeps the reply of the current execution waiting until `work` settles, so its output is not lost. */
export function trackPending<T>(work: Promise<T>): Promise<T> {
  const state = executionScope.getStore();
  if (state) {
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    state.pending.add(settled);
    void settled.then(() => state.pending.delete(settled));
  }
  return work;
}

/**
 * The signal of the running cell: aborted when the user interrupts it. Long loops in library code
 * (a training loop, say) can pass it along or check `signal.aborted` to stop at a clean point.
 */
export function interruptSignal(): AbortSignal {
  return executionScope.getStore()?.abort.signal ?? new AbortController().signal;
}

/**
 * Called by rewritten cell code at each `await`: an interrupted cell stops at its next await point,
 * even when its promise has already been abandoned by the kernel.
 */
export function checkInterrupt<T>(value: T): T {
  if (executionScope.getStore()?.interrupted) throw new KernelInterrupt();
  return value;
}

// --- letting a SIGINT in ----------------------------------------------------------------------------
// Node runs process.on("SIGINT") handlers only when libuv polls, between two macrotasks. Code that
// awaits only resolved promises (an async generator that computes and yields) runs as one long chain
// of microtasks, and the signal waits until it ends. A timer notes each turn of the event loop while a
// cell runs; an await or a for-await step that finds it stale for STARVED_MS lets the loop turn once.

const STARVED_MS = 40;
let lastTurn = performance.now();
let ticker: NodeJS.Timeout | undefined;
let running = 0;

/** Starts (and stopCellClock stops) the event-loop clock; the evaluator brackets each cell with them. */
export function startCellClock(): void {
  if (running++ === 0) {
    lastTurn = performance.now();
    ticker = setInterval(() => (lastTurn = performance.now()), STARVED_MS / 2);
    ticker.unref();
  }
}
export function stopCellClock(): void {
  if (running > 0 && --running === 0) clearInterval(ticker);
}

/** Two macrotask hops: the first may land in the check phase of the turn we are in; the second follows a poll. */
const turnEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

const starved = (): boolean => running > 0 && performance.now() - lastTurn > STARVED_MS;

/** What rewritten cell code awaits instead of `x`: `x` itself, after one event-loop turn when starved. */
export function yieldIfStarved<T>(value: T): T | Promise<T> {
  if (!starved()) return value;
  lastTurn = performance.now();
  return turnEventLoop().then(() => value);
}

/** Settles with a KernelInterrupt rejection when `state` is interrupted; `dispose` forgets the listener. */
function whenInterrupted(state: ExecutionState): { promise: Promise<never>; dispose: () => void } {
  let listener: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    listener = () => reject(new KernelInterrupt());
    state.onInterrupt.add(listener);
  });
  promise.catch(() => undefined);
  return { promise, dispose: () => state.onInterrupt.delete(listener!) };
}

/**
 * The iterable of a cell's `for await`: before each step it lets a pending SIGINT in and throws once the
 * cell is interrupted; while a step is pending, an interrupt ends the wait at once. The source iterator
 * is then closed (an async generator closes after the step it is running).
 */
export function interruptibleIterable<T>(source: AsyncIterable<T> | Iterable<T>): AsyncIterable<T> {
  const state = executionScope.getStore();
  if (!state || source === null || source === undefined) return source as AsyncIterable<T>;
  const asyncMethod = (source as AsyncIterable<T>)[Symbol.asyncIterator];
  const syncMethod = (source as Iterable<T>)[Symbol.iterator];
  if (typeof asyncMethod !== "function" && typeof syncMethod !== "function") return source as AsyncIterable<T>;
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const inner: AsyncIterator<T> | Iterator<T> = typeof asyncMethod === "function" ? asyncMethod.call(source) : syncMethod.call(source);
      const close = (): void => {
        try {
          void Promise.resolve(inner.return?.()).catch(() => undefined);
        } catch {
          // a broken iterator: nothing left to close
        }
      };
      const interrupted = (): never => {
        close();
        throw new KernelInterrupt();
      };
      return {
        async next(): Promise<IteratorResult<T>> {
          if (state.interrupted) interrupted();
          if (starved()) {
            lastTurn = performance.now();
            await turnEventLoop();
          }
          if (state.interrupted) interrupted();
          const watch = whenInterrupted(state);
          try {
            const step = Promise.resolve(inner.next()).then(async (r) => (r.done ? r : { done: false as const, value: await r.value }));
            return await Promise.race([step, watch.promise]);
          } catch (error) {
            if (error instanceof KernelInterrupt) interrupted();
            throw error;
          } finally {
            watch.dispose();
          }
        },
        async return(value?: unknown): Promise<IteratorResult<T>> {
          const result = await inner.return?.(value as T);
          return result ?? { done: true, value: value as T };
        },
      };
    },
  };
}
