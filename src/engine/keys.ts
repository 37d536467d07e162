import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, isAbsolute, join } from "node:path";
import { writeFileAtomicSync } from "../util/fs.ts";
import { repoRoot } from "../util/paths.ts";

/**
 * The YAML keys LLaMA-Factory's HfArgumentParser accepts. Where `llamafactory-cli` is installed (a
 * Python console script), they are read from it at run time (src/engine/keys/introspect.py: the init
 * fields of the dataclasses its parser parses) and cached; otherwise the shipped list
 * llamafactory-keys.json is used (see its `source` for the commit and versions; extract.py
 * regenerates it). The test double of llamafactory-cli reads the shipped file, so both reject the
 * same keys.
 */
export type LfCommand = "train" | "export";

/** Which warmup key the engine's transformers understands as a fraction of the training steps. */
export type LfWarmupKey = "warmup_steps" | "warmup_ratio";

interface KeyFile {
  source: { llamafactory: { repo: string; commit: string; version: string }; transformers: { version: string; files: Record<string, string> } };
  commands: Record<LfCommand, string[]>;
  deprecated: Record<string, string>;
  groups: Record<string, string[]>;
  /** transformers >= 5.2: warmup_steps takes a float in [0, 1) as a ratio and warmup_ratio is gone. */
  warmup: LfWarmupKey;
}

/** The answer of introspect.py. */
interface InstalledAnswer {
  llamafactory: string;
  transformers: string;
  train: string[];
  export: string[];
  groups: Record<string, string[]>;
  warmup_steps_type: string | null;
  warmup_ratio: boolean;
}

/** Where a key set came from. */
export interface LfKeySource {
  readonly kind: "installed" | "shipped";
  /** LLaMA-Factory version. */
  readonly version: string;
  /** Commit of the shipped list (undefined for an installed engine). */
  readonly commit?: string;
  readonly transformers: string;
  /** The Python that was asked (installed only). */
  readonly python?: string;
}

export interface LfKeySet {
  readonly source: LfKeySource;
  readonly commands: Readonly<Record<LfCommand, ReadonlySet<string>>>;
  readonly warmup: LfWarmupKey;
  readonly deprecated: Readonly<Record<string, string>>;
}

export const llamaFactoryKeysPath = join(repoRoot, "src", "engine", "llamafactory-keys.json");
const introspectScript = join(repoRoot, "src", "engine", "keys", "introspect.py");

let shippedCache: LfKeySet | undefined;
/** The key list shipped with ktu (no engine needed). */
export function shippedLfKeys(): LfKeySet {
  if (!shippedCache) {
    const file = JSON.parse(readFileSync(llamaFactoryKeysPath, "utf8")) as KeyFile;
    const set = (command: LfCommand) => new Set(file.commands[command].flatMap((group) => file.groups[group] ?? []));
    shippedCache = {
      source: { kind: "shipped", version: file.source.llamafactory.version, commit: file.source.llamafactory.commit, transformers: file.source.transformers.version },
      commands: { train: set("train"), export: set("export") },
      warmup: file.warmup ?? "warmup_steps",
      deprecated: file.deprecated,
    };
  }
  return shippedCache;
}

