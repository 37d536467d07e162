import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describeBackend, engineOrder, initBackend, tf } from "../src/model/backend.ts";
import { repoRoot } from "../src/util/paths.ts";

/** What a fresh process prints for its engine line under the given environment. */
const engineLine = (env: Record<string, string>): string =>
  spawnSync(process.execPath, ["--import", "tsx", "-e", 'import("./src/model/backend.ts").then(async (b) => console.log(b.describeBackend(await b.initBackend()))).catch((e) => { console.log("error: " + e.message); })'], { cwd: repoRoot, encoding: "utf8", env: { ...process.env, KTU_ENGINE: "", KTU_BACKEND: "", ...env } }).stdout;

test("engine choice: the order, wasm on request, a forced one that is missing fails clearly", async () => {
  assert.deepEqual(engineOrder, ["tensorflow-gpu", "native", "tensorflow", "wasm", "cpu"]);
  const info = await initBackend("wasm");
  assert.equal(tf.getBackend(), "wasm");
  assert.match(describeBackend(info), /^engine: wasm/);
  await assert.rejects(initBackend("tensorflow"), /engine tensorflow \(forced by the caller\) failed to load/);
  assert.equal(tf.getBackend(), "wasm", "a failed forced engine leaves the running one in place");
});

test("engine choice in a fresh process: automatic, KTU_ENGINE, the older KTU_BACKEND, and unknown names", () => {
  const auto = engineLine({});
  assert.match(auto, /^engine: (native|tensorflow|wasm)/);
  // tfjs-node-gpu is tried first; whatever runs names what it skipped.
  if (!/^engine: tensorflow-gpu/.test(auto)) assert.match(auto, /skipped tensorflow-gpu/);
  assert.match(engineLine({ KTU_ENGINE: "cpu" }), /^engine: cpu\n$/);
  assert.match(engineLine({ KTU_ENGINE: "wasm" }), /^engine: wasm\n$/);
  assert.match(engineLine({ KTU_BACKEND: "cpu" }), /^engine: cpu\n$/);
  assert.match(engineLine({ KTU_ENGINE: "wasm", KTU_BACKEND: "cpu" }), /^engine: wasm\n$/, "KTU_ENGINE wins over KTU_BACKEND");
  assert.match(engineLine({ KTU_ENGINE: "webgpu" }), /error: KTU_ENGINE=webgpu is not one of tensorflow-gpu, native, tensorflow, wasm, cpu/);
  assert.match(engineLine({ KTU_BACKEND: "webgpu" }), /error: KTU_BACKEND=webgpu is not one of/);
  // native either runs (and names its SIMD level and threads) or fails with the reason.
  const native = engineLine({ KTU_ENGINE: "native" });
  assert.match(native, /^(engine: native \(\w+, \d+ threads?|error: engine native \(forced by KTU_ENGINE\) failed to load: .+)/);
  if (/^engine: native/.test(native)) {
    assert.match(auto, /^engine: (native|tensorflow-gpu)/, "a loadable addon is the default on a CPU machine");
    // README: KTU_NATIVE_THREADS=n sets the native engine's threads.
    assert.match(engineLine({ KTU_ENGINE: "native", KTU_NATIVE_THREADS: "1" }), /^engine: native \(\w+, 1 thread[;)]/);
  }
});
