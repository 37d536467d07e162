import * as tf from "@tensorflow/tfjs-core";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";

/**
 * Engine choice at run time. An engine is a TF.js backend plus the ops layer the model runs on
 * (src/model/ops.ts): "native" is our C++ addon (native/, src/model/native.ts) called from the TF.js
 * cpu backend, whose tensors are plain typed arrays the addon reads and writes in place; the others
 * are TF.js backends running TF.js ops. Preference: tfjs-node-gpu (CUDA), then native (multi-threaded
 * SIMD kernels, measured fastest on CPUs), then tfjs-node (libtensorflow), wasm (SIMD, one thread),
 * and the pure-JS cpu backend. tfjs-node(-gpu) are optionalDependencies whose install downloads
 * libtensorflow and the addon is compiled at install, so any may be absent: each is tried and
 * skipped on any failure. KTU_ENGINE (or the older KTU_BACKEND) forces one, and then failing to load
 * it is an error.
 */
export type EngineName = "tensorflow-gpu" | "native" | "tensorflow" | "wasm" | "cpu";
/** Older name, kept for callers that pass backend names (every backend name is an engine name). */
export type BackendName = EngineName;
export const engineOrder: readonly EngineName[] = ["tensorflow-gpu", "native", "tensorflow", "wasm", "cpu"];
export const backendOrder = engineOrder;

export interface BackendInfo {
  /** The engine that runs. */
  readonly name: EngineName;
  /** tf.getBackend() after setup ("tensorflow" for both tfjs-node packages, "cpu" under native). */
  readonly tfBackend: string;
  /** Why the earlier ones in the order were skipped. */
  readonly skipped: readonly string[];
  /** For native: the addon's own description (SIMD level, threads). */
  readonly detail?: string;
}
export type EngineInfo = BackendInfo;

let current: BackendInfo | undefined;
let gradientsRegistered = false;

/**
 * tfjs-core's Node (CommonJS) bundle carries no gradient definitions; they ship only as per-file ES
 * modules with extensionless imports, which Node's ESM loader rejects. We bundle that entry point with
 * esbuild (already installed as tsx's dependency) into one CommonJS string and run it: it registers
 * every gradient into the registry that all copies of tfjs-core share through globalThis.
 */
