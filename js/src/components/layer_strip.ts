// A strip of one bar per layer under a layer chooser: a per-layer hint (a causal trace's MLP indirect
// effect, an edit sweep's success) with its peak marked and the chosen layer outlined; a click picks a layer.
import { formatNumber, h, setText } from "../core";

/** Bar heights in 0..1: each value over the largest finite one (negatives and NaN give 0). */
export function barHeights(values: ArrayLike<number>): number[] {
  let max = 0;
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]) && values[i] > max) max = values[i];
  return Array.from(values, (v) => (Number.isFinite(v) && v > 0 && max > 0 ? v / max : 0));
}

export function layerStrip(onPick: (layer: number) => void) {
  const title = h("span", { class: "fw-muted fw-strip-title" });
  const bars = h("div", { class: "fw-strip-bars", attrs: { role: "group" } });
  const el = h("div", { class: "fw-strip" }, [title, bars]);
  let cells: HTMLElement[] = [];

  return {
    el,
    update(values: ArrayLike<number>, selected: number, peak: number, label: string,
           fallback?: { layer: number; reason: string }) {
      // the hint's peak and the default edit layer can differ (a prompt's trace vs the measured sweep): say both
      const why = fallback && fallback.layer !== peak ? ` · default layer ${fallback.layer}: ${fallback.reason}` : "";
      setText(title, `${label} · ▲ peak at layer ${peak}${why} · click a bar to edit there`);
      bars.setAttribute("aria-label", label);
      if (cells.length !== values.length) {
        cells = Array.from(values, (_, layer) => {
          const fill = h("div", { class: "fw-strip-fill" });
          const tick = h("span", { class: "fw-strip-tick" });
          return h("button", { class: "fw-strip-bar", attrs: { type: "button", "data-layer": String(layer) },
            on: { click: () => onPick(layer) } }, [h("div", { class: "fw-strip-track" }, [fill]), tick]);
        });
        bars.replaceChildren(...cells);
      }
      const heights = barHeights(values);
      cells.forEach((cell, layer) => {
        const v = values[layer];
        const fill = cell.firstChild!.firstChild as HTMLElement;
        fill.style.height = `${(100 * heights[layer]).toFixed(1)}%`;
        cell.classList.toggle("fw-on", layer === selected);
        cell.classList.toggle("fw-peak", layer === peak);
        cell.classList.toggle("fw-unknown", !Number.isFinite(v));
        cell.title = `layer ${layer}: ${Number.isFinite(v) ? formatNumber(v) : "not computed"}${layer === peak ? " (peak)" : ""}`;
        cell.setAttribute("aria-label", cell.title);
        cell.setAttribute("aria-pressed", String(layer === selected));
        setText(cell.lastChild as HTMLElement, layer === peak ? "▲" : layer % 5 === 0 ? String(layer) : "");
      });
    },
  };
}
