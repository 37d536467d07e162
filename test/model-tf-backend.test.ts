import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { backendOrder, describeBackend, initBackend, tf } from "../src/model/backend.ts";
import { repoRoot } from "../src/util/paths.ts";

test("backend choice: the optional native backends are skipped, wasm runs, a forced one that is missing fails clearly", async () => {
  assert.deepEqual(backendOrder, ["tensorflow-gpu", "tensorflow", "wasm", "cpu"]);
  const info = await initBackend("wasm");
  assert.equal(tf.getBackend(), "wasm");
  assert.match(describeBackend(info), /^TF\.js backend: wasm/);
  await assert.rejects(initBackend("tensorflow"), /backend tensorflow \(forced by the caller\) failed to load/);
  assert.equal(tf.getBackend(), "wasm", "a failed forced backend leaves the running one in place");
  // In a fresh process: automatic choice, and KTU_BACKEND forcing cpu or naming nothing known.
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ["--import", "tsx", "-e", 'import("./src/model/backend.ts").then(async (b) => console.log(b.describeBackend(await b.initBackend()))).catch((e) => { console.log("error: " + e.message); })'], { cwd: repoRoot, encoding: "utf8", env: { ...process.env, ...env } });
  const auto = run({ KTU_BACKEND: "" });
  assert.match(auto.stdout, /TF\.js backend: (wasm|tensorflow)/);
  if (/wasm/.test(auto.stdout)) assert.match(auto.stdout, /skipped tensorflow-gpu, tensorflow/);
  assert.match(run({ KTU_BACKEND: "cpu" }).stdout, /^TF\.js backend: cpu\n$/);
  assert.match(run({ KTU_BACKEND: "webgpu" }).stdout, /error: KTU_BACKEND=webgpu is not one of tensorflow-gpu, tensorflow, wasm, cpu/);
});
