import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { plotlyFigureBundle, renderPlotlyImage, type PlotlyBundleOptions, type PlotlyFigure } from "../src/viz/plotly.ts";
import { kernelIo, trackPending, type MimeBundle } from "./io.ts";

/** The plotly figure MIME type: a bundle with it and no PNG gets its PNG from the kernel, later. */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** Deno's convention: an object with this method renders as the MIME bundle it returns. */
export const JUPYTER_DISPLAY = Symbol.for("Jupyter.display");

export interface Displayable {
  [JUPYTER_DISPLAY](): MimeBundle | Promise<MimeBundle>;
}

const isDisplayable = (value: unknown): value is Displayable =>
  (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as Partial<Displayable>)[JUPYTER_DISPLAY] === "function";

const toBase64 = (bytes: Uint8Array | string): string => (typeof bytes === "string" ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"));

/** An arquero table, or anything else with toHTML(). */
export interface HtmlTable {
  toHTML(options?: { limit?: number }): string;
  toMarkdown?(options?: { limit?: number }): string;
  numRows?(): number;
  numCols?(): number;
}

/** The bundle for any value: its own Jupyter.display bundle, else a text/plain inspection. */
export function mimeBundleOf(value: unknown): MimeBundle | Promise<MimeBundle> {
  if (isDisplayable(value)) return value[JUPYTER_DISPLAY]();
  return { "text/plain": inspect(value, { depth: 4, colors: false, maxArrayLength: 100 }) };
}

interface PngWork {
  figure: PlotlyFigure;
  bundle: MimeBundle;
  metadata: Record<string, unknown>;
  options: PlotlyBundleOptions;
}

/** How long a figure's display stays an image after its last update before the JSON comes back. */
const QUIET_MS = 1000;

/**
 * Where one display lives: the first send shows it, later sends update it in place.
 *
 * A plotly figure is sent at once: its JSON (drawn interactively by JupyterLab with jupyterlab-plotly,
 * VS Code) and text. Its PNG (for classic Notebook, nbconvert, GitHub, JupyterLab without the
 * extension) follows from a headless browser, off the critical path: one render at a time per
 * display, always of the newest figure, so a plot updated every step never queues renders.
 *
 * Updates of a shown figure travel as PNGs: jupyterlab-plotly ignores an update whose preferred MIME
 * type is unchanged (its renderModel keeps the graph it drew), so a live plot is sent as an image
 * while it changes (`image/png` + text, which every frontend redraws), and QUIET_MS after its last
 * update as the whole bundle again (JSON + PNG + text: what a saved notebook keeps). The cell's reply
 * waits for that, so nbclient saves it too.
 */
class Target {
  shown = false;
  private chain: Promise<void> = Promise.resolve();
  private png: string | undefined;
  private first: PngWork | undefined;
  private wanted: PngWork | undefined;
  private rendering: Promise<void> | undefined;
  constructor(readonly id: string) {}

  send(bundle: MimeBundle | Promise<MimeBundle>, metadata: Record<string, unknown> = {}, options: PlotlyBundleOptions = {}): void {
    if (!(bundle instanceof Promise)) {
      this.show(bundle, metadata, options);
      return;
    }
    // A slow bundle gets a placeholder now, so outputs keep the order the cell made them in; the real
    // bundle then replaces it in place. The reply waits for it.
    if (!this.shown) this.publish({ "text/plain": "[rendering...]" }, {});
    this.chain = this.chain.then(() => bundle.then((ready) => this.show(ready, metadata, options)));
    void trackPending(this.chain);
  }

  private show(bundle: MimeBundle, metadata: Record<string, unknown>, options: PlotlyBundleOptions): void {
    const figure = bundle[PLOTLY_MIME] as PlotlyFigure | undefined;
    if (!figure || bundle["image/png"] !== undefined || options.image === false) {
      this.publish(bundle, metadata);
      return;
    }
    const work: PngWork = { figure, bundle, metadata, options };
    if (!this.shown) {
      this.publish(bundle, metadata);
      this.first = work;
    }
    this.wanted = work;
    this.rendering ??= this.renderPngs().finally(() => (this.rendering = undefined));
    void trackPending(this.rendering);
  }

  private async renderPngs(): Promise<void> {
    let last: PngWork | undefined;
    for (;;) {
      for (let work = this.wanted; work; work = this.wanted) {
        this.wanted = undefined;
        last = work;
        const layout = (work.figure.layout ?? {}) as { width?: number; height?: number };
        let png: Uint8Array | null;
        try {
          png = await renderPlotlyImage(work.figure, { format: "png", width: work.options.width ?? layout.width, height: work.options.height ?? layout.height });
        } catch (error) {
          process.stderr.write(`plotly: PNG render failed (${(error as Error).message.split("\n")[0]}); the figure is shown without one\n`);
          png = null;
        }
        if (!png) {
          // No browser: the JSON alone, which frontends with a plotly renderer draw.
          if (work !== this.first) this.publish((this.wanted as PngWork | undefined)?.bundle ?? work.bundle, work.metadata);
          return;
        }
        this.png = toBase64(png);
        if (work === this.first && !this.wanted) {
          // The first figure, not updated since: the whole bundle (the interactive plot stays as drawn).
          this.publish({ ...work.bundle, "image/png": this.png }, work.metadata);
          return;
        }
        this.publish({ "image/png": this.png, "text/plain": work.bundle["text/plain"] }, work.metadata);
      }
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
      if (this.wanted) continue;
      if (last && this.png) this.publish({ ...last.bundle, "image/png": this.png }, last.metadata);
      return;
    }
  }

  private publish(bundle: MimeBundle, metadata: Record<string, unknown>): void {
    const msgType = this.shown ? "update_display_data" : "display_data";
    this.shown = true;
    kernelIo().publish(msgType, { data: bundle, metadata, transient: { display_id: this.id } });
  }
}

const newId = (): string => randomBytes(8).toString("hex");

/**
 * The display functions. On `display` each call makes a new output and returns a handle to it; on a
 * handle (or on `newDisplay()`, as in tslab) each call replaces that one output.
 */
export class Display {
  constructor(private readonly target?: Target) {}

  private emit(bundle: MimeBundle | Promise<MimeBundle>, update: (display: Display) => (value: never) => void, metadata?: Record<string, unknown>, options?: PlotlyBundleOptions): DisplayHandle {
    const target = this.target ?? new Target(newId());
    target.send(bundle, metadata, options);
    const handle = new DisplayHandle(target);
    handle.update = update(handle) as (value: unknown) => void;
    return handle;
  }

  /** Any value: a Jupyter.display bundle, else its inspection as text. */
  value(value: unknown): DisplayHandle {
    return this.emit(mimeBundleOf(value), (d) => (v: unknown) => d.value(v));
  }
  html(html: string): DisplayHandle {
    return this.emit({ "text/html": html, "text/plain": "[HTML]" }, (d) => (v: string) => d.html(v));
  }
  markdown(markdown: string): DisplayHandle {
    return this.emit({ "text/markdown": markdown, "text/plain": markdown }, (d) => (v: string) => d.markdown(v));
  }
  latex(latex: string): DisplayHandle {
    return this.emit({ "text/latex": latex, "text/plain": latex }, (d) => (v: string) => d.latex(v));
  }
  javascript(code: string): DisplayHandle {
    return this.emit({ "application/javascript": code }, (d) => (v: string) => d.javascript(v));
  }
  text(text: string): DisplayHandle {
    return this.emit({ "text/plain": text }, (d) => (v: string) => d.text(v));
  }
  json(value: unknown): DisplayHandle {
    const plain = JSON.parse(JSON.stringify(value ?? null)) as unknown;
    return this.emit({ "application/json": plain, "text/plain": JSON.stringify(plain, null, 2) }, (d) => (v: unknown) => d.json(v));
  }
  svg(svg: string): DisplayHandle {
    return this.emit({ "image/svg+xml": svg, "text/plain": "[SVG image]" }, (d) => (v: string) => d.svg(v));
  }
  /** PNG bytes (or base64 text). */
  png(png: Uint8Array | string): DisplayHandle {
    return this.emit({ "image/png": toBase64(png), "text/plain": "[PNG image]" }, (d) => (v: Uint8Array) => d.png(v));
  }
  jpeg(jpeg: Uint8Array | string): DisplayHandle {
    return this.emit({ "image/jpeg": toBase64(jpeg), "text/plain": "[JPEG image]" }, (d) => (v: Uint8Array) => d.jpeg(v));
  }
  gif(gif: Uint8Array | string): DisplayHandle {
    return this.emit({ "image/gif": toBase64(gif), "text/plain": "[GIF image]" }, (d) => (v: Uint8Array) => d.gif(v));
  }
  pdf(pdf: Uint8Array | string): DisplayHandle {
    return this.emit({ "application/pdf": toBase64(pdf), "text/plain": "[PDF document]" }, (d) => (v: Uint8Array) => d.pdf(v));
  }
  /**
   * A plotly figure: its plotly JSON and text at once, then a PNG (when Chromium is present) added in
   * place. `options.image: false` skips the PNG; width/height size it.
   */
  plotly(figure: PlotlyFigure, options?: PlotlyBundleOptions): DisplayHandle {
    const plain = typeof (figure as { toJSON?: unknown }).toJSON === "function" ? (figure as unknown as { toJSON(): PlotlyFigure }).toJSON() : figure;
    return this.emit(plotlyFigureBundle(plain), (d) => (v: PlotlyFigure) => d.plotly(v, options), undefined, options);
  }
  /** An arquero table (anything with toHTML()), as HTML and a Markdown/text fallback. */
  table(table: HtmlTable, options: { limit?: number } = {}): DisplayHandle {
    const limit = options.limit ?? 20;
    const bundle: MimeBundle = { "text/html": table.toHTML({ limit }) };
    if (table.toMarkdown) bundle["text/markdown"] = table.toMarkdown({ limit });
    const shape = table.numRows && table.numCols ? `${table.numRows()} rows x ${table.numCols()} columns` : "table";
    bundle["text/plain"] = bundle["text/markdown"] ?? `[${shape}]`;
    return this.emit(bundle, (d) => (v: HtmlTable) => d.table(v, options));
  }
  /**
   * A whole MIME bundle (`raw({"text/html": ..., "text/plain": ...})`), or tslab's form
   * `raw(contentType, data)` with bytes sent as base64.
   */
  raw(bundle: MimeBundle | string, data?: string | Uint8Array, metadata?: Record<string, unknown>): DisplayHandle {
    const full: MimeBundle = typeof bundle === "string" ? { [bundle]: data instanceof Uint8Array ? toBase64(data) : data } : bundle;
    return this.emit(full, (d) => (v: MimeBundle) => d.raw(v, undefined, metadata), metadata);
  }
}

/** One output on the page; `update` re-renders it with the same kind of content. */
export class DisplayHandle extends Display {
  readonly id: string;
  update: (value: unknown) => void = () => undefined;
  constructor(target: Target) {
    super(target);
    this.id = target.id;
  }
}

export type DisplayFunction = Display & ((value: unknown) => DisplayHandle);

function makeDisplay(): DisplayFunction {
  const base = new Display();
  const fn = ((value: unknown) => base.value(value)) as DisplayFunction;
  for (const key of Object.getOwnPropertyNames(Display.prototype)) {
    if (key === "constructor") continue;
    const method = (Display.prototype as unknown as Record<string, (...args: unknown[]) => unknown>)[key]!;
    Object.defineProperty(fn, key, { value: method.bind(base), enumerable: true });
  }
  return fn;
}

/** `display(x)`, `display.html(...)`, `display.plotly(fig)`, ... */
export const display: DisplayFunction = makeDisplay();

/** A display that is shown by its first call and replaced by every later one (tslab's newDisplay). */
export function newDisplay(): Display {
  return new Display(new Target(newId()));
}

/** Clears the cell's output; with `wait`, only once the next output arrives (no flicker). */
export function clearOutput(wait = false): void {
  kernelIo().publish("clear_output", { wait });
}

/** Reads a line from the user (an input_request on the stdin channel). */
export const input = (prompt = ""): Promise<string> => kernelIo().input(prompt, false);
/** Reads a line without echoing it. */
export const password = (prompt = ""): Promise<string> => kernelIo().input(prompt, true);

const escapeHtml = (text: string): string => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** A progress bar that updates in place. */
export class Progress {
  private readonly handle: DisplayHandle;
  private current = 0;
  private lastSent = 0;
  constructor(
    readonly total: number,
    readonly label = "",
  ) {
    this.handle = display.raw(this.bundle(""));
  }

  private bundle(text: string): MimeBundle {
    const fraction = this.total > 0 ? Math.min(1, Math.max(0, this.current / this.total)) : 0;
    const percent = Math.round(fraction * 100);
    const cells = Math.round(fraction * 30);
    const caption = `${this.label ? this.label + ": " : ""}${this.current}/${this.total} (${percent}%)${text ? " " + text : ""}`;
    return {
      "text/html": `<div style="font-family:monospace"><progress value="${this.current}" max="${this.total}" style="width:30em"></progress> ${escapeHtml(caption)}</div>`,
      "text/plain": `[${"#".repeat(cells)}${" ".repeat(30 - cells)}] ${caption}`,
    };
  }

  /** Sets the count (and an optional status text); updates at most every 50 ms except at the end. */
  update(n: number, text = ""): void {
    this.current = n;
    const now = Date.now();
    if (n < this.total && now - this.lastSent < 50) return;
    this.lastSent = now;
    this.handle.raw(this.bundle(text));
  }

  done(text = ""): void {
    this.lastSent = 0;
    this.update(this.total, text);
  }
}

export const progress = (total: number, label?: string): Progress => new Progress(total, label);
