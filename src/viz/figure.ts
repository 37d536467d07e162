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
