// What the prompt views (prompt.ts) receive, decoded: the `data` trait (tokens, per-layer grids, top
// neurons per cell, logit lens) and the `values` trait (top tokens of value vectors), with the token texts
// the kernel sends along as a vocabulary {ids, text}.
import { decodeFloat, decodeInt, Packed } from "../core";
import type { Prediction, TokenText } from "../components";

export interface Decoded {
  prompt: string;
  tokens: string[];
  L: number;
  T: number;
  k: number;
  target: TokenText;
  predictions: Prediction[];
  pending: string[]; // parts the kernel is still computing: "top", "lens"
  maxAct?: Float32Array; // [L, T]
  contrib?: Float32Array; // [L, T]
  top?: Record<string, { ids: Int32Array; act: Float32Array; contrib: Float32Array }>; // by -> [L, T, k]
  lens?: Record<string, { prob: Float32Array; rank: Int32Array; top: Int32Array; topProb: Float32Array }>; // stage -> [L, T]
}

/** Token id -> text, filled from every payload's `vocab`. */
export class Vocab {
  private text = new Map<number, string>();

  add(v: { ids: Packed; text: string[] } | undefined): void {
    if (!v) return;
    const ids = decodeInt(v.ids).data;
    ids.forEach((id, i) => this.text.set(id, v.text[i]));
  }

  token(id: number): string {
    return this.text.get(id) ?? `#${id}`;
  }
}

export function decodeData(raw: any, vocab: Vocab): Decoded | null {
  if (!raw || !raw.tokens) return null;
  vocab.add(raw.vocab);
  const out: Decoded = {
    prompt: String(raw.prompt ?? ""), tokens: raw.tokens, L: raw.n_layers, T: raw.tokens.length, k: 0,
    target: raw.target, predictions: raw.predictions ?? [], pending: Array.isArray(raw.pending) ? raw.pending.map(String) : [],
  };
  if (raw.grids) {
    out.maxAct = decodeFloat(raw.grids.max_act).data;
    out.contrib = decodeFloat(raw.grids.contrib).data;
  }
  if (raw.top) {
    out.top = {};
    for (const [by, t] of Object.entries<any>(raw.top)) {
      const ids = decodeInt(t.ids);
      out.k = ids.shape[2];
      out.top[by] = { ids: ids.data, act: decodeFloat(t.act).data, contrib: decodeFloat(t.contrib).data };
    }
  }
  if (raw.lens) {
    out.lens = {};
    for (const [stage, g] of Object.entries<any>(raw.lens)) {
      out.lens[stage] = { prob: decodeFloat(g.prob).data, rank: decodeInt(g.rank).data, top: decodeInt(g.top).data, topProb: decodeFloat(g.top_prob).data };
    }
  }
  return out;
}

/** The value vectors' top tokens read so far: `rows` maps layer * d_mlp + neuron to a row of `top` [n, k]. */
export interface ValueTops {
  rows: Map<number, number>;
  top: Int32Array | null;
  k: number;
}

export function decodeValues(raw: any, vocab: Vocab, dMlp: () => number): ValueTops {
  const out: ValueTops = { rows: new Map(), top: null, k: 0 };
  if (!raw || !raw.neurons) return out;
  vocab.add(raw.vocab);
  const pairs = decodeInt(raw.neurons);
  const top = decodeInt(raw.top);
  out.top = top.data;
  out.k = top.shape[1];
  const dm = dMlp();
  for (let i = 0; i < pairs.shape[0]; i++) out.rows.set(pairs.data[2 * i] * dm + pairs.data[2 * i + 1], i);
  return out;
}

/** True when every neuron some table lists has its value-vector tokens (no row would show "…"). */
export function valuesComplete(d: Decoded, values: ValueTops, dMlp: number): boolean {
  if (!d.top || !values.top) return false;
  const perLayer = d.T * d.k;
  for (const t of Object.values(d.top)) {
    for (let i = 0; i < t.ids.length; i++) if (!values.rows.has(Math.floor(i / perLayer) * dMlp + t.ids[i])) return false;
  }
  return true;
}

export function sameTokens(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
