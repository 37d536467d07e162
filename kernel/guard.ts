/**
 * What keeps library code from taking the kernel down. Libraries that a cell loads may install
 * process-wide handlers written for short scripts: Playwright exits the process on SIGINT (the
 * kernel's interrupt), and Emscripten's Node glue (tfjs-backend-wasm) rethrows from its own
 * `uncaughtException` and `unhandledRejection` listeners, which ends the process. Once installed:
 *
 * - other listeners for `uncaughtException` / `unhandledRejection` still run, but what they throw is
 *   logged, not fatal;
 * - `process.exit()` from anything but the kernel's own shutdown throws instead of exiting (the caller
 *   sees an Error; the kernel and its variables stay). `kernelExit` is the real one.
 */
const FATAL_EVENTS = new Set<string | symbol>(["uncaughtException", "unhandledRejection"]);
const realExit = process.exit.bind(process) as (code?: number) => never;
let installed = false;

/** Exits the kernel process (shutdown, SIGTERM): the one exit that is not refused. */
export function kernelExit(code = 0): never {
  return realExit(code);
}

type Listener = (...args: unknown[]) => void;

export function installProcessGuards(log: (line: string) => void): void {
  if (installed) return;
  installed = true;
  const wrapped = new WeakMap<Listener, Listener>();
  const wrap = (event: string | symbol, listener: Listener): Listener => {
    if (!FATAL_EVENTS.has(event) || typeof listener !== "function") return listener;
    let safe = wrapped.get(listener);
    if (!safe) {
      safe = function (this: unknown, ...args: unknown[]) {
        try {
          listener.apply(this, args);
        } catch (error) {
          const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          log(`a library's ${String(event)} handler threw (kernel continues): ${text}`);
        }
      };
      wrapped.set(listener, safe);
    }
    return safe;
  };
  const emitter = process as unknown as Record<string, (event: string | symbol, listener: Listener) => unknown>;
  for (const method of ["on", "addListener", "once", "prependListener", "prependOnceListener"]) {
    const original = emitter[method]!.bind(process);
    emitter[method] = (event, listener) => {
      original(event, wrap(event, listener));
      return process;
    };
  }
  for (const method of ["off", "removeListener"]) {
    const original = emitter[method]!.bind(process);
    emitter[method] = (event, listener) => {
      original(event, (FATAL_EVENTS.has(event) && wrapped.get(listener)) || listener);
      return process;
    };
  }
  process.exit = ((code?: number | string | null) => {
    const error = new Error(`process.exit(${code ?? ""}) refused: this process is a Jupyter kernel, which stays up (restart it from the frontend)`);
    log(`${error.message}\n${error.stack?.split("\n").slice(1, 4).join("\n") ?? ""}`);
    throw error;
  }) as typeof process.exit;
}
