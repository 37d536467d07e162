/**
 * What a model is, in one line, for every place that names the model it runs (`ktu start`, the report,
 * the notebooks): "reader: 1.33M-parameter Llama trained from scratch by recipes/reader, see
 * data/models/reader/MODEL_CARD.md". Name, origin and card come from the `model` block of the model's
 * prompt.json (prompt-format.ts); without one, the file's name and a MODEL_CARD.md or PROVENANCE.md
 * beside the weights.
 */
import { existsSync, statSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { repoRoot } from "../util/paths.ts";
import { readPromptFormat } from "./prompt-format.ts";
import type { LlamaConfig } from "./types.ts";

/** Parameters of a Llama config (tied embeddings counted once). */
export function countParams(c: LlamaConfig): number {
  const kvDim = (c.dim * c.nKvHeads) / c.nHeads;
  return c.dim * c.vocabSize * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * (2 * c.dim * c.dim + 2 * c.dim * kvDim + 3 * c.dim * c.hiddenDim + 2 * c.dim) + c.dim;
}

/** 1,328,256 -> "1.33M", 260,000 -> "260K". */
export const formatParams = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${Math.round(n / 1e3)}K` : String(n));

/** A path as the repository names it (relative inside the checkout, absolute outside). */
const shown = (path: string): string => {
  const r = relative(repoRoot, path);
  return r.startsWith("..") ? path : r;
};

export interface ModelDescription {
  name: string;
  params: number;
  origin?: string;
  /** The model card or provenance file, as a path. */
  card?: string;
  /** The one line: "NAME: SIZE-parameter Llama ORIGIN, see CARD". */
  line: string;
}

export function describeModel(modelPath: string, config: LlamaConfig): ModelDescription {
  const folder = !modelPath.startsWith("hf:") && existsSync(modelPath) && statSync(modelPath).isDirectory();
  const dir = folder ? modelPath : dirname(modelPath);
  const declared = readPromptFormat(modelPath)?.model;
  const name = declared?.name ?? (modelPath.startsWith("hf:") ? modelPath.slice(3) : basename(modelPath).replace(/\.bin$/, ""));
  const cardFile = declared?.card ? join(dir, declared.card) : ["MODEL_CARD.md", "PROVENANCE.md"].map((f) => join(dir, f)).find((f) => !modelPath.startsWith("hf:") && existsSync(f));
  const card = cardFile ? shown(cardFile) : undefined;
  const params = countParams(config);
  const line = `${name}: ${formatParams(params)}-parameter Llama${declared?.origin ? ` ${declared.origin}` : ""}${card ? `, see ${card}` : ""}`;
  return { name, params, ...(declared?.origin ? { origin: declared.origin } : {}), ...(card ? { card } : {}), line };
}
