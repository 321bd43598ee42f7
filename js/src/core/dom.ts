// Building DOM safely (text always goes in through textContent, never innerHTML), and per-frame throttling.
type Attrs = {
  class?: string;
  style?: Partial<CSSStyleDeclaration> | string;
  text?: string;
  title?: string;
  attrs?: Record<string, string>;
  on?: Record<string, EventListener>;
};

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Attrs = {},
  children: (Node | string | null | undefined)[] = [],
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (typeof props.style === "string") el.style.cssText = props.style;
  else if (props.style) Object.assign(el.style, props.style);
  if (props.text !== undefined) el.textContent = props.text;
  if (props.title !== undefined) el.title = props.title;
  for (const [k, v] of Object.entries(props.attrs ?? {})) el.setAttribute(k, v);
  for (const [k, fn] of Object.entries(props.on ?? {})) el.addEventListener(k, fn);
  for (const c of children) {
    if (c === null || c === undefined) continue;
    el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

export function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function clear(el: HTMLElement): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** Run `fn` at most once per animation frame with the newest arguments (hover throttling). */
export function perFrame<A extends unknown[]>(fn: (...args: A) => void): ((...args: A) => void) & { cancel(): void } {
  let pending: A | null = null;
  let handle = 0;
  const raf = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (cb: FrameRequestCallback) => setTimeout(() => cb(0), 16) as unknown as number;
  const caf = typeof cancelAnimationFrame === "function" ? cancelAnimationFrame : (h: number) => clearTimeout(h);
  const wrapped = (...args: A) => {
    pending = args;
    if (!handle) {
      handle = raf(() => {
        handle = 0;
        const a = pending;
        pending = null;
        if (a) fn(...a);
      });
    }
  };
  wrapped.cancel = () => {
    if (handle) caf(handle);
    handle = 0;
    pending = null;
  };
  return wrapped;
}
