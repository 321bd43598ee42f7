// Small pieces of the prompt views (prompt.ts): a segmented button group, colour ranges, layer labels.
import { h, setText } from "../dom";

/** A row of toggle buttons, one of them on; `set` also disables the named ones. */
export function segmented(options: [string, string][], onPick: (v: string) => void) {
  const buttons = options.map(([value, label]) =>
    h("button", { text: label, attrs: { "data-value": value, type: "button" }, on: { click: () => onPick(value) } }),
  );
  return {
    el: h("span", { class: "fw-seg" }, buttons),
    set(value: string, disabled: string[] = []) {
      for (const b of buttons) {
        b.classList.toggle("fw-on", b.dataset.value === value);
        b.disabled = disabled.includes(b.dataset.value!);
      }
    },
    label(value: string, text: string) {
      const b = buttons.find((x) => x.dataset.value === value);
      if (b) setText(b, text);
    },
  };
}

/** The colour range: the 98th percentile of |values|, so a few huge outliers (the first token's
 * "attention sink" activations) do not wash out everything else. Hover shows the real values. */
export function robustMax(a: Float32Array): number {
  const finite = Array.from(a, Math.abs).filter(Number.isFinite).sort((x, y) => x - y);
  if (!finite.length) return 1;
  return finite[Math.min(finite.length - 1, Math.floor(0.98 * finite.length))] || maxAbs(a);
}

export function sameTokens(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m || 1;
}

const labelCache = new Map<number, string[]>();
export function layerLabels(n: number): string[] {
  let l = labelCache.get(n);
  if (!l) labelCache.set(n, (l = Array.from({ length: n }, (_, i) => String(i))));
  return l;
}
