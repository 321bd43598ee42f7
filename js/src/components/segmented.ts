// A segmented button group: a row of toggle buttons, one of them on (the stat shown, the ranking used).
import { h, setText } from "../core";

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
