/**
 * A plotly figure object that the kernel can display: plain `data`/`layout`/`config` (what
 * plotly.js takes), plus `[Symbol.for("Jupyter.display")]()` giving the MIME bundle of the
 * generic renderer: plotly JSON and text at once (plotly.ts). A frontend that does not render the JSON
 * shows the PNG that a kernel adds when Chromium is available (plotlyMimeBundle gives the whole bundle).
 */
import { plotlyFigureBundle, type PlotlyFigure, type PlotlyMimeBundle } from "./plotly.ts";

export function titleOf(fig: PlotlyFigure): string {
  const title = (fig.layout as { title?: { text?: string } | string } | undefined)?.title;
  return (typeof title === "string" ? title : title?.text) ?? "untitled";
}

export class Figure implements PlotlyFigure {
  constructor(
    public data: object[],
    public layout: object = {},
    public config: object = { responsive: true },
  ) {}

  [Symbol.for("Jupyter.display")](): PlotlyMimeBundle {
    return plotlyFigureBundle(this.toJSON());
  }

  toJSON(): PlotlyFigure {
    return { data: this.data, layout: this.layout, config: this.config };
  }
}

export const figure = (data: object[], layout: object = {}, config?: object): Figure => new Figure(data, layout, config);

/**
 * A layout that keeps its parts apart whatever the label lengths: every axis grows its margin to fit
 * its tick labels and title (automargin), and a horizontal legend sits at the bottom of the figure
 * (below the axis labels, never over the title). Returns the same figure.
 */
export function readable(fig: Figure): Figure {
  const layout = fig.layout as Record<string, unknown>;
  for (const key of ["xaxis", "yaxis", ...Object.keys(layout).filter((k) => /^[xy]axis\d+$/.test(k))]) {
    layout[key] = { automargin: true, ...((layout[key] as object | undefined) ?? {}) };
  }
  const legend = layout.legend as { orientation?: string } | undefined;
  if (legend?.orientation === "h") layout.legend = { ...legend, x: 0, xanchor: "left", y: 0, yanchor: "bottom", yref: "container" };
  return fig;
}
