import { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
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
  /**
   * Inline plotly.js into this output's text/html. "auto" (default) inlines it into the first
   * bundle of the process only, as plotly.py's notebook renderer does; later outputs wait for it.
   */
  includePlotlyJs?: boolean | "auto";
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
let plotlyJsInlined = false;

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

/** A one-line text/plain description for surfaces that render nothing else. */
function plotlyText(fig: PlotlyFigure): string {
  const title = (fig.layout as { title?: string | { text?: string } } | undefined)?.title;
  const name = typeof title === "string" ? title : title?.text;
  return `<Plotly figure${name ? ` "${name}"` : ""}: ${fig.data.length} trace${fig.data.length === 1 ? "" : "s"}>`;
}

/**
 * One MIME bundle for a figure: the plotly JSON for JupyterLab/VS Code, HTML for classic Notebook and
 * nbconvert, a PNG for GitHub and PDF (when Chromium is available), and text.
 */
export async function plotlyMimeBundle(fig: PlotlyFigure, opts: PlotlyBundleOptions = {}): Promise<PlotlyMimeBundle> {
  const png = opts.image === false ? null : await renderPlotlyImage(fig, { format: "png", width: opts.width, height: opts.height });
  const include = opts.includePlotlyJs ?? "auto";
  const inline = include === "auto" ? !plotlyJsInlined : include;
  if (inline) plotlyJsInlined = true;
  const bundle: PlotlyMimeBundle = {
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} },
    "text/html": plotlyHtml(fig, { includePlotlyJs: inline, png, height: opts.height }),
    "text/plain": plotlyText(fig),
  };
  if (png) bundle["image/png"] = Buffer.from(png).toString("base64");
  return bundle;
}

/** Forgets that plotly.js was sent, so the next bundle carries it again (a new kernel session). */
export function resetPlotlySession(): void {
  plotlyJsInlined = false;
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
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
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
  return new Uint8Array(Buffer.from(url.slice(comma + 1), "base64"));
}

/** Closes the warm browser; the next render starts a new one. */
export async function closePlotlyRenderer(): Promise<void> {
  const current = renderer;
  renderer = undefined;
  exitHookInstalled = false;
  const active = await current;
  await active?.close();
}
