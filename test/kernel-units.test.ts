import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { inflateSync } from "node:zlib";
import { join } from "node:path";
import { describe, test } from "node:test";
import ts from "typescript";
import { clearOutput, display, newDisplay, progress } from "../kernel/display.ts";
import { History } from "../kernel/history.ts";
import { installKernel, kernelSpec, logoPng, uninstallKernel } from "../kernel/install.ts";
import { executionScope, setKernelIo, type ExecutionState, type KernelIo } from "../kernel/io.ts";
import { isCompleteCode, TypeScriptInterpreter } from "../kernel/ts-evaluator.ts";
import { decode, encode, makeHeader, Signer } from "../kernel/wire.ts";
import { plotlyFigureBundle, plotlyMimeBundle, recompressPng, writePlotlyHtml } from "../src/viz/plotly.ts";

/** A frontend stand-in: records what the display API publishes. */
function fakeKernel(): { published: { msgType: string; content: Record<string, unknown> }[] } {
  const published: { msgType: string; content: Record<string, unknown> }[] = [];
  const io: KernelIo = {
    publish: (msgType, content) => void published.push({ msgType, content }),
    input: async (prompt) => `answer to ${prompt}`,
    comms: { open: () => assert.fail("no comms here"), registerTarget: () => undefined },
  };
  setKernelIo(io);
  return { published };
}

const newState = (): ExecutionState => ({
  parent: {},
  identities: [],
  allowStdin: false,
  silent: false,
  executionCount: 1,
  interrupted: false,
  pending: new Set(),
  onInterrupt: new Set(),
  abort: new AbortController(),
});

describe("wire", () => {
  const signer = new Signer("secret");
  const message = { identities: [Buffer.from("peer")], header: makeHeader("execute_request", "s"), parent_header: {}, metadata: {}, content: { code: "1+1" } };

  test("a signed message decodes to what was sent", () => {
    const decoded = decode(encode(message, signer), signer);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.message.content, { code: "1+1" });
    assert.deepEqual(decoded.message.identities, [Buffer.from("peer")]);
  });

  test("tampering, a wrong key, no signature or no delimiter are refused before any JSON is parsed", () => {
    const frames = encode(message, signer);
    const tampered = [...frames];
    tampered[tampered.length - 1] = Buffer.from(JSON.stringify({ code: "process.exit(1)" }));
    assert.deepEqual(decode(tampered, signer), { ok: false, reason: "bad signature" });
    assert.deepEqual(decode(encode(message, new Signer("other")), signer), { ok: false, reason: "bad signature" });
    assert.deepEqual(decode(encode(message, new Signer("")), signer), { ok: false, reason: "bad signature" });
    assert.equal((decode(frames.slice(1).filter((f) => f.toString() !== "<IDS|MSG>"), signer) as { reason: string }).reason, "no <IDS|MSG> delimiter");
    const parts = [Buffer.from("{oops"), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}")];
    const malformed = decode([Buffer.from("<IDS|MSG>"), Buffer.from(signer.sign(parts)), ...parts], signer);
    assert.equal(malformed.ok, false);
    assert.match((malformed as { reason: string }).reason, /header is not JSON/);
  });
});

describe("history", () => {
  const history = new History(1);
  ["a = 1", "b = 2", "a = 1", "print(a)"].forEach((code, i) => history.add(i + 1, code));
  history.setOutput(4, "1");

  test("tail, range, search with globs, unique and n", () => {
    assert.deepEqual(history.query({ hist_access_type: "tail", n: 2 }), [[1, 3, "a = 1"], [1, 4, "print(a)"]]);
    assert.deepEqual(history.query({ hist_access_type: "tail", n: 1, output: true }), [[1, 4, ["print(a)", "1"]]]);
    assert.deepEqual(history.query({ hist_access_type: "range", session: 1, start: 2, stop: 3 }), [[1, 2, "b = 2"]]);
    assert.deepEqual(history.query({ hist_access_type: "range", session: 7, start: 1, stop: 9 }), []);
    assert.equal(history.query({ hist_access_type: "search", pattern: "a*" }).length, 2);
    assert.deepEqual(history.query({ hist_access_type: "search", pattern: "a*", unique: true }), [[1, 3, "a = 1"]]);
    assert.deepEqual(history.query({ hist_access_type: "search", pattern: "?rint*" }), [[1, 4, "print(a)"]]);
  });
});

test("is_complete: complete, incomplete with an indent, invalid", () => {
  assert.equal(isCompleteCode(ts, "const a = 1").status, "complete");
  assert.deepEqual(isCompleteCode(ts, "function f() {"), { status: "incomplete", indent: "  " });
  assert.equal(isCompleteCode(ts, "const s = `open ${1}").status, "incomplete");
  assert.equal(isCompleteCode(ts, "1 +* 2").status, "invalid");
  assert.equal(isCompleteCode(ts, "'unterminated\nx").status, "invalid");
});

