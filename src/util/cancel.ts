/**
 * Cancellation from whatever hosts the code, without depending on it: a host (a Jupyter kernel, say)
 * puts a function returning the current work's AbortSignal under `Symbol.for("Jupyter.interruptSignal")`
 * on globalThis (the convention of Deno's `Symbol.for("Jupyter.display")`). Long loops call
 * `throwIfCancelled()` between steps, so an interrupt stops them at a clean point. Without a host,
 * nothing is ever cancelled.
 */
const HOOK = Symbol.for("Jupyter.interruptSignal");

/** The host's signal for the work running now, if there is a host. */
export function cancellationSignal(): AbortSignal | undefined {
  const hook = (globalThis as Record<symbol, unknown>)[HOOK];
  if (typeof hook !== "function") return undefined;
  const signal: unknown = hook();
  return signal instanceof AbortSignal ? signal : undefined;
}

/** Throws the host's reason (a KeyboardInterrupt in a kernel) once the running work was cancelled. */
export function throwIfCancelled(signal: AbortSignal | undefined = cancellationSignal()): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error("cancelled");
}
