// The FFN side panel's view (views/dock.ts) with a fake model and widget manager: docked views kept across
// redraws (a slider mid-drag must not be rebuilt), undock/undo/reset messages, edit rows as text; and the
// frame's dock button (shown in a JupyterLab shell, hidden for the dock itself and inside it).
import { beforeEach, describe, expect, it } from "vitest";
import { DOCK_TITLE } from "../src/core";
import { render } from "../src/host";
import { FakeModel } from "./fakes";

/** A widget manager whose views count how often they were created and removed. */
function fakeManager() {
  const created: string[] = [];
  const removed: string[] = [];
  const models = new Map<string, FakeModel>();
  const manager = {
    created, removed, models,
    async get_model(id: string) {
      if (!models.has(id)) models.set(id, new FakeModel({ view: "sliders", title: id === "c" ? "" : `view ${id}` }));
      return models.get(id);
    },
    async create_view(child: FakeModel) {
      const id = [...models].find(([, m]) => m === child)![0];
      created.push(id);
      const el = document.createElement("div");
      el.className = "fake-view";
      el.dataset.id = id;
      return { el, remove: () => removed.push(id), trigger: () => undefined };
    },
  };
  return manager;
}

const edit = (index: number, method: string, facts: string[], layers: number[]) => ({ index, method, facts, layers, time: "12:00:00" });

function mount(state: Record<string, unknown> = {}) {
  const manager = fakeManager();
  const model = new FakeModel({ view: "dock", title: "FFN", docked: [], models: [], ...state }) as FakeModel & { widget_manager: unknown };
  model.widget_manager = manager;
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = render({ model: model as any, el });
  return { model, el, manager, cleanup };
}

const settle = () => new Promise((r) => setTimeout(r, 0));
const items = (el: HTMLElement) => [...el.querySelectorAll<HTMLElement>(".fw-dock-item")];

