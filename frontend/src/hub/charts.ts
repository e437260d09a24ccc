// uPlot charts on the hub's pages: colours read from the page's CSS variables (canvas
// cannot read them itself), a sparkline, a time chart with several scales, and resizing.

import uPlot from "uplot";

import { withAlpha } from "../colour.ts";

/** A CSS variable's value on the page, or `fallback`. */
export function cssColour(name: string, fallback = "#888888"): string {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

export function fillOf(colour: string, alpha: number): string {
  return withAlpha(colour, alpha) ?? colour;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short" });

export function timeAxis(): uPlot.Axis {
  const text = cssColour("--secondary-text-color");
  const grid = cssColour("--divider-color");
  return {
    stroke: text,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    values: (_u, ticks) =>
      ticks.map((tick) => {
        const date = new Date(tick * 1000);
        const shown = timeFormat.format(date);
        return /^0?0[:.]00/.test(shown) ? dayFormat.format(date) : shown;
      }),
  };
}

export function valueAxis(
  scale: string,
  format: (value: number) => string,
  side: 1 | 3 = 3,
): uPlot.Axis {
  const text = cssColour("--secondary-text-color");
  const grid = cssColour("--divider-color");
  return {
    scale,
    side,
    size: 64,
    stroke: text,
    grid: { show: side === 3, stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    values: (_u, ticks) => ticks.map(format),
  };
}

/** A small line chart without axes: a series' last hour. */
export function sparkline(
  box: HTMLElement,
  colour: string,
  data: uPlot.AlignedData,
  range?: [number, number],
): uPlot {
  return new uPlot(
    {
      width: Math.max(box.clientWidth, 120),
      height: 60,
      legend: { show: false },
      cursor: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true }, y: range ? { range } : { auto: true } },
      series: [{}, { stroke: colour, width: 1.5, fill: fillOf(colour, 0.15), spanGaps: false }],
      padding: [4, 2, 4, 2],
    },
    data,
    box,
  );
}

/** Charts keep their width with their box. */
export class ChartSizer {
  private readonly observer: ResizeObserver;
  private readonly charts = new Map<Element, uPlot>();

  constructor() {
    this.observer = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const chart = this.charts.get(entry.target);
        const width = Math.max(Math.floor(entry.contentRect.width), 120);
        if (chart && chart.width !== width) chart.setSize({ width, height: chart.height });
      }
    });
  }

  watch(box: Element, chart: uPlot): void {
    this.charts.set(box, chart);
    this.observer.observe(box);
  }

  forget(box: Element): void {
    this.charts.get(box)?.destroy();
    this.charts.delete(box);
    this.observer.unobserve(box);
  }

  clear(): void {
    for (const chart of this.charts.values()) chart.destroy();
    this.charts.clear();
    this.observer.disconnect();
  }
}

export { uPlot };