describe("the TypeScript interpreter", () => {
  const { published } = fakeKernel();
  const interpreter = new TypeScriptInterpreter();
  let cell = 100;
  const run = (code: string) => {
    const state = newState();
    return executionScope.run(state, () => interpreter.execute(code, ++cell, state));
  };
  const value = async (code: string): Promise<string | undefined> => {
    const outcome = await run(code);
    assert.equal(outcome.status, "ok", JSON.stringify(outcome));
    return (outcome as { value?: Record<string, string> }).value?.["text/plain"];
  };

  test("declarations persist, are type-checked across cells, and a re-run cell may redeclare them", { timeout: 120_000 }, async () => {
    assert.equal(await value("const x: number = 40; let y = 1; function inc(n: number) { return n + y } x"), "40");
    assert.equal(await value("inc(x) + y"), "42");
    assert.equal(await value("y = 5; inc(0)"), "5");
    assert.equal(await value("const x: string = 'again'; x.length"), "5");
    const typeError = await run("const n: number = x");
    assert.equal(typeError.status, "error");
    assert.match((typeError as { evalue: string }).evalue, /line 1: Type 'string' is not assignable to type 'number'/);
  });

  test("top-level await keeps its declarations; destructuring, classes and enums persist", async () => {
    assert.equal(await value("const { a, b: [c, ...rest] } = await Promise.resolve({ a: 1, b: [2, 3, 4] }); a + c + rest.length"), "5");
    assert.equal(await value("class Box { constructor(readonly v: number) {} } enum Colour { Red, Green }"), undefined);
    assert.equal(await value("new Box(a).v + Colour.Green"), "2");
  });

  test("runtime errors name the cell line; non-Error throws are reported", async () => {
    const outcome = await run("const ok = 1;\nfunction boom(): never { throw new RangeError('deep') }\nboom()");
    assert.equal(outcome.status, "error");
    const { ename, traceback } = outcome as { ename: string; traceback: string[] };
    assert.equal(ename, "RangeError");
    assert.ok(traceback.some((line) => /at boom \(cell \d+, line 2, col \d+\)/.test(line)), traceback.join("\n"));
    const thrown = await run("throw { code: 7 }");
    assert.deepEqual([(thrown as { ename: string }).ename, (thrown as { evalue: string }).evalue], ["Uncaught", "{ code: 7 }"]);
  });

  test("imports of npm packages and of the project resolve", async () => {
    assert.equal(await value("import * as aq from 'arquero'; aq.table({ a: [1, 2, 3] }).numRows()"), "3");
    assert.equal(await value("import { dataPath } from 'know-the-unknown'; typeof dataPath"), "'function'");
  });

  test("Jupyter.display objects render as their bundle; display handles are not values", async () => {
    const outcome = await run("({ [Symbol.for('Jupyter.display')]: () => ({ 'text/html': '<b>x</b>' }) })");
    assert.deepEqual((outcome as { value: unknown }).value, { "text/html": "<b>x</b>" });
    published.length = 0;
    assert.equal(await value("display.html('<i>y</i>')"), undefined);
    assert.equal(published[0]?.msgType, "display_data");
  });

  test("completion and inspection come from the language service, names of the same cell included", async () => {
    assert.deepEqual((await interpreter.complete("Math.ma", 7)).matches, ["max"]);
    const code = "const someLongName = 1; someLong";
    assert.deepEqual((await interpreter.complete(code, code.length)).matches, ["someLongName"]);
    assert.match(String((await interpreter.inspect("Math.max", 8))?.["text/plain"]), /max\(\.\.\.values: number\[\]\): number/);
  });
});

describe("display API", () => {
  test("handles update in place; newDisplay shows then replaces; progress ends at 100%", () => {
    const { published } = fakeKernel();
    const handle = display.markdown("*one*");
    handle.update("*two*");
    const d = newDisplay();
    d.text("a");
    d.raw("image/png", new Uint8Array([1, 2, 3]));
    clearOutput(true);
    const bar = progress(4, "epochs");
    bar.update(4, "done");
    const types = published.map((p) => p.msgType);
    assert.deepEqual(types, ["display_data", "update_display_data", "display_data", "update_display_data", "clear_output", "display_data", "update_display_data"]);
    const id = (i: number) => (published[i]!.content.transient as { display_id: string }).display_id;
    assert.equal(id(0), id(1));
    assert.equal(id(2), id(3));
    assert.notEqual(id(0), id(2));
    assert.equal((published[3]!.content.data as Record<string, string>)["image/png"], "AQID");
    assert.match((published[6]!.content.data as Record<string, string>)["text/plain"]!, /epochs: 4\/4 \(100%\) done/);
  });
});

