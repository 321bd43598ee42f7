// A host without a kernel, for views saved as a self-contained HTML page (ffn_widgets/export.py): it plays the
// anywidget model (get/set/on/off/save_changes/send) over the saved widget state, and the widget manager
// (get_model/create_view) over the other saved models, so views that embed widgets (the explorer's slot, the
// dock) still find them. Everything the browser already has keeps working; a message meant for the kernel
// shows a small "needs a running kernel" notice in the view instead.
//
// The page holds (all JSON, so `</script>` never appears raw):
//   <script type="application/x-ffn-widgets-module" data-ffn-module="main">"…bundle text…"</script>
//   <script type="application/x-ffn-widgets-state+json">{version_major, state: {id: {model_name, model_module,
//       state, buffers: [{path, data (base64), encoding}]}}, modules: {id: key}}</script>
//   <div data-ffn-view><script type="application/x-ffn-widgets-view+json">{"model_id": …}</script></div>
import { h } from "./core/dom";
import { ensureStyle, injectStyle } from "./core/style";
import type { Handler, Model } from "./core/types";

export const STATE_TYPE = "application/x-ffn-widgets-state+json";
export const VIEW_TYPE = "application/x-ffn-widgets-view+json";
export const MODULE_TYPE = "application/x-ffn-widgets-module";
export const KERNEL_NOTICE = "needs a running kernel";
const NOTICE_MS = 6000;
const CSS = `
.fw-standalone { position: relative; }
.fw-kernel-notice { position: absolute; z-index: 30; max-width: min(440px, 100%); padding: 5px 10px; border-radius: 4px;
  font: 12px var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color0, #1f2328);
  background: var(--jp-warn-color3, #fff4d6); border: 1px solid var(--jp-warn-color2, #e0b252);
  box-shadow: 0 2px 6px rgba(0, 0, 0, 0.15); }
.fw-kernel-notice[hidden] { display: none; }
`;

/** What an anywidget ESM module gives: `initialize` once per model, `render` once per view. */
export interface WidgetModule {
  initialize?: (props: { model: any }) => unknown;
  render: (props: { model: any; el: HTMLElement }) => unknown;
}

export interface SavedModel {
  model_name: string;
  model_module: string;
  model_module_version?: string;
  state: Record<string, any>;
  buffers?: { path: (string | number)[]; data: string; encoding?: string }[];
}

export interface SavedState {
  version_major?: number;
  version_minor?: number;
  state: Record<string, SavedModel>;
  modules?: Record<string, string>; // model id -> module key; anywidget models without one use "main"
}

/** Base64 (or hex) text as a DataView, the type ipywidgets hands binary buffers to views as. */
export function decodeBuffer(data: string, encoding = "base64"): DataView {
  let bytes: Uint8Array;
  if (encoding === "hex") {
    bytes = new Uint8Array(data.length / 2);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(data.slice(2 * i, 2 * i + 2), 16);
  } else {
    const bin = atob(data);
    bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  }
  return new DataView(bytes.buffer);
}

/** The saved state with each buffer put back at its path (a deep copy of the containers on the way). */
export function withBuffers(saved: SavedModel): Record<string, any> {
  const state: Record<string, any> = { ...saved.state };
  for (const b of saved.buffers ?? []) {
    let node: any = state;
    b.path.forEach((key, i) => {
      if (i === b.path.length - 1) {
        node[key] = decodeBuffer(b.data, b.encoding);
        return;
      }
      node[key] = Array.isArray(node[key]) ? [...node[key]] : { ...(node[key] ?? {}) };
      node = node[key];
    });
  }
  return state;
}

interface MountedView {
  el: HTMLElement;
  notice: HTMLElement;
  anchor: Element | null; // what the user last pressed in the view: the notice goes under it
  remove(): void;
  trigger(event: string): void;
}

/** The anywidget model over saved state: changes stay in the page, messages to the kernel show a notice. */
export class StandaloneModel implements Model {
  readonly sent: unknown[] = [];
  private handlers = new Map<string, Set<Handler>>();
  readonly views = new Set<MountedView>();

