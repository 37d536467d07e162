import assert from "node:assert/strict";
import { test } from "node:test";
import { missingPython, runUnittest, testKernelEnv } from "./kernel/helpers.ts";

// The kernel as jupyter_client drives it: interrupts, stop_on_error, restart, stdin, comms,
// 1,000 failing cells, and forged, unsigned, malformed, unknown and oversized messages.
const missing = missingPython(["jupyter_client", "zmq"]);

test("jupyter_client: interrupt, stop_on_error, restart, stdin, comms, bad input", { skip: missing, timeout: 240_000 }, async () => {
  const run = await runUnittest("client_tests", await testKernelEnv());
  assert.ok(run.ok, run.output);
  assert.equal(run.failures + run.errors + run.skipped, 0, run.output);
  assert.equal(run.ran, 10, run.output);
});
