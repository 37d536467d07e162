import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../util/paths.ts";

/**
 * The YAML keys LLaMA-Factory's HfArgumentParser accepts, read from its hparams dataclasses
 * (see llamafactory-keys.json for the commit and src/engine/keys/extract.py to regenerate it).
 * The test double of llamafactory-cli reads the same file, so both reject the same keys.
 */
export type LfCommand = "train" | "export";

interface KeyFile {
  source: { llamafactory: { repo: string; commit: string; version: string }; transformers: { version: string; files: Record<string, string> } };
  commands: Record<LfCommand, string[]>;
  deprecated: Record<string, string>;
  groups: Record<string, string[]>;
}

export const llamaFactoryKeysPath = join(repoRoot, "src", "engine", "llamafactory-keys.json");

let cache: KeyFile | undefined;
function keyFile(): KeyFile {
  cache ??= JSON.parse(readFileSync(llamaFactoryKeysPath, "utf8")) as KeyFile;
  return cache;
}

/** Where the key list comes from: LLaMA-Factory commit and version, transformers version. */
export function llamaFactoryKeysSource(): { commit: string; version: string; transformers: string } {
  const { llamafactory, transformers } = keyFile().source;
  return { commit: llamafactory.commit, version: llamafactory.version, transformers: transformers.version };
}

const keySets = new Map<LfCommand, Set<string>>();
/** The keys `llamafactory-cli <command>` accepts in its YAML. */
export function llamaFactoryKeys(command: LfCommand): ReadonlySet<string> {
  let set = keySets.get(command);
  if (!set) {
    const file = keyFile();
    set = new Set(file.commands[command].flatMap((group) => file.groups[group] ?? []));
    keySets.set(command, set);
  }
  return set;
}

/** Why a key still works but should not be used, if it is deprecated. */
export const deprecatedKeyNote = (key: string): string | undefined => keyFile().deprecated[key];

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
export function suggestKey(key: string, command: LfCommand): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of llamaFactoryKeys(command)) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  // A third of the length: lora_rnak -> lora_rank, learnig_rate -> learning_rate, but not foo -> fp8.
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}