function registerGradients(): void {
  if (gradientsRegistered || tf.getGradient("BatchMatMul") !== undefined) {
    gradientsRegistered = true;
    return;
  }
  const require = createRequire(import.meta.url);
  const esbuild = require("esbuild") as typeof import("esbuild");
  const entry = require.resolve("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  const built = esbuild.buildSync({ entryPoints: [entry], bundle: true, format: "cjs", platform: "node", write: false, logLevel: "silent" });
  const module = { exports: {} };
  new Function("module", "exports", "require", built.outputFiles[0]!.text)(module, module.exports, require);
  if (tf.getGradient("BatchMatMul") === undefined) throw new Error("registering tfjs-core gradients failed");
  gradientsRegistered = true;
}
let pending: Promise<BackendInfo> | undefined;

// Optional packages are imported through a variable so that TypeScript and bundlers do not try to resolve them.
const importOptional = (name: string): Promise<unknown> => import(name);

/** Set by tryBackend("native"): what the addon reports about itself. */
let nativeDetail: string | undefined;

async function tryBackend(name: EngineName): Promise<void> {
  nativeDetail = undefined;
  switch (name) {
    case "native": {
      // Loads the addon first (a failed build throws here), then the cpu backend its tensors live on.
      const { installFastCpuAdd, loadNativeOps } = await import("./ops-native.ts");
      nativeDetail = await loadNativeOps();
      await import("@tensorflow/tfjs-backend-cpu");
      if (!(await tf.setBackend("cpu"))) throw new Error("the cpu backend did not initialise");
      installFastCpuAdd();
      return;
    }
    case "tensorflow-gpu":
    case "tensorflow": {
      // Both packages register the "tensorflow" backend with their own copy of tfjs; we use tfjs-core's
      // registry, so the native package must share it (same version). A mismatch is reported as a skip.
      await importOptional(name === "tensorflow-gpu" ? "@tensorflow/tfjs-node-gpu" : "@tensorflow/tfjs-node");
      if (!(await tf.setBackend("tensorflow"))) throw new Error("the tensorflow backend did not initialise");
      return;
    }
    case "wasm": {
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      const require = createRequire(import.meta.url);
      // The .wasm binaries sit next to the package's main file; in Node they are read from disk.
      const dist = dirname(require.resolve("@tensorflow/tfjs-backend-wasm"));
      wasm.setWasmPaths(join(dist, "/"));
      if (!(await tf.setBackend("wasm"))) throw new Error("the wasm backend did not initialise");
      return;
    }
    case "cpu": {
      await import("@tensorflow/tfjs-backend-cpu");
      if (!(await tf.setBackend("cpu"))) throw new Error("the cpu backend did not initialise");
      return;
    }
  }
}

/** The variable that forces an engine, if any: KTU_ENGINE, else KTU_BACKEND. */
function forcedByEnv(): { name: EngineName; by: string } | undefined {
  for (const by of ["KTU_ENGINE", "KTU_BACKEND"]) {
    const value = process.env[by];
    if (value) return { name: value as EngineName, by };
  }
  return undefined;
}

/**
 * Sets up an engine once per process and returns which one runs. `prefer` (or KTU_ENGINE, or
 * KTU_BACKEND) forces one; otherwise the first that loads in `engineOrder` wins.
 */
export function initBackend(prefer?: EngineName): Promise<BackendInfo> {
  const env = prefer === undefined ? forcedByEnv() : undefined;
  const forced = prefer ?? env?.name;
  const forcedBy = prefer !== undefined ? "the caller" : env?.by;
  if (forced !== undefined && !engineOrder.includes(forced)) {
    return Promise.reject(new Error(`${forcedBy}=${forced} is not one of ${engineOrder.join(", ")}`));
  }
  if (current && (forced === undefined || current.name === forced)) return Promise.resolve(current);
  if (pending && forced === undefined) return pending;
  pending = (async () => {
    registerGradients();
    // Silences tfjs's "install the node backend" banner and its debug-only checks.
    tf.enableProdMode();
    const skipped: string[] = [];
    for (const name of forced ? [forced] : backendOrder) {
      try {
        await tryBackend(name);
        current = { name, tfBackend: tf.getBackend(), skipped, ...(nativeDetail ? { detail: nativeDetail } : {}) };
        return current;
      } catch (error) {
        const reason = error instanceof Error ? error.message.split("\n")[0]! : String(error);
        if (forced) throw new Error(`engine ${name} (forced by ${forcedBy}) failed to load: ${reason}`);
        skipped.push(`${name}: ${reason}`);
      }
    }
    throw new Error(`no engine could be loaded:\n  ${skipped.join("\n  ")}`);
  })();
  pending.catch(() => (pending = undefined));
  return pending;
}

/** The backend in use, or undefined before initBackend. */
export const currentBackend = (): BackendInfo | undefined => current;

/** The engine in use, or undefined before initBackend. */
export const currentEngine = (): EngineName | undefined => current?.name;

/** Same as initBackend: the name the engine layer goes by. */
export const initEngine = initBackend;

/** One line for logs: "engine: native (avx2, 2 threads; skipped tensorflow-gpu)". */
export const describeBackend = (info: BackendInfo): string => {
  const notes = [info.detail, info.skipped.length ? `skipped ${info.skipped.map((s) => s.split(":")[0]).join(", ")}` : undefined].filter(Boolean);
  return `engine: ${info.name}${notes.length ? ` (${notes.join("; ")})` : ""}`;
};
export const describeEngine = describeBackend;

export { tf };
