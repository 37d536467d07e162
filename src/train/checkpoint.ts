import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { readSafetensors, serializeSafetensors, tensorToFloat32, type SafetensorsInput } from "../model/safetensors.ts";
import { InputError } from "../util/errors.ts";

/**
 * Trainer checkpoints, laid out like the Hugging Face Trainer's `checkpoint-N` folders:
 * adapter_model.safetensors + adapter_config.json (a PEFT adapter, usable as is), optimizer.safetensors
 * (AdamW moments), trainer_state.json (step, epoch, data order, RNG state, config). A checkpoint is
 * written into a temporary sibling folder and renamed into place, so a kill at any moment leaves
 * either the complete old state or the complete new one.
 */
export interface TrainerSnapshot {
  readonly globalStep: number;
  readonly totalSteps: number;
  /** Fractional epochs done, as the Hugging Face trainer reports it. */
  readonly epoch: number;
  /** Index of the epoch in progress and the next micro-batch in it. */
  readonly epochIndex: number;
  readonly cursor: number;
  /** The current epoch's example order. */
  readonly order: readonly number[];
  readonly rngState: number;
  readonly adamStep: number;
  /** The logging window in progress (loss summed over steps since the last log row). */
  readonly lossSinceLog: number;
  readonly stepsSinceLog: number;
  readonly params: Readonly<Record<string, Float32Array>>;
  readonly m: Readonly<Record<string, Float32Array>>;
  readonly v: Readonly<Record<string, Float32Array>>;
  readonly config: unknown;
  readonly dataFingerprint: string;
  /** trainer_log.jsonl rows so far, so the log can be restored to this step on resume. */
  readonly logHistory: readonly Record<string, unknown>[];
  readonly adapterConfig: Record<string, unknown>;
}

const STATE = "trainer_state.json";

export async function saveCheckpoint(dir: string, snapshot: TrainerSnapshot): Promise<void> {
  const temp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  try {
    const adapter: Record<string, SafetensorsInput> = {};
    for (const [name, data] of Object.entries(snapshot.params)) adapter[name] = { data, shape: shapeOf(snapshot.adapterConfig, name, data) };
    await writeFile(join(temp, "adapter_model.safetensors"), serializeSafetensors(adapter, { format: "pt" }));
    await writeFile(join(temp, "adapter_config.json"), JSON.stringify(snapshot.adapterConfig, null, 2) + "\n");
    const moments: Record<string, SafetensorsInput> = {};
    for (const [name, data] of Object.entries(snapshot.m)) moments[`exp_avg.${name}`] = { data, shape: [data.length] };
    for (const [name, data] of Object.entries(snapshot.v)) moments[`exp_avg_sq.${name}`] = { data, shape: [data.length] };
    await writeFile(join(temp, "optimizer.safetensors"), serializeSafetensors(moments));
    const { params: _p, m: _m, v: _v, ...rest } = snapshot;
    const state = {
      // The Hugging Face trainer_state.json keys first, so tools that read those find them.
      global_step: snapshot.globalStep,
      max_steps: snapshot.totalSteps,
      epoch: snapshot.epoch,
      log_history: snapshot.logHistory,
      ktu: { ...rest, logHistory: undefined },
    };
    await writeFile(join(temp, STATE), JSON.stringify(state) + "\n");
    // Replace an existing folder of the same name by moving it aside first; rename of a directory onto
    // a non-empty one fails.
    if (existsSync(dir)) {
      const old = `${temp}-old`;
      await rename(dir, old);
      await rename(temp, dir);
      await rm(old, { recursive: true, force: true });
    } else await rename(temp, dir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** PEFT shapes: lora_A [r, in], lora_B [out, r]; r comes from the adapter config. */
function shapeOf(adapterConfig: Record<string, unknown>, name: string, data: Float32Array): [number, number] {
  const r = adapterConfig.r as number;
  return name.includes("lora_A") ? [r, data.length / r] : [data.length / r, r];
}

export function loadCheckpoint(dir: string): TrainerSnapshot {
  const statePath = join(dir, STATE);
  if (!existsSync(statePath)) throw new InputError(statePath, undefined, undefined, "not a ktu checkpoint (no trainer_state.json)");
  let state: { log_history?: Record<string, unknown>[]; ktu?: Record<string, unknown> };
  try {
    state = JSON.parse(readFileSync(statePath, "utf8")) as typeof state;
  } catch (error) {
    throw new InputError(statePath, undefined, undefined, `does not parse: ${(error as Error).message}`);
  }
  if (state === null || typeof state !== "object" || Array.isArray(state)) throw new InputError(statePath, undefined, undefined, `expected a JSON object, got ${JSON.stringify(state)?.slice(0, 40)}`);
  const k = state.ktu;
  if (!k || typeof k.globalStep !== "number" || !Array.isArray(k.order)) throw new InputError(statePath, undefined, "ktu", "missing the trainer position (written by another trainer?)");
  const adapterFile = readSafetensors(join(dir, "adapter_model.safetensors"));
  const optimizerFile = readSafetensors(join(dir, "optimizer.safetensors"));
  const params: Record<string, Float32Array> = {};
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const [name, entry] of adapterFile.tensors) {
    params[name] = tensorToFloat32(entry, adapterFile.path, name);
    const em = optimizerFile.tensors.get(`exp_avg.${name}`);
    const ev = optimizerFile.tensors.get(`exp_avg_sq.${name}`);
    if (!em || !ev) throw new InputError(optimizerFile.path, `exp_avg.${name}`, "tensor", "missing optimizer moments for an adapter tensor");
    m[name] = tensorToFloat32(em, optimizerFile.path, name);
    v[name] = tensorToFloat32(ev, optimizerFile.path, name);
  }
  return { ...(k as unknown as TrainerSnapshot), params, m, v, logHistory: state.log_history ?? [] };
}

/** The checkpoint-N folder with the highest N in `outputDir`, or undefined. */
export function latestCheckpoint(outputDir: string): string | undefined {
  if (!existsSync(outputDir)) return undefined;
  const steps = readdirSync(outputDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(outputDir, m[0], STATE)))
    .map((m) => Number(m[1]));
  return steps.length ? join(outputDir, `checkpoint-${Math.max(...steps)}`) : undefined;
}
