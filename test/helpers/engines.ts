/**
 * The engines a parity test runs on: wasm (the TF.js ops) and native (the addon's ops), each as
 * { engine, skip } for node:test. Unset, KTU_TEST_ENGINES means "wasm, and native where the addon
 * loads" (native is skipped, with the reason, where it cannot). Set, it is the list of engines that
 * must run (e.g. KTU_TEST_ENGINES=wasm,native in CI): a named engine that cannot load fails its tests.
 */
import { loadNative } from "../../src/model/native.ts";

export type TestEngine = "wasm" | "native";

export function testEngines(): { engine: TestEngine; skip: string | false }[] {
  const named = process.env.KTU_TEST_ENGINES;
  const wanted = (named || "wasm,native").split(",").map((s) => s.trim()) as TestEngine[];
  return (["wasm", "native"] as const)
    .filter((e) => wanted.includes(e))
    .map((engine) => {
      if (engine !== "native") return { engine, skip: false };
      const loaded = loadNative({ quiet: true });
      return { engine, skip: loaded.engine || named ? false : `native engine unavailable: ${loaded.reason}` };
    });
}