function onPath(command: string): string | undefined {
  if (command.includes("/")) return existsSync(command) ? command : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

/** The Python interpreter behind a llamafactory-cli command: its console script's shebang, or the command itself. */
export function lfPython(cli: readonly string[]): string | undefined {
  const program = cli[0];
  if (!program) return undefined;
  if (/^python[0-9.]*$/.test(basename(program))) return onPath(program);
  const path = onPath(program);
  if (!path) return undefined;
  let head: string;
  try {
    const fd = openSync(path, "r");
    const buffer = Buffer.alloc(512);
    const n = readSync(fd, buffer, 0, 512, 0);
    closeSync(fd);
    head = buffer.subarray(0, n).toString("utf8");
  } catch {
    return undefined;
  }
  const shebang = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(head);
  if (!shebang) return undefined;
  const [, interpreter, arg] = shebang;
  if (basename(interpreter!) === "env") return arg && /^python[0-9.]*$/.test(arg) ? onPath(arg) : undefined;
  if (!/python[0-9.]*$/.test(basename(interpreter!))) return undefined;
  return isAbsolute(interpreter!) && existsSync(interpreter!) ? interpreter : undefined;
}

const installedCache = new Map<string, LfKeySet | null>();

/**
 * The keys the installed LLaMA-Factory behind `cli` accepts, read from its dataclasses (a few seconds
 * the first time; then cached in memory and in the temp folder until the venv changes), or undefined
 * when the command is not a Python install of LLaMA-Factory (the test double, nothing installed) or
 * KTU_LF_KEYS=shipped.
 */
export function installedLfKeys(cli: readonly string[]): LfKeySet | undefined {
  if (process.env.KTU_LF_KEYS === "shipped") return undefined;
  const python = lfPython(cli);
  if (!python) return undefined;
  let stamp: string;
  try {
    // The venv's site-packages folder changes (mtime) whenever a package is installed or removed.
    const real = realpathSync(python);
    const venv = dirname(dirname(python));
    const lib = join(venv, "lib");
    stamp = `${python}|${real}|${statSync(real).mtimeMs}|${existsSync(lib) ? statSync(lib).mtimeMs : 0}|${sitePackagesStamp(lib)}`;
  } catch {
    return undefined;
  }
  if (installedCache.has(stamp)) return installedCache.get(stamp) ?? undefined;
  const cacheFile = join(tmpdir(), `ktu-lf-keys-${createHash("sha256").update(stamp).digest("hex").slice(0, 16)}.json`);
  let answer: InstalledAnswer | undefined;
  if (existsSync(cacheFile)) {
    try {
      answer = JSON.parse(readFileSync(cacheFile, "utf8")) as InstalledAnswer;
    } catch {
      answer = undefined;
    }
  }
  if (!answer) {
    try {
      const out = execFileSync(python, [introspectScript], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 120_000, env: { ...process.env, DISABLE_VERSION_CHECK: "1" } });
      answer = JSON.parse(out.trim().split("\n").at(-1)!) as InstalledAnswer;
      writeFileAtomicSync(cacheFile, JSON.stringify(answer));
    } catch {
      installedCache.set(stamp, null); // not LLaMA-Factory's Python, or it does not import: use the shipped list
      return undefined;
    }
  }
  const shipped = shippedLfKeys();
  const set = (command: LfCommand) => new Set(answer![command].flatMap((group) => answer!.groups[group] ?? []));
  // transformers 4.x: warmup_steps is an int and warmup_ratio the fraction; 5.2+: warmup_steps takes the fraction.
  const warmup: LfWarmupKey = answer.warmup_ratio && /int/.test(answer.warmup_steps_type ?? "") && !/float/.test(answer.warmup_steps_type ?? "") ? "warmup_ratio" : "warmup_steps";
  const deprecated = Object.fromEntries(Object.entries(shipped.deprecated).filter(([key]) => !(key === "warmup_ratio" && warmup === "warmup_ratio")));
  const keys: LfKeySet = {
    source: { kind: "installed", version: answer.llamafactory, transformers: answer.transformers, python },
    commands: { train: set("train"), export: set("export") },
    warmup,
    deprecated,
  };
  installedCache.set(stamp, keys);
  return keys;
}

function sitePackagesStamp(lib: string): string {
  try {
    return readdirSync(lib)
      .map((py) => {
        const site = join(lib, py, "site-packages");
        return existsSync(site) ? String(statSync(site).mtimeMs) : "";
      })
      .join(",");
  } catch {
    return "";
  }
}

/** The keys to check against: the installed engine's behind `cli` where there is one, else the shipped list. */
export function lfKeys(cli?: string | readonly string[]): LfKeySet {
  const words = Array.isArray(cli) ? [...cli] : ((cli as string | undefined) ?? process.env.KTU_LLAMAFACTORY_CLI ?? "llamafactory-cli").trim().split(/\s+/);
  return installedLfKeys(words) ?? shippedLfKeys();
}

/** Where the shipped key list comes from: LLaMA-Factory commit and version, transformers version. */
export function llamaFactoryKeysSource(): { commit: string; version: string; transformers: string } {
  const { source } = shippedLfKeys();
  return { commit: source.commit!, version: source.version, transformers: source.transformers };
}

/** The keys `llamafactory-cli <command>` accepts in its YAML (of `keys`, default the shipped list). */
export function llamaFactoryKeys(command: LfCommand, keys: LfKeySet = shippedLfKeys()): ReadonlySet<string> {
  return keys.commands[command];
}

/** Why a key still works but should not be used, if it is deprecated. */
export const deprecatedKeyNote = (key: string, keys: LfKeySet = shippedLfKeys()): string | undefined => keys.deprecated[key];

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The closest accepted key, if one is close enough to be a plausible typo. */
export function suggestKey(key: string, command: LfCommand, keys: LfKeySet = shippedLfKeys()): string | undefined {
  if (key === "warmup_ratio" && keys.commands[command].has("warmup_steps")) return "warmup_steps (a float in [0, 1) is the ratio)";
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of keys.commands[command]) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  // A third of the length: lora_rnak -> lora_rank, learnig_rate -> learning_rate, but not foo -> fp8.
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}
