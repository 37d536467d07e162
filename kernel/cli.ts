import type { Command } from "../src/util/command.ts";

export const commands: Command[] = [];
