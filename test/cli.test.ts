import assert from "node:assert/strict";
import { test } from "node:test";
import { runKtu } from "./helpers/cli.ts";

test("ktu --help lists the command groups and exits 0", () => {
  const result = runKtu(["--help"]);
  assert.equal(result.status, 0, result.stderr);
  for (const group of ["data", "generate", "train", "eval", "serve", "kernel", "start"]) {
    assert.match(result.stdout, new RegExp(`^  ${group} `, "m"));
  }
});

test("an unknown command exits non-zero with one clear line", () => {
  const result = runKtu(["frobnicate"]);
  assert.equal(result.status, 2);
  assert.equal(result.stderr.trim().split("\n").length, 1);
  assert.match(result.stderr, /unknown command "frobnicate"/);
});
