// Colours and fonts from the host's CSS variables (JupyterLab --jp-*, VS Code --vscode-*), light or dark,
// plus the colour scales every view shares and the ranges they span.
export type RGB = [number, number, number];

export interface Theme {
  dark: boolean;
  background: string;
  surface: string;
  text: string;
  muted: string;
  border: string;
  accent: string;
  errorColor: string;
  font: string;
  mono: string;
  fontSize: number;
}

function cssVar(el: Element, names: string[], fallback: string): string {
  const style = getComputedStyle(el);
  for (const n of names) {
    const v = style.getPropertyValue(n).trim();
    if (v) return v;
  }
  return fallback;
}

const NAMED: Record<string, RGB> = { white: [255, 255, 255], black: [0, 0, 0], transparent: [255, 255, 255] };

/** Any CSS colour as RGB: hex, rgb()/rgba(), a few names; other syntaxes through a canvas when one exists. */
export function parseColor(css: string): RGB | null {
  const s = css.trim().toLowerCase();
  if (NAMED[s]) return NAMED[s];
  let m = /^#([0-9a-f]{3,8})$/.exec(s);
  if (m) {
    let hex = m[1];
    if (hex.length === 3 || hex.length === 4) hex = hex.split("").map((c) => c + c).join("");
    return [parseInt(hex.slice(0, 2), 16), parseInt(hex.slice(2, 4), 16), parseInt(hex.slice(4, 6), 16)];
  }
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(s);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  try {
    const ctx = document.createElement("canvas").getContext("2d");
    if (ctx) {
      ctx.fillStyle = "#010203";
      ctx.fillStyle = s;
      if (ctx.fillStyle !== "#010203") return parseColor(ctx.fillStyle);
    }
  } catch {
    /* no canvas (jsdom): fall through */
  }
  return null;
}

