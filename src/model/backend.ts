import * as tf from "@tensorflow/tfjs-core";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";

/**
 * TF.js backend choice at run time. Preference: tfjs-node-gpu (CUDA), tfjs-node (native CPU), wasm
 * (SIMD, single thread), then the pure-JS cpu backend. The native ones are optionalDependencies whose
 * install downloads libtensorflow, so they are often absent: each is tried with a dynamic import and
 * skipped on any failure. KTU_BACKEND forces one (and then failing to load it is an error).
 */
export type BackendName = "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
export const backendOrder: readonly BackendName[] = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"];

export interface BackendInfo {
  /** What we asked for. */
  readonly name: BackendName;
  /** tf.getBackend() after setup ("tensorflow" for both native packages). */
  readonly tfBackend: string;
  /** Why the earlier ones in the order were skipped. */
  readonly skipped: readonly string[];
}

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

async function tryBackend(name: BackendName): Promise<void> {
  switch (name) {
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

/**
 * Sets up a backend once per process and returns which one runs. `prefer` (or KTU_BACKEND) forces one;
 * otherwise the first that loads in `backendOrder` wins.
 */
export function initBackend(prefer?: BackendName): Promise<BackendInfo> {
  const forced = prefer ?? ((process.env.KTU_BACKEND || undefined) as BackendName | undefined);
  if (forced !== undefined && !backendOrder.includes(forced)) {
    return Promise.reject(new Error(`KTU_BACKEND=${forced} is not one of ${backendOrder.join(", ")}`));
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
        current = { name, tfBackend: tf.getBackend(), skipped };
        return current;
      } catch (error) {
        const reason = error instanceof Error ? error.message.split("\n")[0]! : String(error);
        if (forced) throw new Error(`backend ${name} (forced by ${prefer ? "the caller" : "KTU_BACKEND"}) failed to load: ${reason}`);
        skipped.push(`${name}: ${reason}`);
      }
    }
    throw new Error(`no TF.js backend could be loaded:\n  ${skipped.join("\n  ")}`);
  })();
  pending.catch(() => (pending = undefined));
  return pending;
}

/** The backend in use, or undefined before initBackend. */
export const currentBackend = (): BackendInfo | undefined => current;

export const describeBackend = (info: BackendInfo): string =>
  `TF.js backend: ${info.name}${info.skipped.length ? ` (skipped ${info.skipped.map((s) => s.split(":")[0]).join(", ")})` : ""}`;

export { tf };