  constructor(readonly model_id: string, private state: Record<string, any>, readonly widget_manager: StandaloneManager) {}

  get(name: string): any {
    return this.state[name];
  }

  set(name: string, value: unknown): void {
    const old = this.state[name];
    this.state[name] = value;
    if (old !== value) {
      this.emit(`change:${name}`, this, value);
      this.emit("change", this);
    }
  }

  on(event: string, callback: Handler): void {
    for (const name of event.split(/\s+/).filter(Boolean)) {
      if (!this.handlers.has(name)) this.handlers.set(name, new Set());
      this.handlers.get(name)!.add(callback);
    }
  }

  off(event?: string | null, callback?: Handler | null): void {
    if (!event) {
      if (!callback) this.handlers.clear();
      else for (const set of this.handlers.values()) set.delete(callback);
      return;
    }
    for (const name of event.split(/\s+/).filter(Boolean)) {
      if (!callback) this.handlers.delete(name);
      else this.handlers.get(name)?.delete(callback);
    }
  }

  save_changes(): void {
    // nothing to sync: the page is the only copy of the state
  }

  send(content: unknown): void {
    this.sent.push(content);
    const msg = (content ?? {}) as Record<string, unknown>;
    // answer the coalescer's acknowledgement request at once, so later gestures are not held back
    if (msg._ack !== undefined) setTimeout(() => this.emit("msg:custom", { type: "_ack", id: msg._ack, ok: false }, []), 0);
    const what = typeof msg.type === "string" ? `“${msg.type.replace(/_/g, " ")}”` : "This";
    for (const view of this.views) showNotice(view, `${what} ${KERNEL_NOTICE}: this page is a saved export. Hover, clicks on cells and the switches work without one.`);
  }

  emit(event: string, ...args: unknown[]): void {
    for (const cb of [...(this.handlers.get(event) ?? [])]) cb(...args);
  }
}

/** Show the notice under what the user pressed (else at the top of the view), for a few seconds. */
function showNotice(view: MountedView, text: string): void {
  const { notice, el } = view;
  notice.textContent = text;
  notice.hidden = false;
  const box = el.getBoundingClientRect();
  const at = view.anchor && el.contains(view.anchor) ? view.anchor.getBoundingClientRect() : null;
  notice.style.top = `${at ? at.bottom - box.top + 6 : 4}px`;
  notice.style.left = `${Math.max(0, Math.min(at ? at.left - box.left : 0, box.width - notice.offsetWidth))}px`;
  const timer = Number(notice.dataset.timer ?? 0);
  if (timer) clearTimeout(timer);
  notice.dataset.timer = String(setTimeout(() => {
    notice.hidden = true;
  }, NOTICE_MS));
}

/** The widget manager of a saved page: models by id, views created from the module each model names. */
export class StandaloneManager {
  /** No kernel behind this page: a view may check `model.widget_manager.kernel === false` to say so. */
  readonly kernel = false;
  private saved = new Map<string, SavedModel>();
  private models = new Map<string, StandaloneModel>();
  private moduleOf = new Map<string, string>();
  private loaded = new Map<string, Promise<WidgetModule>>();
  private initialized = new Set<string>();

  /** `modules`: key -> module text (the key "main" is the bundle of this host); `load` imports a text. */
  constructor(private modules: Record<string, WidgetModule | string>, private load: (text: string) => Promise<any> = importText) {}

  /** Add the models of a saved state (several parts of one page share models by id). */
  add(saved: SavedState): void {
    for (const [id, m] of Object.entries(saved.state ?? {})) {
      if (!this.saved.has(id)) this.saved.set(id, m);
      const key = saved.modules?.[id];
      if (key && !this.moduleOf.has(id)) this.moduleOf.set(id, key);
    }
  }

  has(id: string): boolean {
    return this.saved.has(id);
  }

  async get_model(id: string): Promise<StandaloneModel> {
    id = id.replace(/^IPY_MODEL_/, "");
    let model = this.models.get(id);
    if (model) return model;
    const saved = this.saved.get(id);
    if (!saved) throw new Error(`widget ${id} is not part of this export`);
    model = new StandaloneModel(id, withBuffers(saved), this);
    this.models.set(id, model);
    return model;
  }

