// The editor's after-the-edit parts: before → after rows (the prompt, its paraphrases, neighbouring facts),
// the greedy continuations, and the model's edit log with Undo per entry. Model and corpus text goes in as text.
import { h, setText, showToken } from "../core";

export interface Side {
  p_true: number | null;
  p_new: number | null;
  top: [string, number | null][];
}

export interface ReportRow {
  kind: "prompt" | "paraphrase" | "neighbour";
  prompt: string;
  true: string;
  new: string;
  before: Side;
  after: Side;
}

export interface Comparison {
  rows: ReportRow[];
  continuations: { before: string; after: string };
  layer: number;
  subject: string;
  target: string;
  method: string;
  delta_norm: number | null;
  applied: boolean;
  batch?: boolean; // many facts in one Apply: the fields below
  layers?: number[];
  facts?: number;
  skipped?: string[];
  efficacy?: number | null;
  paraphrase?: number | null;
}

export interface BatchFact {
  prompt: string;
  subject: string;
  target: string;
}

/** The facts a batch Apply will write, as a compact table (text only). */
export function factList() {
  const body = h("tbody");
  const el = h("div", { class: "fw-ed-scroll fw-ed-facts" }, [h("table", { class: "fw-table" }, [
    h("thead", {}, [h("tr", {}, ["prompt", "subject", "new object"].map((t) => h("th", { text: t })))]), body])]);
  return {
    el,
    update(facts: BatchFact[]) {
      body.replaceChildren(...facts.map((f) => h("tr", {}, [h("td", { text: f.prompt }), h("td", { text: f.subject }),
        h("td", { class: "fw-token", text: showToken(f.target) })])));
    },
  };
}

export interface LogRow {
  key: string;
  index: number;
  method: string;
  facts: { subject?: string; target?: string; prompt?: string }[];
  layers: number[];
  norm: number | null;
  time: string;
  mine: boolean;
}

/** A probability as a percentage: one decimal from 10%, two significant digits below, "<0.01%" under 1e-4. */
export const pct = (p: number | null | undefined) =>
  p === null || p === undefined || !Number.isFinite(p) ? "–" : p >= 0.1 ? `${(100 * p).toFixed(1)}%`
    : p >= 1e-4 ? `${(100 * p).toPrecision(2)}%` : "<0.01%";

/** What a row shows as its outcome: prompts and paraphrases should now prefer the new object, neighbours
 * should keep their own. */
export function verdict(r: ReportRow): { text: string; good: boolean } {
  const t = r.after.p_true ?? 0;
  const n = r.after.p_new ?? 0;
  if (r.kind === "neighbour") return t >= n ? { text: "kept", good: true } : { text: "pulled to new", good: false };
  return n > t ? { text: "new wins", good: true } : { text: "true still wins", good: false };
}

function change(before: number | null, after: number | null, cls: string) {
  const bar = (p: number | null, when: string) =>
    h("span", { class: `fw-ed-bar fw-ed-${when}`, style: { width: `${Math.round(48 * Math.min(1, Math.max(0, p ?? 0)))}px` } });
  return h("td", { class: `fw-num ${cls}` }, [
    h("span", { class: "fw-ed-bars" }, [bar(before, "before"), bar(after, "after")]),
    `${pct(before)} → ${pct(after)}`,
  ]);
}

function top(side: Side) {
  const [tok, p] = side.top[0] ?? ["", null];
  return h("span", { class: "fw-token", text: showToken(tok), title: side.top.map(([t, q]) => `${showToken(t)} ${pct(q)}`).join("\n") },
    [h("small", { class: "fw-muted", text: ` ${pct(p)}` })]);
}

