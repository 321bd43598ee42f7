// The extension's pure parts: the Python code each command runs, the kernel check's expression and its answer,
// a guess of the subject in a prompt, and the "layer:neuron" parser. No JupyterLab imports, so that js/'s
// unit tests can cover them (js/tests/labextension.test.ts).

/** A Python string literal for any text: JSON's escapes are all valid Python escapes. */
export function pyString(text: string): string {
  return JSON.stringify(text);
}

/** The prompt a selection stands for: trimmed, and without the quotes of a string literal selected whole. */
export function cleanSelection(text: string): string {
  let s = text.trim();
  const m = /^(["'])([\s\S]*)\1$/.exec(s);
  if (m && m[2].trim() && !m[2].includes(m[1])) s = m[2];
  return s;
}

const IMPORT = "import ffn_widgets as fw";

export function explorerCode(prompt: string): string {
  return `${IMPORT}\nfw.Explorer(fw.current_model(), ${pyString(prompt)})`;
}

/** Run silently, without a cell: the explorer goes straight into the side panel. */
export function dockedExplorerCode(prompt: string): string {
  return `${IMPORT}\nfw.dock(fw.Explorer(fw.current_model(), ${pyString(prompt)}))`;
}

export function traceCode(prompt: string, subject: string): string {
  return `${IMPORT}\nfw.CausalTrace(fw.current_model(), ${pyString(prompt)}, ${pyString(subject)})`;
}

export function cardCode(layer: number, neuron: number, prompt?: string): string {
  const p = prompt ? `, prompt=${pyString(prompt)}` : "";
  return `${IMPORT}\nfw.NeuronCard(fw.current_model(), ${layer}, ${neuron}${p})`;
}

/** What the user has to run first when the kernel is not ready. */
export const SETUP_CODE = `${IMPORT}\nlm = fw.load_model()`;

/** One Python expression, evaluated silently as a user expression: has the kernel imported ffn_widgets, and
 * which models are loaded (newest last)? It never imports the package itself. */
export const CHECK_EXPRESSION =
  "(lambda s: __import__('json').dumps({'imported': 'ffn_widgets' in s, 'models': [{'name': m.name, " +
  "'n_layers': m.n_layers, 'd_mlp': m.d_mlp} for m in (s['ffn_widgets.model.lm'].live_models() " +
  "if 'ffn_widgets.model.lm' in s else [])]}))(__import__('sys').modules)";

export type ModelInfo = { name: string; n_layers: number; d_mlp: number };
export type KernelState = { imported: boolean; models: ModelInfo[] };

/** Decode the check's answer: the text/plain repr of a JSON string (ASCII only, so the repr's only escapes
 * are a backslash before a backslash or a quote). */
export function parseCheck(repr: string): KernelState {
  const quoted = /^(['"])([\s\S]*)\1$/.exec(repr.trim());
  if (!quoted) throw new Error(`unexpected answer from the kernel: ${repr.slice(0, 200)}`);
  const state = JSON.parse(quoted[2].replace(/\\(.)/g, "$1"));
  return { imported: !!state.imported, models: Array.isArray(state.models) ? state.models : [] };
}

/** Why the kernel cannot run a command yet, or null when it can. */
export function notReadyReason(state: KernelState): string | null {
  if (!state.imported) return "ffn_widgets is not imported in this notebook's kernel.";
  if (!state.models.length) return "No model is loaded in this notebook's kernel.";
  return null;
}

const CONNECTORS = new Set(["of", "de", "du", "la", "le", "von", "van", "der", "del", "da", "and", "&", "the"]);
const OPENERS = new Set(["in", "on", "at", "a", "an", "this", "that", "it", "when", "after", "before", "during",
  "for", "from", "if", "as", "while", "my", "his", "her", "our", "their", "its", "there", "what", "who", "where"]);

/** A plausible subject in a prompt, for the causal trace's dialog: the longest run of capitalised words
 * (with "of", "de", ... inside), a possessive dropped; a lone sentence-opening word ("In", "When") only if
 * nothing else is there. "The Eiffel Tower is located in" -> "The Eiffel Tower". */
export function guessSubject(prompt: string): string {
  const words = [...prompt.matchAll(/\S+/g)].map((m) => ({ text: m[0], start: m.index ?? 0 }));
  const core = (w: string) => w.replace(/^[("'“‘]+/, "").replace(/('s|’s)?[.,;:!?)"'”’]*$/, "");
  const named = (w: string) => /^[A-Z0-9]/.test(core(w)) || /^[a-z]+[A-Z]/.test(core(w));
  const runs: { from: number; to: number }[] = [];
  for (let i = 0; i < words.length; i++) {
    if (!named(words[i].text)) continue;
    let j = i;
    while (j + 1 < words.length && !/[,;:.!?)]$/.test(words[j].text)) {
      if (named(words[j + 1].text)) j++;
      else if (j + 2 < words.length && CONNECTORS.has(words[j + 1].text) && named(words[j + 2].text)) j += 2;
      else break;
    }
    runs.push({ from: i, to: j });
    i = j;
  }
  const weak = (r: { from: number; to: number }) => r.from === 0 && r.to === 0 && OPENERS.has(core(words[0].text).toLowerCase());
  const strong = runs.filter((r) => !weak(r));
  const pick = (strong.length ? strong : runs).reduce<{ from: number; to: number } | null>(
    (best, r) => (!best || r.to - r.from > best.to - best.from ? r : best), null);
  if (!pick) return words.length ? core(words[0].text) || words[0].text : "";
  const last = words[pick.to];
  const end = last.start + leading(last.text) + core(last.text).length;
  return prompt.slice(words[pick.from].start + leading(words[pick.from].text), end);
}

function leading(word: string): number {
  return word.length - word.replace(/^[("'“‘]+/, "").length;
}

/** "12:345", "L12.N345", "l12 n345", "layer 12 neuron 345" -> {layer: 12, neuron: 345}; anything else -> null. */
export function parseNeuron(text: string): { layer: number; neuron: number } | null {
  const m = /^\s*(?:l(?:ayer)?\s*)?(\d+)\s*(?:[:.,/]|\s|(?=n))\s*(?:n(?:euron)?\s*)?(\d+)\s*$/i.exec(text);
  return m ? { layer: Number(m[1]), neuron: Number(m[2]) } : null;
}

/** The range error of a neuron address for a model, or null when it exists. */
export function neuronRangeError(layer: number, neuron: number, model: ModelInfo): string | null {
  if (layer >= model.n_layers) return `${model.name} has layers 0–${model.n_layers - 1}; there is no layer ${layer}.`;
  if (neuron >= model.d_mlp) return `${model.name} has neurons 0–${model.d_mlp - 1} in each layer; there is no neuron ${neuron}.`;
  return null;
}
