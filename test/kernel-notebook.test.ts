import assert from "node:assert/strict";
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import { missingPython, runUnittest, testKernelEnv } from "./kernel/helpers.ts";

// nbclient runs the every-output fixture, nbconvert makes HTML, and Chromium shows the plotly figure's PNG.
const missing = missingPython(["nbclient", "nbconvert", "nbformat"]);
const CHROMIUM = "/usr/bin/chromium";

test("a notebook with every output kind round-trips through nbclient, nbconvert and Chromium", { skip: missing, timeout: 240_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), "ktu-notebook-"));
  const run = await runUnittest("notebook_tests", { ...(await testKernelEnv()), KTU_NOTEBOOK_OUT: out });
  assert.ok(run.ok, run.output);
  assert.equal(run.failures + run.errors + run.skipped, 0, run.output);
  assert.equal(run.ran, 9, run.output);
  const html = join(out, "executed.html");
  // No plotly.js in the notebook: the HTML is nbconvert's page, its CSS and the outputs.
  assert.ok(statSync(html).size < 1_000_000, `${html} is ${statSync(html).size} bytes`);

  if (!existsSync(CHROMIUM)) {
    t.skip(`no ${CHROMIUM}: the screenshot check needs Debian's chromium`);
    return;
  }
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(pathToFileURL(html).href);
    // The figure's PNG, as nbconvert (and GitHub) show it.
    const plot = page.locator('img[src^="data:image/png"]').first();
    await plot.waitFor({ state: "visible", timeout: 60_000 });
    const shot = await plot.screenshot();
    // Decode the screenshot in the page and count what was drawn: a blank or one-colour area fails.
    // (A string, so this DOM code is not type-checked against Node's library.)
    const stats = (await page.evaluate(`(async () => {
      const image = new Image();
      image.src = "data:image/png;base64,${shot.toString("base64")}";
      await image.decode();
      const canvas = document.createElement("canvas");
      canvas.width = image.width;
      canvas.height = image.height;
      const context = canvas.getContext("2d");
      context.drawImage(image, 0, 0);
      const { data } = context.getImageData(0, 0, image.width, image.height);
      const colours = new Set();
      let inked = 0;
      for (let i = 0; i < data.length; i += 4) {
        colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
        if (data[i] < 200 || data[i + 1] < 200 || data[i + 2] < 200) inked++;
      }
      return { width: image.width, height: image.height, colours: colours.size, inked, pixels: data.length / 4 };
    })()`)) as { width: number; height: number; colours: number; inked: number; pixels: number };
    assert.ok(stats.width >= 400 && stats.height >= 250, JSON.stringify(stats));
    assert.ok(stats.colours >= 20, `the plot area has only ${stats.colours} colours: ${JSON.stringify(stats)}`);
    assert.ok(stats.inked > 500 && stats.inked < stats.pixels * 0.9, `inked pixels: ${JSON.stringify(stats)}`);
  } finally {
    await browser.close();
  }
});
