/**
 * Opens an HTML file in headless Chromium (playwright-core, Debian's /usr/bin/chromium) and measures
 * every rendered plotly figure (or figure PNG): a screenshot of each, decoded back in the page, counting the pixels
 * that are not white and those that carry colour (so an empty frame with axes only scores low).
 */
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.KTU_CHROMIUM ?? "/usr/bin/chromium";
export const haveChromium = (): boolean => existsSync(CHROMIUM);

export interface PlotPixels {
  width: number;
  height: number;
  /** Share of pixels that are not (near) white. */
  inked: number;
  /** Share of pixels with clear colour (max - min channel > 40): bars, lines, markers. */
  coloured: number;
}

// Runs in the page (kept as text: the project's types have no DOM): decodes the PNG on a canvas and counts pixels.
const MEASURE = `async (b64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, img.width, img.height).data;
  let inked = 0, coloured = 0;
  for (let i = 0; i < d.length; i += 4) {
    const r = d[i], g = d[i + 1], b = d[i + 2];
    if (r < 235 || g < 235 || b < 235) inked++;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
  }
  const n = img.width * img.height;
  return { width: img.width, height: img.height, inked: inked / n, coloured: coloured / n };
}`;

export async function plotPixels(file: string, options: { minPlots?: number; timeoutMs?: number; pagePng?: string } = {}): Promise<PlotPixels[]> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
    await page.goto(`file://${file}`);
    // Interactive figures (a page with plotly.js) or their PNGs (nbconvert's HTML of a saved notebook).
    const FIGURES = '.js-plotly-plot, img[src^="data:image/png"]';
    await page.waitForFunction(`document.querySelectorAll(${JSON.stringify(FIGURES)}).length >= ${options.minPlots ?? 1}`, undefined, { timeout: options.timeoutMs ?? 60_000 });
    await page.waitForTimeout(300);
    if (options.pagePng) await page.screenshot({ path: options.pagePng, fullPage: true });
    const plots = await page.$$(FIGURES);
    const out: PlotPixels[] = [];
    for (const plot of plots) {
      await plot.scrollIntoViewIfNeeded();
      const png = (await plot.screenshot()).toString("base64");
      out.push((await page.evaluate(`(${MEASURE})(${JSON.stringify(png)})`)) as PlotPixels);
    }
    return out;
  } finally {
    await browser.close();
  }
}