describe("kernelspec", () => {
  test("install writes kernel.json with absolute paths and a real PNG logo; uninstall removes it", async () => {
    const prefix = mkdtempSync(join(tmpdir(), "ktu-spec-"));
    const dir = await installKernel({ prefix, name: "ktu-unit" });
    const spec = JSON.parse(readFileSync(join(dir, "kernel.json"), "utf8")) as { argv: string[]; language: string; interrupt_mode: string; display_name: string };
    assert.deepEqual(spec, JSON.parse(JSON.stringify(kernelSpec())));
    assert.equal(spec.argv[0], process.execPath);
    assert.ok(spec.argv.slice(0, -2).filter((a) => a.startsWith("/")).every((a) => existsSync(a)));
    assert.equal(spec.argv.at(-1), "{connection_file}");
    assert.equal(spec.language, "typescript");
    const png = readFileSync(join(dir, "logo-64x64.png"));
    assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(""), "PNG");
    assert.equal(png.readUInt32BE(16), 64);
    assert.deepEqual(logoPng(32).readUInt32BE(20), 32);
    assert.equal(uninstallKernel({ prefix, name: "ktu-unit" }), dir);
    assert.equal(existsSync(dir), false);
  });
});

describe("plotly", () => {
  const fig = { data: [{ x: [1, 2], y: [3, 1], type: "scatter" }], layout: { title: { text: "t" } } };

  test("a figure's bundle: plotly JSON, text and a PNG; never plotly.js or HTML", async () => {
    const quick = plotlyFigureBundle(fig);
    assert.deepEqual(Object.keys(quick).sort(), ["application/vnd.plotly.v1+json", "text/plain"]);
    assert.deepEqual((quick["application/vnd.plotly.v1+json"] as { data: unknown }).data, fig.data);
    assert.equal(quick["text/plain"], '<Plotly figure "t": 1 trace>');
    const full = await plotlyMimeBundle(fig, { image: false });
    assert.ok(JSON.stringify(full).length < 1_000, `${JSON.stringify(full).length} bytes`);
  });

  test("recompressPng keeps the image and makes it no larger", () => {
    const png = logoPng(64);
    const smaller = recompressPng(new Uint8Array(png));
    assert.ok(smaller.length <= png.length);
    assert.deepEqual(inflateIdat(Buffer.from(smaller)), inflateIdat(png));
  });

  test("writePlotlyHtml inlines plotly.js once for many figures", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "ktu-plotly-")), "figs.html");
    await writePlotlyHtml(path, [fig, fig, fig], "Three <figures>");
    const html = readFileSync(path, "utf8");
    assert.equal(html.split("Plotly.newPlot(el").length - 1, 3);
    assert.ok(html.length < 5_100_000);
    assert.match(html, /<title>Three &#60;figures&#62;<\/title>/);
  });
});

describe("ktu kernel install / uninstall", () => {
  test("the CLI writes a kernelspec that jupyter kernelspec list shows, and removes it", { timeout: 60_000 }, async () => {
    const { runKtu } = await import("./helpers/cli.ts");
    const { spawnSync } = await import("node:child_process");
    const prefix = mkdtempSync(join(tmpdir(), "ktu-cli-spec-"));
    const installed = runKtu(["kernel", "install", "--prefix", prefix, "--name", "ktu-cli"]);
    assert.equal(installed.status, 0, installed.stderr);
    const specDir = join(prefix, "share", "jupyter", "kernels", "ktu-cli");
    assert.ok(existsSync(join(specDir, "kernel.json")));
    const list = spawnSync("/usr/bin/python3", ["-m", "jupyter_client.kernelspecapp", "list", "--json"], {
      encoding: "utf8",
      env: { ...process.env, JUPYTER_PATH: join(prefix, "share", "jupyter") },
    });
    if (list.status === 0) {
      const specs = (JSON.parse(list.stdout) as { kernelspecs: Record<string, { resource_dir: string; spec: { display_name: string } }> }).kernelspecs;
      assert.equal(specs["ktu-cli"]?.spec.display_name, "TypeScript (know-the-unknown)");
      assert.equal(specs["ktu-cli"]?.resource_dir, specDir);
    }
    assert.equal(runKtu(["kernel", "install", "--prefix", prefix, "--name", "bad/name"]).status, 2);
    assert.equal(runKtu(["kernel", "uninstall", "--prefix", prefix, "--name", "ktu-cli"]).status, 0);
    assert.equal(existsSync(specDir), false);
    assert.equal(runKtu(["kernel", "uninstall", "--prefix", prefix, "--name", "ktu-cli"]).status, 2);
  });
});

/** The decompressed image data of a PNG: what a viewer draws. */
function inflateIdat(png: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 8; at + 12 <= png.length; at += 12 + png.readUInt32BE(at)) {
    if (png.toString("latin1", at + 4, at + 8) === "IDAT") parts.push(png.subarray(at + 8, at + 8 + png.readUInt32BE(at)));
  }
  return inflateSync(Buffer.concat(parts));
}
