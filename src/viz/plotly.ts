import { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { deflateSync, inflateSync } from "node:zlib";
import { writeFileAtomic } from "../util/fs.ts";

/** A plotly.js figure as plotly.js takes it: traces, layout and config. */
export interface PlotlyFigure {
  data: object[];
  layout?: object;
  config?: object;
}

/** A Jupyter MIME bundle: MIME type to data (strings, or JSON for `application/*+json`). */
export type PlotlyMimeBundle = Record<string, unknown>;

export interface PlotlyBundleOptions {
  /** Render a static PNG through headless Chromium (default true; skipped when no browser). */
  image?: boolean;
  width?: number;
  height?: number;
}

export interface PlotlyImageOptions {
  format: "png" | "svg";
  width?: number;
  height?: number;
}

const DEFAULT_WIDTH = 700;
const DEFAULT_HEIGHT = 450;
const CHROMIUM = process.env.KTU_CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

let plotlyJsCache: string | undefined;
/** The minified plotly.js bundle (4.9 MB), read once. */
export function plotlyJsSource(): string {
  plotlyJsCache ??= readFileSync(createRequire(import.meta.url).resolve("plotly.js-dist-min"), "utf8");
  return plotlyJsCache;
}

// Escapes what would end a <script> element or break a JS string inside HTML.
const scriptSafeJson = (value: unknown): string =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");

let divCounter = 0;

/**
 * The div + script for one figure. It plots with window.Plotly when present; otherwise it queues
 * itself until an output that carries plotly.js (the first one of the session) has loaded it.
 * A static PNG, when given, sits in the div so the figure still shows when scripts do not run.
 */
export function plotlyHtml(fig: PlotlyFigure, opts: { includePlotlyJs?: boolean; png?: Uint8Array | null; width?: number; height?: number } = {}): string {
  const id = `ktu-plotly-${process.pid.toString(36)}-${Date.now().toString(36)}-${(divCounter++).toString(36)}`;
  const height = opts.height ?? (fig.layout as { height?: number } | undefined)?.height ?? DEFAULT_HEIGHT;
  const fallback = opts.png ? `<img alt="plotly figure" src="data:image/png;base64,${Buffer.from(opts.png).toString("base64")}" style="max-width:100%">` : "";
  const library = opts.includePlotlyJs ? `<script type="text/javascript">${plotlyJsSource()}</script>\n` : "";
  const figure = scriptSafeJson({ data: fig.data, layout: fig.layout ?? {}, config: { responsive: true, ...(fig.config ?? {}) } });
  // The queue lets outputs that come before the library (in document order) wait for it.
  const script = `(function(){var f=${figure};function draw(){var el=document.getElementById(${JSON.stringify(id)});if(!el)return;el.innerHTML="";window.Plotly.newPlot(el,f.data,f.layout,f.config);}
if(window.Plotly){draw();}else{(window.__ktuPlotlyQueue=window.__ktuPlotlyQueue||[]).push(draw);}})();`;
  const flush = opts.includePlotlyJs ? `<script type="text/javascript">(window.__ktuPlotlyQueue||[]).splice(0).forEach(function(d){d();});</script>` : "";
  return `${library}<div id="${id}" class="ktu-plotly" style="min-height:${height}px">${fallback}</div>\n<script type="text/javascript">${script}</script>${flush}`;
}

/**
 * The figure as the JSON a frontend receives: typed arrays as arrays, and fractions to 6 significant
 * digits (a millionth of an axis, below what a plot can show; hover texts keep their own formatting),
 * which keeps notebooks that save many points small.
 */
export function plainFigure(fig: PlotlyFigure): { data: object[]; layout: object; config: object } {
  const plain = JSON.stringify({ data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} }, (_key, value: unknown) => {
    if (typeof value === "number") return Number.isInteger(value) || !Number.isFinite(value) ? value : Number(value.toPrecision(6));
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number>);
    return value;
  });
  return JSON.parse(plain) as { data: object[]; layout: object; config: object };
}

