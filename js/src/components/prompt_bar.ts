// The prompt box and the target selector above the prompt views. Typing is debounced (700 ms, or Enter /
// Run at once); the target is the top prediction, one of the predictions listed, or any other text.
import { formatNumber, h, setText, showToken } from "../core";

export interface TokenText {
  id: number;
  text: string;
}

export interface Prediction extends TokenText {
  prob: number;
}

export interface PromptBarOptions {
  /** The prompt the kernel has: submitting the same text again sends nothing. */
  current: () => unknown;
  onPrompt: (prompt: string) => void;
  /** "" asks for the top prediction. */
  onTarget: (target: string) => void;
}

export function promptBar({ current, onPrompt, onTarget }: PromptBarOptions) {
  const input = h("input", { attrs: { type: "text", "aria-label": "prompt", spellcheck: "false" } }) as HTMLInputElement;
  let typing: ReturnType<typeof setTimeout> | null = null;
  const submit = () => {
    if (typing) clearTimeout(typing);
    typing = null;
    if (input.value !== current()) onPrompt(input.value);
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") submit();
  });
  input.addEventListener("input", () => {
    if (typing) clearTimeout(typing);
    typing = setTimeout(submit, 700);
  });
  const targetSelect = h("select", { attrs: { "aria-label": "target token" } });
  const targetOther = h("input", { attrs: { type: "text", placeholder: "other target, e.g. ␣Paris → \" Paris\"", "aria-label": "custom target" }, style: { display: "none", width: "12em" } }) as HTMLInputElement;
  targetSelect.addEventListener("change", () => {
    if (targetSelect.value === "__other__") {
      targetOther.style.display = "";
      targetOther.focus();
      return;
    }
    targetOther.style.display = "none";
    onTarget(targetSelect.value === "__auto__" ? "" : targetSelect.value);
  });
  targetOther.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && targetOther.value) onTarget(targetOther.value);
  });
  const note = h("span", { class: "fw-muted fw-target-note" });
  const header = h("div", { class: "fw-prompt" }, [
    h("span", { class: "fw-muted", text: "Prompt" }), input,
    h("button", { class: "fw-button", text: "Run", attrs: { type: "button" }, on: { click: submit } }),
  ]);
  const targetBar = h("div", { class: "fw-toolbar" }, [
    h("label", {}, ["Target", targetSelect, targetOther]),
    note,
  ]);

  return {
    header,
    targetBar,
    /** Show the kernel's prompt (unless the user is typing) and its target; `auto`: no target was chosen. */
    update(prompt: string, target: TokenText, predictions: Prediction[], auto: boolean) {
      if (document.activeElement !== input && input.value !== prompt) input.value = prompt;
      const opts: HTMLOptionElement[] = [];
      const top = predictions[0];
      opts.push(h("option", { text: `top prediction (${top ? showToken(top.text) : "?"})`, attrs: { value: "__auto__" } }));
      for (const p of predictions) opts.push(h("option", { text: `${showToken(p.text)}  ${(100 * p.prob).toFixed(1)}%`, attrs: { value: p.text } }));
      if (!auto && !predictions.some((p) => p.text === target.text)) {
        opts.push(h("option", { text: showToken(target.text), attrs: { value: target.text } }));
      }
      opts.push(h("option", { text: "other…", attrs: { value: "__other__" } }));
      targetSelect.replaceChildren(...opts);
      targetSelect.value = auto ? "__auto__" : target.text;
      const p = predictions.find((x) => x.id === target.id);
      setText(note, `contributions and the lens score ${showToken(target.text)}` + (p ? ` (p = ${formatNumber(p.prob)} after the prompt)` : ""));
    },
    destroy() {
      if (typing) clearTimeout(typing);
    },
  };
}
