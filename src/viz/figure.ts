/**
 * A plotly figure object that the kernel can display: plain `data`/`layout`/`config` (what
 * plotly.js takes), plus `[Symbol.for("Jupyter.display")]()` returning the MIME bundle.
 */

export interface FigureSpec {
  data: object[];
  layout?: object;
  config?: object;
}

/** Turns a figure into its display bundle; the generic renderer (plotly.ts) replaces the fallback. */
type BundleFn = (fig: FigureSpec) => Record<string, unknown>;

let bundleFn: BundleFn = (fig) => ({
  "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} },
  "text/plain": `<plotly figure: ${titleOf(fig)}>`,
});

export const setFigureBundle = (fn: BundleFn): void => {
  bundleFn = fn;
};

export function titleOf(fig: FigureSpec): string {
  const title = (fig.layout as { title?: { text?: string } | string } | undefined)?.title;
  return (typeof title === "string" ? title : title?.text) ?? "untitled";
}

export class Figure implements FigureSpec {
  constructor(
    public data: object[],
    public layout: object = {},
    public config: object = { responsive: true },
  ) {}

  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return bundleFn(this);
  }

  toJSON(): FigureSpec {
    return { data: this.data, layout: this.layout, config: this.config };
  }
}

export const figure = (data: object[], layout: object = {}, config?: object): Figure => new Figure(data, layout, config);
