/**
 * Rewrites the plotly outputs of saved notebooks in the form the kernel sends them now (kernel/display.ts,
 * src/viz/plotly.ts): the figure JSON (fractions to 6 significant digits), the PNG recompressed as RGB,
 * and text; no text/html, which used to carry plotly.js (4.9 MB in each notebook). Other outputs are
 * left as they are. For notebooks saved before that change, without re-running them.
 *
 * Run: node --import tsx scripts/slim-notebooks.ts [notebooks/NAME.ipynb ...]   (default: all)
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { plainFigure, recompressPng, type PlotlyFigure } from "../src/viz/plotly.ts";
import { repoRoot } from "../src/util/paths.ts";

const PLOTLY = "application/vnd.plotly.v1+json";
interface Notebook {
  cells: { outputs?: { data?: Record<string, unknown> }[] }[];
}

const joined = (value: unknown): string => (Array.isArray(value) ? value.join("") : String(value));

const paths = process.argv.slice(2);
if (paths.length === 0) {
  const dir = join(repoRoot, "notebooks");
  for (const name of readdirSync(dir).sort()) if (name.endsWith(".ipynb")) paths.push(join(dir, name));
}
for (const path of paths) {
  const before = statSync(path).size;
  const nb = JSON.parse(readFileSync(path, "utf8")) as Notebook;
  for (const cell of nb.cells) {
    for (const output of cell.outputs ?? []) {
      const data = output.data;
      if (!data?.[PLOTLY]) continue;
      delete data["text/html"];
      data[PLOTLY] = plainFigure(data[PLOTLY] as PlotlyFigure);
      if (data["image/png"] !== undefined) data["image/png"] = Buffer.from(recompressPng(Buffer.from(joined(data["image/png"]), "base64"))).toString("base64");
    }
  }
  // nbformat's layout (one-space indent, sorted keys do not matter to readers), ending in a newline.
  writeFileSync(path, JSON.stringify(nb, null, 1) + "\n");
  process.stdout.write(`${path}: ${Math.round(before / 1000)} KB -> ${Math.round(statSync(path).size / 1000)} KB\n`);
}
