/**
 * know-the-unknown: the one public face that notebooks import.
 * Data flows one way: data -> model -> train -> eval -> viz; engine drives LLaMA-Factory and serves models.
 */
export * from "./data/index.ts";
export * from "./model/index.ts";
export * from "./train/index.ts";
export * from "./eval/index.ts";
export * from "./viz/index.ts";
export * from "./engine/index.ts";
export { Rng } from "./util/rng.ts";
export { InputError } from "./util/errors.ts";
export { repoRoot, dataPath } from "./util/paths.ts";
export * from "./pipeline/index.ts";
