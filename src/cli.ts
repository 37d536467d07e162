import { formatHelp, parseCommandArgs, type Command } from "./util/command.ts";
import { errorMessage, UsageError } from "./util/errors.ts";

/**
 * Command groups, loaded lazily so that `ktu data ...` does not pay for TensorFlow.js or TypeScript.
 * Each module exports `commands: Command[]`.
 */
const groups: Record<string, { summary: string; load: () => Promise<{ commands: Command[] }> }> = {
  data: { summary: "build the benchmark, stage-1, stage-2 and ablation sets; export for LLaMA-Factory", load: () => import("./data/cli.ts") },
  generate: { summary: "generate text with a model (run.c-compatible output)", load: () => import("./model/cli.ts") },
  model: { summary: "export models to Hugging Face / PEFT folders; download hf:ORG/NAME into the shared cache", load: () => import("./model/export-cli.ts") },
  train: { summary: "LoRA fine-tuning from a LLaMA-Factory YAML", load: () => import("./train/cli.ts") },
  eval: { summary: "score predictions, run the benchmark, calibration", load: () => import("./eval/cli.ts") },
  serve: { summary: "serve a model over an OpenAI-compatible HTTP API", load: () => import("./engine/serve-cli.ts") },
  lf: { summary: "drive LLaMA-Factory: configs, launch, watch, pipeline", load: () => import("./engine/cli.ts") },
  kernel: { summary: "install, uninstall or run the Jupyter kernel", load: () => import("../kernel/cli.ts") },
  start: { summary: "the main job: the whole US-Tuning run on the embedded default, with a report", load: () => import("./pipeline/cli.ts") },
};

function topHelp(): string {
  const lines = Object.entries(groups).map(([name, group]) => `  ${name.padEnd(10)} ${group.summary}`);
  return `Usage: ktu <command> [options]\n\nCommands:\n${lines.join("\n")}\n\nRun 'ktu <command> --help' for the options of each.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [groupName, ...rest] = argv;
  if (groupName === undefined || groupName === "--help" || groupName === "-h" || groupName === "help") {
    process.stdout.write(topHelp());
    return groupName === undefined ? 1 : 0;
  }
  const group = groups[groupName];
  if (!group) throw new UsageError(`unknown command ${JSON.stringify(groupName)}; run 'ktu --help'`);
  const { commands } = await group.load();
  const inGroup = commands.filter((c) => c.name === groupName || c.name.startsWith(groupName + " "));
  // The longest command name that the argument words spell wins: "data benchmark" before "data".
  const words = [groupName, ...rest];
  const match = inGroup
    .filter((c) => c.name.split(" ").every((w, i) => words[i] === w))
    .sort((a, b) => b.name.length - a.name.length)[0];
  if (!match) {
    const names = inGroup.map((c) => `  ktu ${c.name.padEnd(22)} ${c.summary}`).join("\n");
    const asked = rest[0] === undefined || rest[0].startsWith("-") ? "" : ` ${JSON.stringify(rest[0])}`;
    if (asked === "" && (rest.includes("--help") || rest.includes("-h"))) {
      process.stdout.write(`Subcommands of ktu ${groupName}:\n${names}\n`);
      return 0;
    }
    throw new UsageError(`ktu ${groupName}: unknown subcommand${asked}; one of:\n${names}`);
  }
  const args = words.slice(match.name.split(" ").length);
  const { values, positionals } = parseCommandArgs(match, args);
  if (values.help) {
    process.stdout.write(formatHelp(match));
    return 0;
  }
  return (await match.run(values, positionals)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // One clear line; the stack only when asked for, since users fix inputs, not our code.
    process.stderr.write(`ktu: ${errorMessage(error)}\n`);
    if (process.env.KTU_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ""}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  },
);
