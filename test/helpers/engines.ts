/**
 * The engines a parity test runs on: wasm (the TF.js ops) and native (the addon's ops), each as
 * { engine, skip } for node:test. native is skipped, with the reason, where the addon cannot load;
 * KTU_TEST_ENGINES=wasm,native (a comma list) narrows the set, e.g. for a CI matrix.
 */
import { loadNative } from "../../src/model/native.ts";

export type TestEngine = "wasm" | "native";

export function testEngines(): { engine: TestEngine; skip: string | false }[] {
  const wanted = (process.env.KTU_TEST_ENGINES || "wasm,native").split(",").map((s) => s.trim()) as TestEngine[];
  return (["wasm", "native"] as const)
    .filter((e) => wanted.includes(e))
    .map((engine) => {
      if (engine !== "native") return { engine, skip: false };
      const loaded = loadNative({ quiet: true });
      return { engine, skip: loaded.engine ? false : `native engine unavailable: ${loaded.reason}` };
    });
}