  async create_view(model: StandaloneModel): Promise<MountedView> {
    const widget = await this.widgetFor(model.model_id);
    if (!this.initialized.has(model.model_id)) {
      this.initialized.add(model.model_id);
      await widget.initialize?.({ model });
    }
    const notice = h("div", { class: "fw-kernel-notice", attrs: { role: "status" } });
    notice.hidden = true;
    const content = h("div", { class: "fw-standalone-content" });
    const el = h("div", { class: "fw-standalone" }, [content, notice]);
    const cleanup = await widget.render({ model, el: content });
    const view: MountedView = {
      el,
      notice,
      anchor: null,
      remove() {
        model.views.delete(view);
        if (typeof cleanup === "function") cleanup();
        el.remove();
      },
      trigger() {},
    };
    const press = (e: Event) => {
      view.anchor = e.target as Element;
    };
    el.addEventListener("pointerdown", press, true);
    el.addEventListener("keydown", press, true);
    model.views.add(view);
    return view;
  }

  /** Draw model `id` into `target` (its saved state, no kernel). */
  async mount(id: string, target: HTMLElement): Promise<MountedView> {
    const view = await this.create_view(await this.get_model(id));
    target.append(view.el);
    return view;
  }

  private widgetFor(id: string): Promise<WidgetModule> {
    const saved = this.saved.get(id)!;
    const key = this.moduleOf.get(id) ?? (saved.model_module === "anywidget" ? "main" : "");
    const source = this.modules[key];
    if (!key || source === undefined) {
      const what = `${saved.model_module}.${saved.model_name}`;
      return Promise.reject(new Error(`${what} cannot be drawn in this saved page (it ${KERNEL_NOTICE})`));
    }
    let p = this.loaded.get(key);
    if (!p) {
      p = typeof source === "string" ? this.load(source).then(widgetOf) : Promise.resolve(source);
      this.loaded.set(key, p);
    }
    return p;
  }
}

/** anywidget's module shapes: `export default {render}`, `export default () => ({render})`, or a named `render`. */
async function widgetOf(mod: any): Promise<WidgetModule> {
  const def = mod?.default ?? mod;
  return typeof def === "function" ? await def() : def;
}

export function importText(text: string): Promise<any> {
  const url = URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
  return import(/* @vite-ignore */ url);
}

function readJson(el: Element): any {
  return JSON.parse(el.textContent ?? "null");
}

/** Draw every saved view of `root` (a page, or a part of one): called by the page's bootstrap with this
 * bundle's own views as module "main" and the text of any other module the page carries. */
export async function mountExports(root: ParentNode, main: WidgetModule, texts: Record<string, string> = {},
  load: (text: string) => Promise<any> = importText): Promise<StandaloneManager> {
  ensureStyle();
  injectStyle("ffn-widgets-standalone-style", CSS);
  const manager = new StandaloneManager({ ...texts, main }, load);
  for (const el of root.querySelectorAll(`script[type="${STATE_TYPE}"]`)) manager.add(readJson(el));
  const jobs = [...root.querySelectorAll<HTMLElement>("[data-ffn-view]")].map(async (target) => {
    if (target.dataset.ffnMounted) return;
    target.dataset.ffnMounted = "true";
    // nbconvert puts text/html outputs in .jp-RenderedHTMLCommon, whose markdown styles (striped tables,
    // right-aligned headers) are not the views' own
    target.closest(".jp-RenderedHTMLCommon")?.classList.remove("jp-RenderedHTMLCommon");
    const spec = target.querySelector(`script[type="${VIEW_TYPE}"]`);
    try {
      if (!spec) throw new Error("no view named");
      await manager.mount(String(readJson(spec).model_id), target);
    } catch (err) {
      target.append(h("div", { class: "fw-error", text: `This saved view cannot be drawn: ${String((err as Error)?.message ?? err)}` }));
    }
  });
  await Promise.all(jobs);
  return manager;
}
