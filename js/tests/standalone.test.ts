import { beforeEach, describe, expect, it, vi } from "vitest";
import { childWidgets, send, sendLatest } from "../src/core";
import {
  decodeBuffer, KERNEL_NOTICE, mountExports, MODULE_TYPE, SavedState, StandaloneManager, STATE_TYPE, VIEW_TYPE, withBuffers,
} from "../src/standalone";
import { views } from "../src/views/index";
import { initialize, render } from "../src/host";

const b64 = (bytes: number[]) => btoa(String.fromCharCode(...bytes));

function saved(): SavedState {
  return {
    version_major: 2,
    version_minor: 0,
    state: {
      parent: { model_name: "AnyModel", model_module: "anywidget", state: { view: "_probe_parent", slot: ["IPY_MODEL_child"], n: 1 } },
      child: {
        model_name: "AnyModel", model_module: "anywidget", state: { view: "_probe_child", arr: { dtype: "uint8", shape: [3] } },
        buffers: [{ path: ["arr", "data"], data: b64([1, 2, 250]), encoding: "base64" }],
      },
      slider: { model_name: "IntSliderModel", model_module: "@jupyter-widgets/controls", state: { value: 3 } },
    },
  };
}

function page(state: SavedState, ids: string[]): HTMLElement {
  const root = document.createElement("div");
  const script = (type: string, value: unknown) => {
    const s = document.createElement("script");
    s.type = type;
    s.textContent = JSON.stringify(value);
    return s;
  };
  root.append(script(STATE_TYPE, state));
  for (const id of ids) {
    const v = document.createElement("div");
    v.setAttribute("data-ffn-view", "");
    v.append(script(VIEW_TYPE, { model_id: id }));
    root.append(v);
  }
  document.body.append(root);
  return root;
}

describe("saved state", () => {
  it("puts base64 buffers back as DataViews at their paths, leaving the saved copy alone", () => {
    const s = saved().state.child;
    const state = withBuffers(s);
    expect(state.arr.data).toBeInstanceOf(DataView);
    expect(Array.from(new Uint8Array(state.arr.data.buffer))).toEqual([1, 2, 250]);
    expect(state.arr.shape).toEqual([3]);
    expect((s.state.arr as any).data).toBeUndefined();
    expect(Array.from(new Uint8Array(decodeBuffer("01ff", "hex").buffer))).toEqual([1, 255]);
  });
});

describe("standalone host", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
    views["_probe_parent"] = ({ model, el }) => {
      const body = document.createElement("div");
      body.className = "probe-parent";
      el.append(body);
      const kids = childWidgets(model, body);
      void kids.draw(model.get("slot"));
      const button = document.createElement("button");
      button.className = "probe-kernel";
      button.addEventListener("click", () => send(model, "select_neuron", { layer: 1, neuron: 2 }));
      el.append(button);
      return () => kids.destroy();
    };
    views["_probe_child"] = ({ model, el }) => {
      const p = document.createElement("p");
      p.className = "probe-child";
      p.textContent = `bytes ${Array.from(new Uint8Array(model.get("arr").data.buffer)).join(",")}`;
      el.append(p);
    };
  });

  it("draws a saved view and the widgets it embeds, by IPY_MODEL reference", async () => {
    const root = page(saved(), ["parent"]);
    const output = document.createElement("div");
    output.className = "jp-RenderedHTMLCommon jp-OutputArea-output"; // where nbconvert puts text/html outputs
    output.append(root.querySelector("[data-ffn-view]")!);
    root.append(output);
    await mountExports(root, { initialize, render });
    expect(output.className).toBe("jp-OutputArea-output"); // its markdown table styles are not the views'
    await vi.waitFor(() => expect(root.querySelector(".probe-child")?.textContent).toBe("bytes 1,2,250"));
    expect(root.querySelectorAll(".fw-root").length).toBe(2); // the frame around each view
  });

  it("keeps changes in the page: set fires change events, save_changes sends nothing", async () => {
    const manager = new StandaloneManager({ main: { render } });
    manager.add(saved());
    const model = await manager.get_model("IPY_MODEL_parent");
    expect(await manager.get_model("parent")).toBe(model);
    const seen: unknown[] = [];
    const cb = (_m: unknown, v: unknown) => seen.push(v);
    model.on("change:n change:other", cb);
    model.set("n", 2);
    model.set("n", 2); // unchanged: no event
    model.save_changes();
    model.set("other", "x");
    model.off("change:n", cb);
    model.set("n", 3);
    expect(seen).toEqual([2, "x"]);
    expect(model.get("n")).toBe(3);
    expect(model.sent).toEqual([]);
  });

  it("answers acknowledgements at once, so coalesced gestures are not held back", async () => {
    const manager = new StandaloneManager({ main: { initialize, render } });
    manager.add(saved());
    const model = await manager.get_model("parent");
    initialize({ model });
    sendLatest(model, "set_prompt", { prompt: "a" });
    await new Promise((r) => setTimeout(r, 5));
    sendLatest(model, "set_prompt", { prompt: "b" });
    expect(model.sent.map((m: any) => m.prompt)).toEqual(["a", "b"]);
  });

  it("shows a 'needs a running kernel' notice in the view for a gesture meant for the kernel", async () => {
    const root = page(saved(), ["parent"]);
    await mountExports(root, { initialize, render });
    const notice = root.querySelector<HTMLElement>("[data-ffn-view] > .fw-standalone > .fw-kernel-notice")!; // the parent view's
    expect(notice.hidden).toBe(true);
    root.querySelector<HTMLButtonElement>(".probe-kernel")!.click();
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toContain(KERNEL_NOTICE);
    expect(notice.textContent).toContain("select neuron");
  });

  it("says so in the view when a model is missing or cannot be drawn without its kernel", async () => {
    const root = page(saved(), ["nope", "slider"]);
    await mountExports(root, { initialize, render });
    const [missing, slider] = [...root.querySelectorAll("[data-ffn-view]")];
    expect(missing.textContent).toContain("not part of this export");
    expect(slider.textContent).toContain(KERNEL_NOTICE);
  });

  it("loads a model's own module text when it names one, once per module", async () => {
    const state = saved();
    state.modules = { child: "m1" };
    const load = vi.fn(async (text: string) => ({
      default: { render: ({ el }: { el: HTMLElement }) => el.append(Object.assign(document.createElement("i"), { textContent: text })) },
    }));
    const root = page(state, ["child", "child"]);
    const texts: Record<string, string> = { m1: "other module" };
    const el = document.createElement("script");
    el.type = MODULE_TYPE;
    root.append(el);
    await mountExports(root, { initialize, render }, texts, load);
    expect([...root.querySelectorAll("i")].map((i) => i.textContent)).toEqual(["other module", "other module"]);
    expect(load).toHaveBeenCalledTimes(1);
  });
});
