// The JupyterLab extension's pure helpers (labextension/src/text.ts): the Python each command runs, the kernel
// check's answer, the subject guess and the layer:neuron parser. Kept here so that `npm test` covers them
// without a JupyterLab test setup.
import { describe, expect, it } from "vitest";
import {
  cardCode, cleanSelection, dockedExplorerCode, explorerCode, guessSubject, neuronRangeError, notReadyReason, parseCheck,
  parseNeuron, pyString, traceCode,
} from "../../labextension/src/text";

describe("python code", () => {
  it("escapes any selected text into a valid Python string literal", () => {
    const nasty = 'He said "hi" \\ then\nleft\t<b>é</b> \u2028 ✓';
    expect(pyString(nasty)).toBe(JSON.stringify(nasty));
    expect(explorerCode(nasty)).toBe(`import ffn_widgets as fw\nfw.Explorer(fw.current_model(), ${JSON.stringify(nasty)})`);
    expect(dockedExplorerCode("a")).toBe('import ffn_widgets as fw\nfw.dock(fw.Explorer(fw.current_model(), "a"))');
    expect(traceCode("The iPod was made by", "The iPod")).toContain('fw.CausalTrace(fw.current_model(), "The iPod was made by", "The iPod")');
    expect(cardCode(12, 345)).toBe("import ffn_widgets as fw\nfw.NeuronCard(fw.current_model(), 12, 345)");
    expect(cardCode(1, 2, "x")).toContain('fw.NeuronCard(fw.current_model(), 1, 2, prompt="x")');
  });

  it("trims a selection and drops the quotes of a whole string literal", () => {
    expect(cleanSelection("  The Eiffel Tower is in\n")).toBe("The Eiffel Tower is in");
    expect(cleanSelection('"The Eiffel Tower is in"')).toBe("The Eiffel Tower is in");
    expect(cleanSelection("'a'")).toBe("a");
    expect(cleanSelection('"a" and "b"')).toBe('"a" and "b"'); // two literals: left alone
    expect(cleanSelection('""')).toBe('""');
  });
});

describe("kernel check", () => {
  it("decodes the repr of the JSON answer, quotes and backslashes included", () => {
    const state = { imported: true, models: [{ name: "it's \\ odd", n_layers: 30, d_mlp: 1536 }] };
    const json = JSON.stringify(state);
    const repr = `'${json.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`; // Python's repr of that str
    expect(parseCheck(repr)).toEqual(state);
    expect(parseCheck(`'{"imported": false, "models": []}'`)).toEqual({ imported: false, models: [] });
    expect(() => parseCheck("NameError")).toThrow(/unexpected answer/);
  });

  it("says what is missing", () => {
    expect(notReadyReason({ imported: false, models: [] })).toMatch(/not imported/);
    expect(notReadyReason({ imported: true, models: [] })).toMatch(/No model/);
    expect(notReadyReason({ imported: true, models: [{ name: "m", n_layers: 2, d_mlp: 8 }] })).toBeNull();
  });
});

describe("subject guess", () => {
  it.each([
    ["The Eiffel Tower is located in the city of", "The Eiffel Tower"],
    ["The iPod was developed by", "The iPod"],
    ["Danielle Darrieux's mother tongue is", "Danielle Darrieux"],
    ["In the heart of France, the Eiffel Tower stands tall in the city of", "Eiffel Tower"],
    ["Paris is the capital of", "Paris"],
    ["The Statue of Liberty is in", "The Statue of Liberty"],
    ["\"Toko Yasuda\" plays the", "Toko Yasuda"],
    ["in the middle of nowhere", "in"],
    ["", ""],
  ])("%s -> %s", (prompt, subject) => {
    const guess = guessSubject(prompt);
    expect(guess).toBe(subject);
    expect(prompt.includes(guess)).toBe(true);
  });
});

describe("neuron address", () => {
  it.each([
    ["12:345", [12, 345]], ["L12.N345", [12, 345]], ["l12 n345", [12, 345]], [" 3 , 7 ", [3, 7]],
    ["layer 12 neuron 345", [12, 345]], ["L12N345", [12, 345]], ["0:0", [0, 0]],
  ])("%s", (text, [layer, neuron]) => {
    expect(parseNeuron(text)).toEqual({ layer, neuron });
  });

  it.each(["", "12", "12:", "a:b", "12:-3", "12:3.5", "L12.N345.6"])("rejects %j", (text) => {
    expect(parseNeuron(text)).toBeNull();
  });

  it("checks the range against the model", () => {
    const m = { name: "tiny", n_layers: 2, d_mlp: 128 };
    expect(neuronRangeError(1, 127, m)).toBeNull();
    expect(neuronRangeError(2, 0, m)).toMatch(/layers 0–1/);
    expect(neuronRangeError(0, 128, m)).toMatch(/neurons 0–127/);
  });
});
