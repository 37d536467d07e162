import { spawn } from "node:child_process";
import type { Command, OptionValues } from "../src/util/command.ts";
import { UsageError } from "../src/util/errors.ts";
import { DEFAULT_KERNEL_NAME, installKernel, kernelSpec, uninstallKernel } from "./install.ts";

const where = (values: OptionValues): { user?: boolean; prefix?: string; name?: string } => {
  if (values.user && values.prefix) throw new UsageError("ktu kernel: use either --user or --prefix, not both");
  const name = values.name as string | undefined;
  if (name !== undefined && !/^[a-zA-Z0-9._-]+$/.test(name)) throw new UsageError(`ktu kernel: --name may only hold letters, digits, ".", "_" and "-", got ${JSON.stringify(name)}`);
  return { user: values.user === true, prefix: values.prefix as string | undefined, name };
};

const placement = {
  user: { type: "boolean" },
  prefix: { type: "string" },
  name: { type: "string" },
} as const;

const placementHelp = `  --user         install into the user's Jupyter data dir (~/.local/share/jupyter/kernels)
  --prefix DIR   install into DIR/share/jupyter/kernels (a virtualenv, a test prefix)
  --name NAME    kernelspec name (default ${DEFAULT_KERNEL_NAME})
  (neither --user nor --prefix: /usr/local/share/jupyter/kernels)`;

export const commands: Command[] = [
  {
    name: "kernel install",
    summary: "install the TypeScript Jupyter kernelspec (kernel.json + logo)",
    help: `${placementHelp}\n  --display-name TEXT   name shown in the notebook's kernel menu`,
    options: { ...placement, "display-name": { type: "string" } },
    async run(values) {
      const dir = await installKernel({ ...where(values), displayName: values["display-name"] as string | undefined });
      process.stdout.write(`installed kernelspec in ${dir}\n`);
    },
  },
  {
    name: "kernel uninstall",
    summary: "remove the kernelspec that `ktu kernel install` wrote",
    help: placementHelp,
    options: placement,
    run(values) {
      const dir = uninstallKernel(where(values));
      if (!dir) throw new UsageError(`ktu kernel uninstall: no kernelspec named ${JSON.stringify(where(values).name ?? DEFAULT_KERNEL_NAME)} there`);
      process.stdout.write(`removed ${dir}\n`);
    },
  },
  {
    name: "kernel spec",
    summary: "print the kernel.json that install would write",
    help: "",
    options: {},
    run() {
      process.stdout.write(JSON.stringify(kernelSpec(), null, 2) + "\n");
    },
  },
  {
    name: "kernel run",
    summary: "run the kernel on a connection file (what Jupyter does through kernel.json)",
    help: "  -f FILE   the connection file Jupyter wrote",
    options: { f: { type: "string", short: "f" } },
    async run(values) {
      if (typeof values.f !== "string") throw new UsageError("ktu kernel run: -f <connection file> is required");
      const argv = (kernelSpec().argv as string[]).map((a) => (a === "{connection_file}" ? (values.f as string) : a));
      const child = spawn(argv[0]!, argv.slice(1), { stdio: "inherit" });
      process.on("SIGINT", () => child.kill("SIGINT"));
      return new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
    },
  },
];
