import { join, resolve } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../util/fs.ts";
import { toAlpaca, type AlpacaRow } from "./alpaca.ts";
import { DATASET_NAMES, datasetInfo, paperMergeConfigs, paperTrainConfigs, toYaml, type LlamaFactoryPreset, type LlamaFactoryTrainConfig } from "./llamafactory.ts";

/**
 * Writes a folder LLaMA-Factory can train from: one Alpaca JSON per dataset under the seed's names,
 * a dataset_info.json registering them, and the paper's train and merge YAMLs pointing at it.
 */

export type DatasetKey = keyof typeof DATASET_NAMES;

export interface ExportOptions {
  /** Base model for stage 1 and the ablations (default meta-llama/Llama-2-7b-chat-hf). */
  modelPath?: string;
  /** Where adapters and merged models go (default DIR/models). */
  outputRoot?: string;
  template?: string;
  preset?: LlamaFactoryPreset;
  overrides?: Partial<LlamaFactoryTrainConfig>;
  stage2MergeBase?: "paper" | "stage1-merged";
}

export interface ExportResult {
  dir: string;
  datasets: Partial<Record<DatasetKey, { file: string; rows: number }>>;
  datasetInfo: string;
  trainConfigs: Record<string, string>;
  mergeConfigs: Record<string, string>;
}

export const DEFAULT_BASE_MODEL = "meta-llama/Llama-2-7b-chat-hf";

export async function exportLlamaFactory(dir: string, datasets: Partial<Record<DatasetKey, readonly AlpacaRow[]>>, options: ExportOptions = {}): Promise<ExportResult> {
  const root = resolve(dir);
  const result: ExportResult = { dir: root, datasets: {}, datasetInfo: join(root, "dataset_info.json"), trainConfigs: {}, mergeConfigs: {} };
  const names: string[] = [];
  for (const [key, rows] of Object.entries(datasets) as [DatasetKey, AlpacaRow[] | undefined][]) {
    if (!rows) continue;
    const name = DATASET_NAMES[key];
    const file = join(root, `${name}.json`);
    await writeJsonAtomic(file, toAlpaca(rows));
    result.datasets[key] = { file, rows: rows.length };
    names.push(name);
  }
  await writeJsonAtomic(result.datasetInfo, datasetInfo(names));
  const common = { modelPath: options.modelPath ?? DEFAULT_BASE_MODEL, outputRoot: options.outputRoot ?? join(root, "models"), ...(options.template ? { template: options.template } : {}) };
  const train = paperTrainConfigs({ ...common, datasetDir: root, ...(options.preset ? { preset: options.preset } : {}), ...(options.overrides ? { overrides: options.overrides } : {}) });
  for (const [name, config] of Object.entries(train)) {
    // A config whose dataset was not exported would fail inside LLaMA-Factory; leave it out.
    if (!names.includes(config.dataset)) continue;
    const file = join(root, "configs", "train_lora", `${name}.yaml`);
    await writeFileAtomic(file, toYaml(config));
    result.trainConfigs[name] = file;
  }
  for (const [name, config] of Object.entries(paperMergeConfigs({ ...common, ...(options.stage2MergeBase ? { stage2MergeBase: options.stage2MergeBase } : {}) }))) {
    const file = join(root, "configs", "merge_lora", `${name}.yaml`);
    await writeFileAtomic(file, toYaml(config));
    result.mergeConfigs[name] = file;
  }
  return result;
}
