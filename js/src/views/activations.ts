// ActivationHeatmap: the prompt views with the activation heatmap and its neuron list, no lens.
import type { RenderProps } from "../core";
import { renderPrompt } from "./prompt";

export function render({ model, el }: RenderProps) {
  return renderPrompt(model, el, { heatmap: true, lens: false });
}
