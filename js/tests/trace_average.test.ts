// The averaged-trace view with a fake model: cells fill in as facts arrive, the status line counts facts and
// workers, hover reads the arrays, skipped prompts stay text, Cancel and Run again send their gestures.
import { beforeEach, describe, expect, it } from "vitest";
import { render } from "../src/host";
import { statusLine } from "../src/views/trace_average";
import { Call, FakeModel, installRecordingCanvas, packed } from "./fakes";

const L = 4;
const GROUPS = ["first subject token", "middle subject tokens", "last subject token", "first subsequent token", "further tokens", "last token"];

function grid(nFacts: number, status = "running", extra: Record<string, unknown> = {}) {
  const values = (base: number) => Array.from({ length: GROUPS.length * L }, (_, i) => (nFacts && Math.floor(i / L) !== 1 ? base + 0.01 * i : NaN));
  const a = nFacts > 0;
  return {
    groups: GROUPS, kinds: ["mlp", "attn"], n_layers: L, total: 5, done: nFacts + 1, skipped_count: 1, samples: 3,
    window: 10, status, workers: 0, n_facts: nFacts, counts: a ? [nFacts, 0, nFacts, nFacts, nFacts, nFacts] : [],
    p_clean: a ? 0.6 : null, p_corrupted: a ? 0.1 : null,
    indirect: a ? { mlp: packed("float32", [6, L], values(0.1)), attn: packed("float32", [6, L], values(-0.05)) } : {},
    scores: a ? { mlp: packed("float32", [6, L], values(0.2)), attn: packed("float32", [6, L], values(0.05)) } : {},
    peaks: a ? { mlp: [3, "last token", 0.33], attn: [3, "last token", 0.18] } : {},
    skipped: [["The <b>capital</b> of X is", "the model does not predict ' Y'"]],
    ...extra,
  };
}

const mount = (g: object) => {
  const model = new FakeModel({ view: "trace_average", grid: g });
  const el = document.createElement("div");
  document.body.appendChild(el);
  render({ model, el });
  return { model, el };
};

describe("averaged trace view", () => {
  let calls: Call[];
  beforeEach(() => {
    document.body.innerHTML = "";
    calls = installRecordingCanvas();
  });

  it("fills its maps in as facts arrive and counts them", () => {
    const { model, el } = mount(grid(0));
    const maps = [...el.querySelectorAll(".fw-avg-map")].map((m) => m.getAttribute("data-kind"));
    expect(maps).toEqual(["mlp", "attn"]);
    const mlp = el.querySelector('.fw-avg-map[data-kind="mlp"] canvas') as HTMLCanvasElement;
    const fills = () => calls.filter((c) => (c as any).canvas === mlp && c.op === "fillRect").length;
    expect(fills()).toBe(0); // nothing traced yet: empty cells
    const content = el.querySelector(".fw-content") as HTMLElement;
    expect(content.dataset.nFacts).toBe("0");
    model.set("grid", grid(2));
    expect(fills()).toBe(GROUPS.length * L - L); // the middle group has no facts: left empty
    expect(content.dataset.nFacts).toBe("2");
    expect(el.textContent).toContain("tracing… 3 of 5 facts (1 not known)");
    expect(el.textContent).toContain("mlp peak: layer 3, last token (0.330)");
    expect(el.textContent).toContain("total effect = 0.500");
  });

  it("hover reads the cell from the arrays; skipped prompts are text", () => {
    const { el } = mount(grid(2, "done"));
    const mlp = el.querySelector('.fw-avg-map[data-kind="mlp"] canvas') as HTMLCanvasElement;
    const g = JSON.parse(mlp.dataset.geometry!);
    const [layer, group] = [1, 2];
    mlp.dispatchEvent(new MouseEvent("mousemove", { clientX: g.x0 + (layer + 0.5) * g.cw, clientY: g.y0 + (group + 0.5) * g.ch }));
    return new Promise<void>((resolve) => requestAnimationFrame(() => {
      const tip = el.querySelector(".fw-tooltip")!.textContent!;
      const i = group * L + layer;
      expect(tip).toContain("mlp · layer 1 · last subject token");
      expect(tip).toContain(`average indirect effect = ${(0.1 + 0.01 * i).toFixed(3)}`);
      expect(tip).toContain("over 2 of 2 facts");
      expect(el.querySelector("b")).toBeNull();
      expect(el.querySelector(".fw-avg-skipped li")!.textContent).toContain("The <b>capital</b> of X is");
      expect(el.textContent).toContain("done: 2 facts averaged, 1 skipped");
      resolve();
    }));
  });

  it("Cancel while running, Run again after", () => {
    const { model, el } = mount(grid(1));
    const button = (text: string) => [...el.querySelectorAll("button")].find((b) => b.textContent === text)!;
    expect(button("Run again").style.display).toBe("none");
    button("Cancel").click();
    expect(model.sent).toEqual([{ type: "cancel" }]);
    model.set("grid", grid(1, "cancelled"));
    expect(button("Cancel").style.display).toBe("none");
    button("Run again").click();
    expect(model.sent.at(-1)).toEqual({ type: "start" });
    expect(el.textContent).toContain("cancelled after 2 of 5 facts");
  });

  it("says where it runs", () => {
    expect(statusLine(grid(1, "running", { workers: 2 }) as any)).toBe("tracing on 2 workers… 2 of 5 facts (1 not known)");
  });
});
