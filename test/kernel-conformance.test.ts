import assert from "node:assert/strict";
import { test } from "node:test";
import { missingPython, runUnittest, testKernelEnv } from "./kernel/helpers.ts";

// jupyter_kernel_test (Debian python3-jupyter-kernel-test 0.4.5) with every check that applies on.
const missing = missingPython(["jupyter_kernel_test", "jupyter_client"]);

test("jupyter_kernel_test passes with every applicable check enabled", { skip: missing, timeout: 240_000 }, async () => {
  const run = await runUnittest("ktu_kernel_test", await testKernelEnv());
  assert.ok(run.ok, run.output);
  assert.equal(run.code, 0, run.output);
  assert.equal(run.failures + run.errors, 0, run.output);
  assert.equal(run.ran, 12, run.output);
  // Only the pager has no TypeScript sample; every other check, each history subtest included, ran.
  assert.equal(run.skipped, 1, run.output);
  assert.match(run.output, /test_pager .* skipped/);
});
