import type { Command } from "../util/command.ts";

export const commands: Command[] = [];