/** A one-line text/plain description for surfaces that render nothing else. */
function plotlyText(fig: PlotlyFigure): string {
  const title = (fig.layout as { title?: string | { text?: string } } | undefined)?.title;
  const name = typeof title === "string" ? title : title?.text;
  return `<Plotly figure${name ? ` "${name}"` : ""}: ${fig.data.length} trace${fig.data.length === 1 ? "" : "s"}>`;
}

/**
 * The interactive part of a figure's MIME bundle, at once: the plotly JSON (rendered by JupyterLab with
 * jupyterlab-plotly, VS Code, nteract) and a text line. No plotly.js and no HTML travel in outputs, so
 * saved notebooks stay small; where the JSON is not rendered, the PNG is.
 */
export function plotlyFigureBundle(fig: PlotlyFigure): PlotlyMimeBundle {
  return {
    "application/vnd.plotly.v1+json": plainFigure(fig),
    "text/plain": plotlyText(fig),
  };
}

/**
 * One complete MIME bundle for a figure: the plotly JSON, a PNG for classic Notebook, nbconvert and
 * GitHub (when Chromium is available), and text.
 */
export async function plotlyMimeBundle(fig: PlotlyFigure, opts: PlotlyBundleOptions = {}): Promise<PlotlyMimeBundle> {
  const bundle = plotlyFigureBundle(fig);
  const png = opts.image === false ? null : await renderPlotlyImage(fig, { format: "png", width: opts.width, height: opts.height });
  if (png) bundle["image/png"] = Buffer.from(png).toString("base64");
  return bundle;
}

/** A standalone HTML page with plotly.js inlined once and one div per figure, written atomically. */
export async function writePlotlyHtml(path: string, figs: PlotlyFigure | PlotlyFigure[], title = "Figures"): Promise<void> {
  const list = Array.isArray(figs) ? figs : [figs];
  const escapedTitle = title.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const body = list.map((fig) => plotlyHtml(fig, { includePlotlyJs: false })).join("\n");
  const page = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapedTitle}</title>
<script type="text/javascript">${plotlyJsSource()}</script></head>
<body>
<h1 style="font-family:sans-serif">${escapedTitle}</h1>
${body}
</body></html>
`;
  await writeFileAtomic(path, page);
}

// --- static rendering through headless Chromium -------------------------------------------------

interface Renderer {
  close(): Promise<void>;
  render(fig: PlotlyFigure, opts: PlotlyImageOptions): Promise<string>;
}

let renderer: Promise<Renderer | null> | undefined;
let warned = false;

function warnOnce(message: string): void {
  if (warned) return;
  warned = true;
  process.emitWarning(message, { code: "KTU_NO_CHROMIUM" });
}

async function startRenderer(): Promise<Renderer | null> {
  if (!existsSync(CHROMIUM)) {
    warnOnce(`plotly: no Chromium at ${CHROMIUM}; static PNG/SVG export is skipped (install Debian's chromium)`);
    return null;
  }
  let chromium: typeof import("playwright-core").chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (error) {
    warnOnce(`plotly: playwright-core is not installed (${(error as Error).message}); static export is skipped`);
    return null;
  }
  try {
    // Playwright gives every launch a fresh temporary user-data-dir and removes it on close.
    // Playwright's own signal handlers close every browser and then exit the process on SIGINT: in a
    // Jupyter kernel, whose interrupt is a SIGINT, that killed the kernel. The browser runs detached
    // (its own process group), so a frontend's interrupt does not reach it either.
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true, handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false });
    unrefBrowserProcess();
    const page = await browser.newPage();
    await page.setContent('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><div id="g"></div></body></html>');
    await page.addScriptTag({ content: plotlyJsSource() });
    return {
      async close() {
        await browser.close().catch(() => undefined);
      },
      render: (fig, opts) =>
        page.evaluate(
          async ({ fig, opts }) => {
            const Plotly = (globalThis as unknown as { Plotly: { toImage(f: unknown, o: unknown): Promise<string> } }).Plotly;
            return Plotly.toImage({ data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} }, opts);
          },
          { fig, opts: { format: opts.format, width: opts.width ?? DEFAULT_WIDTH, height: opts.height ?? DEFAULT_HEIGHT } },
        ),
    };
  } catch (error) {
    warnOnce(`plotly: Chromium at ${CHROMIUM} did not start (${(error as Error).message.split("\n")[0]}); static export is skipped`);
    return null;
  }
}

