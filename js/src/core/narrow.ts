// Narrow boxes: a view docked in the FFN side panel (350–450 px) or in a narrow notebook. The frame marks its
// root `fw-narrow` from the root's own width (a ResizeObserver, not the viewport, which says nothing about a side
// panel), and the stylesheets reflow under that class: rows wrap, two-column grids become one, charts shrink.
// Heatmaps read the same threshold to let their columns shrink below a view's usual minimum.

/** Below this width (CSS px) a view lays out for a narrow box. */
export const NARROW_WIDTH = 560;

/** Whether a box this wide is narrow; 0 is a box not laid out (hidden), not a narrow one. */
export function isNarrow(width: number): boolean {
  return width > 0 && width < NARROW_WIDTH;
}

/** Keep the class `fw-narrow` on `el` while it is narrow; returns the cleanup. */
export function watchNarrow(el: HTMLElement): () => void {
  const mark = () => el.classList.toggle("fw-narrow", isNarrow(el.clientWidth));
  if (typeof ResizeObserver !== "function") return () => undefined;
  const observer = new ResizeObserver(mark);
  observer.observe(el);
  return () => observer.disconnect();
}
