/**
 * The saved notebooks stay small and render without plotly.js: every notebook under 500 KB, no output
 * carries plotly.js or a script, and every plotly figure has a PNG for the surfaces that do not render
 * the plotly JSON (classic Notebook, nbconvert, GitHub, JupyterLab without jupyterlab-plotly).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../src/util/paths.ts";

const dir = join(repoRoot, "notebooks");
const notebooks = readdirSync(dir).filter((name) => name.endsWith(".ipynb")).sort();
const LIMIT = 500_000;

interface Output {
  data?: Record<string, unknown>;
}

test("every saved notebook is under 500 KB, without plotly.js, each figure with its PNG", () => {
  assert.ok(notebooks.length >= 6, notebooks.join(", "));
  for (const name of notebooks) {
    const path = join(dir, name);
    const size = statSync(path).size;
    process.stdout.write(`${name}: ${Math.round(size / 1000)} KB\n`);
    assert.ok(size < LIMIT, `${name} is ${size} bytes (limit ${LIMIT})`);
    const nb = JSON.parse(readFileSync(path, "utf8")) as { cells: { outputs?: Output[] }[] };
    for (const output of nb.cells.flatMap((cell) => cell.outputs ?? [])) {
      const data = output.data ?? {};
      const html = data["text/html"];
      const text = Array.isArray(html) ? html.join("") : String(html ?? "");
      assert.ok(!/<script/i.test(text), `${name}: an output's HTML has a script`);
      if (data["application/vnd.plotly.v1+json"] !== undefined) {
        assert.equal(data["text/html"], undefined, `${name}: a figure carries HTML`);
        assert.ok(typeof data["image/png"] === "string" && (data["image/png"] as string).length > 1000, `${name}: a figure has no PNG`);
      }
    }
  }
});
