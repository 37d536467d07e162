import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";

/**
 * The build script's failure modes: without a compiler a plain build fails (exit 1, with the reason) and
 * an --optional build (the install script) prints one line and succeeds, so `npm ci` never fails on a
 * machine without g++. The existing binary is not touched: the compile fails before anything is renamed.
 */
const script = join(import.meta.dirname, "..", "native", "build.mjs");
const noCompiler = { ...process.env, CXX: "/nonexistent/g++" };

test("native build: no compiler fails with the reason; --optional skips with exit 0", () => {
  const plain = spawnSync(process.execPath, [script], { env: noCompiler, encoding: "utf8" });
  assert.equal(plain.status, 1);
  assert.match(plain.stderr, /native: build failed: .*(ENOENT|nonexistent)/);
  const optional = spawnSync(process.execPath, [script, "--optional"], { env: noCompiler, encoding: "utf8" });
  assert.equal(optional.status, 0, optional.stderr);
  assert.match(optional.stdout, /^native: build skipped \(.+\); the wasm engine will be used\n$/);
});
