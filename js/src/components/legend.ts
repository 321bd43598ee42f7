// The colour bar beside a heatmap: its title, the scale's two ends and the colours between them.
import { css, formatNumber, Scale } from "../core";

/** A horizontal colour bar with its title and end labels; call `update` when the scale changes. */
export function legend(): { el: HTMLElement; update(scale: Scale, title: string, fmt?: (v: number) => string): void } {
  const el = document.createElement("div");
  el.className = "fw-legend";
  const title = document.createElement("span");
  title.className = "fw-legend-title";
  const lo = document.createElement("span");
  const bar = document.createElement("canvas");
  bar.className = "fw-legend-bar";
  bar.width = 160;
  bar.height = 10;
  const hi = document.createElement("span");
  el.append(title, lo, bar, hi);
  return {
    el,
    update(scale, text, fmt = formatNumber) {
      title.textContent = text;
      lo.textContent = fmt(scale.min);
      hi.textContent = fmt(scale.max);
      const ctx = bar.getContext?.("2d");
      if (!ctx) return;
      for (let x = 0; x < bar.width; x++) {
        const v = scale.min + ((scale.max - scale.min) * (x + 0.5)) / bar.width;
        ctx.fillStyle = css(scale.color(v));
        ctx.fillRect(x, 0, 1, bar.height);
      }
    },
  };
}