/**
 * Playwright keeps the browser's process and pipes referenced, so a script that rendered a figure
 * would never exit. Unreferencing them lets beforeExit fire, where the browser is closed; should the
 * process exit anyway, Playwright's exit handler kills the browser.
 */
function unrefBrowserProcess(): void {
  const handles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? [];
  for (const handle of handles) {
    if (!(handle instanceof ChildProcess) || !handle.spawnargs.some((arg) => arg.includes("chromium"))) continue;
    handle.unref();
    for (const stream of handle.stdio) (stream as { unref?: () => void } | null)?.unref?.();
  }
}

// While a render is in flight nothing else may hold the event loop (the browser's handles are
// unreferenced), so a referenced timer keeps the process alive until the render settles.
let inFlight = 0;
let keepAlive: NodeJS.Timeout | undefined;
function holdEventLoop(): () => void {
  if (inFlight++ === 0) keepAlive = setInterval(() => undefined, 1 << 30);
  return () => {
    if (--inFlight === 0) clearInterval(keepAlive);
  };
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Playwright's handles do not keep the event loop alive, so beforeExit fires while the browser is
  // still up: close it then (once), so no Chromium outlives the process.
  process.once("beforeExit", () => void closePlotlyRenderer());
}

/**
 * A PNG or SVG of the figure as plotly.js draws it, from a warm headless Chromium; null (with one
 * warning per process) when no browser is available.
 */
export async function renderPlotlyImage(fig: PlotlyFigure, opts: PlotlyImageOptions): Promise<Uint8Array | null> {
  installExitHook();
  const release = holdEventLoop();
  let url: string;
  try {
    renderer ??= startRenderer();
    const active = await renderer;
    if (!active) return null;
    url = await active.render(fig, opts);
  } finally {
    release();
  }
  const comma = url.indexOf(",");
  if (opts.format === "svg") {
    const payload = url.slice(comma + 1);
    const text = url.slice(0, comma).endsWith(";base64") ? Buffer.from(payload, "base64").toString("utf8") : decodeURIComponent(payload);
    return new TextEncoder().encode(text);
  }
  return recompressPng(new Uint8Array(Buffer.from(url.slice(comma + 1), "base64")));
}

/**
 * The same image as a smaller PNG: Chromium's encoder favours speed and always writes RGBA. An opaque
 * 8-bit RGBA image (every plot) is rewritten as RGB, each row with the PNG filter that suits it best
 * (none, "up" for every row, or the minimum-sum-of-absolute-differences heuristic, whichever deflates
 * smaller), deflated at zlib's highest level: a quarter to a third smaller, which matters for
 * notebooks saved with their figures. Anything else is only re-deflated.
 */
