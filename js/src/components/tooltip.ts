// Tooltip placement: next to the pointer and inside the visible box, whichever side has room.

/** Where a w × h tooltip goes for a pointer at (x, y): 14 px right of and below it, flipped to the left /
 * above when that would leave `view`, and clamped into `view` when neither side has room. */
export function placeTooltip(x: number, y: number, w: number, h: number,
  view: { left: number; top: number; width: number; height: number }): [number, number] {
  const gap = 14;
  const side = (p: number, size: number, lo: number, extent: number) => {
    const hi = lo + extent;
    if (p + gap + size <= hi) return p + gap;
    if (p - gap - size >= lo) return p - gap - size;
    return Math.max(lo, Math.min(hi - size, p + gap)); // clamped: taller/wider than both sides
  };
  return [side(x, w, view.left, view.width), side(y, h, view.top, view.height)];
}