describe("dock view", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
  });

  it("keeps the views of refs still docked across redraws and drops the others", async () => {
    const { model, el, manager } = mount({ docked: ["IPY_MODEL_a", "IPY_MODEL_b"] });
    await settle();
    expect(manager.created).toEqual(["a", "b"]);
    const viewA = el.querySelector('.fake-view[data-id="a"]');
    expect(items(el).map((i) => i.querySelector(".fw-dock-title")!.textContent)).toEqual(["view a", "view b"]);

    model.set("docked", ["IPY_MODEL_b", "IPY_MODEL_a", "IPY_MODEL_c"]); // reordered, one added
    await settle();
    expect(manager.created).toEqual(["a", "b", "c"]); // a and b were not rebuilt
    expect(el.querySelector('.fake-view[data-id="a"]')).toBe(viewA);
    expect(items(el).map((i) => i.getAttribute("data-index"))).toEqual(["0", "1", "2"]);
    expect(items(el).map((i) => i.querySelector<HTMLElement>(".fake-view")!.dataset.id)).toEqual(["b", "a", "c"]);
    expect(items(el)[2].querySelector(".fw-dock-title")!.textContent).toBe("Neuron sliders"); // no title: the view's name

    model.set("docked", ["IPY_MODEL_a"]);
    await settle();
    expect(manager.removed.sort()).toEqual(["b", "c"]);
    expect(items(el)).toHaveLength(1);
    expect(el.querySelector(".fw-dock-empty")).toBeNull();

    model.set("docked", []);
    expect(el.querySelector(".fw-dock-empty")!.textContent).toContain("view.dock()");
  });

  it("sends undock with the view's current index, after a reorder too", async () => {
    const { model, el } = mount({ docked: ["IPY_MODEL_a", "IPY_MODEL_b"] });
    await settle();
    model.set("docked", ["IPY_MODEL_b", "IPY_MODEL_a"]);
    await settle();
    const itemA = items(el).find((i) => i.querySelector<HTMLElement>(".fake-view")!.dataset.id === "a")!;
    itemA.querySelector<HTMLButtonElement>(".fw-panel-head button")!.click();
    expect(model.sent).toEqual([{ type: "undock", index: 1 }]);
  });

  it("lists each model's edits as text, with undo per entry and reset", () => {
    const evil = "<img src=x onerror=alert(1)> → Rome";
    const { model, el } = mount({
      models: [
        { serial: 3, name: "SmolLM2", summary: "30 layers", edits: [edit(0, "rome", [evil], [4]), edit(1, "memit", ["a → b", "c → d"], [3, 4, 5])] },
        { serial: 7, name: "tiny", summary: "2 layers", edits: [] },
      ],
    });
    const [first, second] = [...el.querySelectorAll<HTMLElement>(".fw-dock-model")];
    expect(first.dataset.serial).toBe("3");
    const rows = [...first.querySelectorAll(".fw-dock-edit")];
    expect(rows).toHaveLength(2);
    expect(rows[0].querySelector(".fw-dock-edit-text")!.textContent).toContain(evil); // shown as text
    expect(el.querySelector("img")).toBeNull();
    expect(rows[1].textContent).toContain("a → b; c → d · layers 3, 4, 5");
    rows[1].querySelector("button")!.click();
    first.querySelector<HTMLButtonElement>(".fw-panel-head button")!.click(); // Reset all
    expect(model.sent).toEqual([{ type: "undo", model: 3, entry: 1 }, { type: "reset", model: 3 }]);
    expect(second.textContent).toContain("No edits");
    expect(second.querySelector("button")).toBeNull();

    // an edit undone in the kernel: the row goes, the other model stays
    model.set("models", [{ serial: 3, name: "SmolLM2", summary: "30 layers", edits: [edit(0, "rome", ["x → y"], [4])] }]);
    expect(el.querySelectorAll(".fw-dock-edit")).toHaveLength(1);
    expect(el.querySelectorAll(".fw-dock-model")).toHaveLength(1);
    model.set("models", []);
    expect(el.querySelector(".fw-dock-models")!.textContent).toContain("No model loaded");
  });

  it("stops listening and removes its views when it goes", async () => {
    const { model, manager, cleanup } = mount({ docked: ["IPY_MODEL_a"] });
    await settle();
    cleanup();
    expect(manager.removed).toEqual(["a"]);
    expect(model.listenerCount("change:docked")).toBe(0);
    expect(model.listenerCount("change:models")).toBe(0);
  });
});

describe("dock button", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
  });

  const view = (name: string) => {
    const model = new FakeModel({ view: name, docked: [], models: [] });
    const el = document.createElement("div");
    document.body.querySelector(".host")!.appendChild(el);
    render({ model: model as any, el });
    return { model, el };
  };

  it("is on every view in a JupyterLab shell and sends dock; not on the dock view itself", () => {
    document.body.innerHTML = '<div class="jp-LabShell"><div class="host"></div></div>';
    const { model, el } = view("sliders");
    const button = el.querySelector<HTMLButtonElement>(".fw-dock-button")!;
    expect(button.title).toBe(DOCK_TITLE);
    button.click();
    expect(model.sent).toEqual([{ type: "dock" }]);
    expect(view("dock").el.querySelector(".fw-dock-button")).toBeNull();
  });

  it("is absent outside JupyterLab and Notebook 7 (no side panel there)", () => {
    document.body.innerHTML = '<div class="host"></div>';
    expect(view("sliders").el.querySelector(".fw-dock-button")).toBeNull();
    document.body.innerHTML = '<div id="main" class="lm-Widget"><div class="host"></div></div>'; // Notebook 7
    expect(view("sliders").el.querySelector(".fw-dock-button")).not.toBeNull();
  });

  it("is hidden by CSS inside the dock", () => {
    document.body.innerHTML = '<div class="jp-LabShell"><div class="host"></div></div>';
    view("sliders");
    const css = document.getElementById("ffn-widgets-style")!.textContent!;
    expect(css).toMatch(/\.fw-in-dock \.fw-dock-button \{ display: none; \}/);
  });
});