export function recompressPng(png: Uint8Array): Uint8Array {
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (bytes.length < 8 || bytes.readUInt32BE(0) !== 0x89504e47) return png;
  const chunks: { type: string; data: Buffer }[] = [];
  for (let at = 8; at + 12 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    chunks.push({ type: bytes.toString("latin1", at + 4, at + 8), data: bytes.subarray(at + 8, at + 8 + length) });
    at += 12 + length;
  }
  const ihdr = chunks.find((c) => c.type === "IHDR")?.data;
  const idat = chunks.filter((c) => c.type === "IDAT");
  if (!ihdr || ihdr.length < 13 || idat.length === 0) return png;
  let header = Buffer.from(ihdr);
  let data: Buffer;
  try {
    let raw = inflateSync(Buffer.concat(idat.map((c) => c.data)));
    const [width, height, depth, colorType, interlace] = [ihdr.readUInt32BE(0), ihdr.readUInt32BE(4), ihdr[8], ihdr[9], ihdr[12]];
    if (depth === 8 && colorType === 6 && interlace === 0 && raw.length === height * (1 + 4 * width)) {
      const pixels = unfilter(raw, width * 4, height, 4);
      let opaque = true;
      for (let i = 3; i < pixels.length && opaque; i += 4) opaque = pixels[i] === 255;
      if (opaque) {
        const rgb = Buffer.alloc(width * height * 3);
        for (let i = 0, j = 0; i < pixels.length; i += 4, j += 3) {
          rgb[j] = pixels[i]!;
          rgb[j + 1] = pixels[i + 1]!;
          rgb[j + 2] = pixels[i + 2]!;
        }
        raw = smallest([0, 2, undefined].map((only) => filterRows(rgb, width * 3, height, 3, only)));
        header[9] = 2;
      }
    }
    data = deflateSync(raw, { level: 9, memLevel: 9 });
  } catch {
    return png;
  }
  const out: Buffer[] = [bytes.subarray(0, 8)];
  const chunk = (type: string, body: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, "latin1");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, crc]);
  };
  let wrote = false;
  for (const c of chunks) {
    if (c.type === "IHDR") out.push(chunk("IHDR", header));
    else if (c.type !== "IDAT") out.push(chunk(c.type, c.data));
    else if (!wrote) {
      out.push(chunk("IDAT", data));
      wrote = true;
    }
  }
  header = Buffer.alloc(0);
  const result = Buffer.concat(out);
  return result.length < bytes.length ? new Uint8Array(result) : png;
}

const paeth = (a: number, b: number, c: number): number => {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
};

/** PNG scanlines (a filter byte, then `stride` bytes) to plain pixel rows. */
function unfilter(raw: Buffer, stride: number, height: number, bpp: number): Buffer {
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[row + x - bpp]! : 0;
      const b = y > 0 ? out[prev + x]! : 0;
      const c = x >= bpp && y > 0 ? out[prev + x - bpp]! : 0;
      const v = raw[src + x]!;
      out[row + x] = (type === 0 ? v : type === 1 ? v + a : type === 2 ? v + b : type === 3 ? v + ((a + b) >> 1) : v + paeth(a, b, c)) & 255;
    }
  }
  return out;
}

/** Of several filterings of the same image, the one that deflates smallest. */
function smallest(candidates: Buffer[]): Buffer {
  let best = candidates[0]!;
  let bestSize = Infinity;
  for (const candidate of candidates) {
    const size = deflateSync(candidate, { level: 6 }).length;
    if (size < bestSize) [best, bestSize] = [candidate, size];
  }
  return best;
}

/**
 * Plain pixel rows to PNG scanlines: every row with filter `only` when given, else each with the
 * filter whose output has the smallest absolute sum.
 */
function filterRows(pixels: Buffer, stride: number, height: number, bpp: number, only?: number): Buffer {
  const out = Buffer.alloc((stride + 1) * height);
  const candidate = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    const prev = row - stride;
    let best = -1;
    let bestSum = Infinity;
    for (let type = only ?? 0; type < (only === undefined ? 5 : only + 1); type++) {
      let sum = 0;
      for (let x = 0; x < stride; x++) {
        const a = x >= bpp ? pixels[row + x - bpp]! : 0;
        const b = y > 0 ? pixels[prev + x]! : 0;
        const c = x >= bpp && y > 0 ? pixels[prev + x - bpp]! : 0;
        const v = pixels[row + x]!;
        const f = (type === 0 ? v : type === 1 ? v - a : type === 2 ? v - b : type === 3 ? v - ((a + b) >> 1) : v - paeth(a, b, c)) & 255;
        candidate[x] = f;
        sum += f < 128 ? f : 256 - f;
        if (sum >= bestSum) break;
      }
      if (sum < bestSum) {
        bestSum = sum;
        best = type;
        out[y * (stride + 1)] = type;
        candidate.copy(out, y * (stride + 1) + 1);
      }
    }
    if (best < 0) out[y * (stride + 1)] = 0;
  }
  return out;
}

let crcTable: Uint32Array | undefined;
function crc32(bytes: Buffer): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Closes the warm browser; the next render starts a new one. */
export async function closePlotlyRenderer(): Promise<void> {
  const current = renderer;
  renderer = undefined;
  exitHookInstalled = false;
  const active = await current;
  await active?.close();
}
