import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;
export type OptionValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

/**
 * One `ktu` subcommand. Each area of the code (src/data, src/model, ...) exports a list of these
 * from its cli.ts; src/cli.ts only dispatches. `help` is printed for `--help` and on a usage error.
 */
export interface Command {
  /** Words after `ktu`, e.g. "data benchmark". */
  readonly name: string;
  readonly summary: string;
  /** Lines after the usage line: what each option means. */
  readonly help: string;
  readonly options: Options;
  readonly allowPositionals?: boolean;
  run(values: OptionValues, positionals: string[]): Promise<number | void> | number | void;
}

export const defineCommand = (command: Command): Command => command;

export function parseCommandArgs(command: Command, argv: string[]): { values: OptionValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...command.options, help: { type: "boolean", short: "h" } },
      allowPositionals: command.allowPositionals ?? false,
      strict: true,
    });
    return { values: values as OptionValues, positionals };
  } catch (error) {
    throw new UsageError(`ktu ${command.name}: ${(error as Error).message}`);
  }
}

/** Reads a required string option or throws a UsageError naming it. */
export function requireString(values: OptionValues, name: string, command: string): string {
  const value = values[name];
  if (typeof value !== "string" || value === "") throw new UsageError(`ktu ${command}: --${name} is required`);
  return value;
}

/** Reads an optional numeric option, rejecting anything that is not a finite number. */
export function optionalNumber(values: OptionValues, name: string, command: string): number | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  const number = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(number)) {
    throw new UsageError(`ktu ${command}: --${name} must be a number, got ${JSON.stringify(value)}`);
  }
  return number;
}

/** Reads an option that must be one of a fixed set of words. */
export function optionalChoice<T extends string>(values: OptionValues, name: string, choices: readonly T[], command: string): T | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
    throw new UsageError(`ktu ${command}: --${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

export function formatHelp(command: Command): string {
  return `Usage: ktu ${command.name} [options]\n\n${command.summary}\n\n${command.help.trimEnd()}\n  -h, --help  show this help\n`;
}
