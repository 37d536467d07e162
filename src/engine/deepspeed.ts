import { join } from "node:path";
import { writeJsonAtomic } from "../util/fs.ts";

/**
 * DeepSpeed ZeRO configs for LLaMA-Factory's `deepspeed:` key. The settings are those of
 * LLaMA-Factory's examples/deepspeed/ds_z{0,2,3}_config.json at hiyouga/LLaMA-Factory@ff6d4d12e
 * ("auto" values are filled in by the HF Trainer from the YAML's batch size, precision and clipping).
 */
export type ZeroStage = 0 | 2 | 3;

const common = {
  train_batch_size: "auto",
  train_micro_batch_size_per_gpu: "auto",
  gradient_accumulation_steps: "auto",
  gradient_clipping: "auto",
  zero_allow_untested_optimizer: true,
  fp16: { enabled: "auto", loss_scale: 0, loss_scale_window: 1000, initial_scale_power: 16, hysteresis: 2, min_loss_scale: 1 },
  bf16: { enabled: "auto" },
};

const stage02 = (stage: 0 | 2) => ({
  stage,
  allgather_partitions: true,
  allgather_bucket_size: 5e8,
  overlap_comm: false,
  reduce_scatter: true,
  reduce_bucket_size: 5e8,
  contiguous_gradients: true,
  round_robin_gradients: true,
});

const stage3 = {
  stage: 3,
  overlap_comm: false,
  contiguous_gradients: true,
  sub_group_size: 1e9,
  reduce_bucket_size: "auto",
  stage3_prefetch_bucket_size: "auto",
  stage3_param_persistence_threshold: "auto",
  stage3_max_live_parameters: 1e9,
  stage3_max_reuse_distance: 1e9,
  stage3_gather_16bit_weights_on_model_save: true,
};

/** The ZeRO-`stage` config; `offload` moves optimizer state (and for ZeRO-3 parameters) to CPU, as ds_z{2,3}_offload_config.json. */
export function deepspeedConfig(stage: ZeroStage, options: { offload?: boolean } = {}): Record<string, unknown> {
  const zero: Record<string, unknown> = stage === 3 ? { ...stage3 } : stage02(stage);
  if (options.offload) {
    if (stage === 0) throw new Error("ZeRO stage 0 has nothing to offload; use stage 2 or 3");
    zero.offload_optimizer = { device: "cpu", pin_memory: true };
    if (stage === 3) zero.offload_param = { device: "cpu", pin_memory: true };
  }
  return { ...common, zero_optimization: zero };
}

/** Writes ds_z<stage>[_offload]_config.json into `dir` and returns its path, for the `deepspeed:` key. */
export async function writeDeepspeedConfig(dir: string, stage: ZeroStage, options: { offload?: boolean } = {}): Promise<string> {
  const path = join(dir, `ds_z${stage}${options.offload ? "_offload" : ""}_config.json`);
  await writeJsonAtomic(path, deepspeedConfig(stage, options));
  return path;
}