export function comparisonTable() {
  const body = h("tbody");
  const newHead = h("th", { text: "p(new)", title: "the new object, before → after the edit" });
  const el = h("table", { class: "fw-table fw-ed-table" }, [
    h("thead", {}, [h("tr", {}, [h("th", { text: "prompt → true object" }),
      h("th", { text: "p(true)", title: "the true object (a neighbour: its own), before → after the edit" }), newHead,
      h("th", { text: "top token", title: "the most likely next token before → after (hover: the top 5)" }), h("th", { text: "" })])]),
    body,
  ]);
  return {
    el: h("div", { class: "fw-ed-scroll" }, [el]),
    update(rows: ReportRow[]) {
      const many = rows.some((r) => r.new !== rows[0].new); // a batch: each fact its own new object
      setText(newHead, rows.length && !many ? `p(${showToken(rows[0].new)})` : "p(new)");
      body.replaceChildren(...rows.map((r) => {
        const v = verdict(r);
        return h("tr", { class: "fw-ed-row", attrs: { "data-kind": r.kind } }, [
          h("td", { class: "fw-ed-prompt-cell" }, [h("span", { class: `fw-ed-kind fw-ed-kind-${r.kind}`, text: r.kind }), " ",
            r.prompt, h("span", { class: "fw-muted", text: ` → ${showToken(r.true)}` }),
            ...(many ? [h("span", { class: "fw-ed-new-object", text: ` ⇒ ${showToken(r.new)}` })] : [])]),
          change(r.before.p_true, r.after.p_true, "fw-ed-true"),
          change(r.before.p_new, r.after.p_new, "fw-ed-new"),
          h("td", { class: "fw-ed-top" }, [top(r.before), " → ", top(r.after)]),
          h("td", {}, [h("span", { class: `fw-ed-verdict ${v.good ? "fw-good" : "fw-bad"}`, text: v.text })]),
        ]);
      }));
    },
  };
}

export function continuations() {
  const before = h("span", { class: "fw-ed-text fw-ed-before-text" });
  const after = h("span", { class: "fw-ed-text fw-ed-after-text" });
  const prompt = [h("span", { class: "fw-muted fw-ed-text" }), h("span", { class: "fw-muted fw-ed-text" })];
  const el = h("div", { class: "fw-ed-continuations" }, [
    h("span", { class: "fw-muted", text: "before" }), h("div", {}, [prompt[0], before]),
    h("span", { class: "fw-muted", text: "after" }), h("div", {}, [prompt[1], after]),
  ]);
  return {
    el,
    update(text: { before: string; after: string }, promptText: string) {
      for (const p of prompt) setText(p, promptText);
      setText(before, text.before);
      setText(after, text.after);
    },
  };
}

export function logTable(onUndo: (key: string) => void) {
  const body = h("tbody");
  const empty = h("div", { class: "fw-muted fw-ed-log-empty", text: "No edits: the weights are as loaded." });
  const table = h("table", { class: "fw-table fw-ed-log" }, [
    h("thead", {}, [h("tr", {}, ["#", "method", "fact", "layer", "‖ΔW‖", "time", ""].map((t) => h("th", { text: t })))]),
    body,
  ]);
  const el = h("div", { class: "fw-ed-scroll" }, [empty, table]); // seven columns: a narrow box scrolls them
  return {
    el,
    update(rows: LogRow[], busy: boolean) {
      empty.style.display = rows.length ? "none" : "";
      table.style.display = rows.length ? "" : "none";
      body.replaceChildren(...rows.map((r) => {
        const facts = r.facts.map((f) => `${f.subject ?? "?"} → ${showToken(f.target ?? "?")}`).join("; ");
        const undo = h("button", { class: "fw-button fw-ed-undo", text: "Undo", title: "Take this edit out, bit for bit (later edits stay)",
          attrs: { type: "button", "data-key": r.key }, on: { click: () => onUndo(r.key) } });
        undo.disabled = busy;
        return h("tr", { attrs: { "data-key": r.key }, class: r.mine ? "fw-ed-mine" : "" }, [
          h("td", { class: "fw-num", text: String(r.index + 1) }),
          h("td", { text: r.method }),
          h("td", { text: facts, title: r.facts.map((f) => f.prompt ?? "").join("\n") }, r.mine ? [h("span", { class: "fw-muted", text: " (here)" })] : []),
          h("td", { class: "fw-num", text: r.layers.join(", ") }),
          h("td", { class: "fw-num", text: r.norm === null ? "–" : r.norm.toFixed(2) }),
          h("td", { class: "fw-num", text: r.time }),
          h("td", {}, [undo]),
        ]);
      }));
    },
  };
}
