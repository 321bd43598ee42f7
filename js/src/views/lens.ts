// LogitLens: the prompt views with the logit lens only.
import type { RenderProps } from "../core";
import { renderPrompt } from "./prompt";

export function render({ model, el }: RenderProps) {
  return renderPrompt(model, el, { heatmap: false, lens: true });
}