export function luminance([r, g, b]: RGB): number {
  const lin = (c: number) => {
    const x = c / 255;
    return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

export function readTheme(el: Element): Theme {
  const background = cssVar(el, ["--jp-layout-color0", "--vscode-editor-background"], "");
  const bodyLight = document.body?.getAttribute("data-jp-theme-light");
  let dark: boolean;
  if (bodyLight === "true" || bodyLight === "false") dark = bodyLight === "false";
  else if (background) dark = luminance(parseColor(background) ?? [255, 255, 255]) < 0.3;
  else dark = document.body?.classList.contains("vscode-dark") ?? false;
  const d = (light: string, darkValue: string) => (dark ? darkValue : light);
  return {
    dark,
    background: background || d("#ffffff", "#1e1e1e"),
    surface: cssVar(el, ["--jp-layout-color1", "--vscode-sideBar-background"], d("#f7f7f8", "#252526")),
    text: cssVar(el, ["--jp-ui-font-color0", "--jp-content-font-color0", "--vscode-foreground"], d("#1f2328", "#e6e6e6")),
    muted: cssVar(el, ["--jp-ui-font-color2", "--vscode-descriptionForeground"], d("#6a737d", "#9aa0a6")),
    border: cssVar(el, ["--jp-border-color1", "--vscode-panel-border"], d("#d0d7de", "#3c3c3c")),
    accent: cssVar(el, ["--jp-brand-color1", "--vscode-focusBorder"], d("#1976d2", "#4fa3ff")),
    errorColor: cssVar(el, ["--jp-error-color1", "--vscode-errorForeground"], d("#c62828", "#ff6b6b")),
    font: cssVar(el, ["--jp-ui-font-family", "--vscode-font-family"], "system-ui, -apple-system, 'Segoe UI', sans-serif"),
    mono: cssVar(el, ["--jp-code-font-family", "--vscode-editor-font-family"], "ui-monospace, Menlo, Consolas, monospace"),
    fontSize: parseFloat(cssVar(el, ["--jp-ui-font-size1"], "13px")) || 13,
  };
}

/** Call `cb` when the host switches theme (JupyterLab body attributes, VS Code body class, OS scheme). */
export function onThemeChange(cb: () => void): () => void {
  // The body attribute flips before the new theme's stylesheet has loaded: redraw again shortly after.
  const timers: ReturnType<typeof setTimeout>[] = [];
  const fire = () => {
    cb();
    for (const t of timers.splice(0)) clearTimeout(t);
    timers.push(setTimeout(cb, 200), setTimeout(cb, 1000));
  };
  const obs = new MutationObserver(fire);
  if (document.body) obs.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class"] });
  const mq = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  mq?.addEventListener?.("change", fire);
  return () => {
    obs.disconnect();
    for (const t of timers.splice(0)) clearTimeout(t);
    mq?.removeEventListener?.("change", fire);
  };
}

// ---- colour scales -------------------------------------------------------------------------
// Stops chosen so the low end sits near the page background (empty cells recede) and lightness changes
// monotonically (readable in grey scale); dark themes get their own stops rather than an inversion.
const SEQ_LIGHT = ["#f4f7fb", "#c9dcef", "#86b3dc", "#3f7fbf", "#1b4f8f", "#0b2a57"];
const SEQ_DARK = ["#1d222b", "#213a57", "#285f8f", "#3a8bc4", "#79bde6", "#d6f0ff"];
const DIV_LIGHT = ["#1c4f96", "#5b8fca", "#b7cfe8", "#f4f4f4", "#f1c0a3", "#d8734f", "#9c2a1c"];
const DIV_DARK = ["#7db6ff", "#3f78b8", "#27405e", "#24272d", "#6b3a2c", "#c0603e", "#ffb08a"];

const hexCache = new Map<string, RGB>();
function hex(s: string): RGB {
  let c = hexCache.get(s);
  if (!c) hexCache.set(s, (c = parseColor(s)!));
  return c;
}

function ramp(stops: string[], t: number): RGB {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = hex(stops[i]);
  const b = hex(stops[i + 1]);
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f].map(Math.round) as RGB;
}

export interface Scale {
  kind: "sequential" | "diverging";
  min: number;
  max: number;
  color(value: number): RGB;
  /** Position of a value on the scale, 0..1. */
  position(value: number): number;
}

/** Sequential for non-negative quantities (probabilities, activations); `log` for ranks and the like. */
export function sequential(theme: Theme, min: number, max: number): Scale {
  const stops = theme.dark ? SEQ_DARK : SEQ_LIGHT;
  const span = max - min || 1;
  const position = (v: number) => (v - min) / span;
  return { kind: "sequential", min, max, position, color: (v) => ramp(stops, position(v)) };
}

/** Diverging around zero for signed quantities (contributions): blue below, red above. */
export function diverging(theme: Theme, limit: number): Scale {
  const stops = theme.dark ? DIV_DARK : DIV_LIGHT;
  const m = Math.abs(limit) || 1;
  const position = (v: number) => 0.5 + v / (2 * m);
  return { kind: "diverging", min: -m, max: m, position, color: (v) => ramp(stops, position(v)) };
}

export function css([r, g, b]: RGB): string {
  return `rgb(${r},${g},${b})`;
}

/** Black or white text, whichever reads better on the given cell colour. */
export function textOn(bg: RGB): string {
  return luminance(bg) > 0.35 ? "#111" : "#fff";
}

/** The colour range: the 98th percentile of |values|, so a few huge outliers (the first token's
 * "attention sink" activations) do not wash out everything else. Hover shows the real values. */
export function robustMax(a: Float32Array): number {
  const finite = Array.from(a, Math.abs).filter(Number.isFinite).sort((x, y) => x - y);
  if (!finite.length) return 1;
  return finite[Math.min(finite.length - 1, Math.floor(0.98 * finite.length))] || maxAbs(a);
}

/** The largest finite |value| (1 when there is none). */
export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m || 1;
}
