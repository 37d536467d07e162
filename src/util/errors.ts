/**
 * An error in user input: it names the file, the record (line number or id) and the field,
 * so that a user can find and fix the bad value without reading a stack trace.
 */
export class InputError extends Error {
  override name = "InputError";
  constructor(
    readonly file: string,
    readonly record: string | number | undefined,
    readonly field: string | undefined,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(
      [file, record === undefined ? undefined : typeof record === "number" ? `line ${record}` : `record ${record}`, field === undefined ? undefined : `field ${field}`]
        .filter((part) => part !== undefined)
        .join(", ") + `: ${problem}`,
      options,
    );
  }
}

/** A bad command-line argument or option value. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
