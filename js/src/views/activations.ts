import type { RenderProps } from "../types";
import { renderPrompt } from "./prompt";

export function render({ model, el }: RenderProps) {
  return renderPrompt(model, el, { heatmap: true, lens: false });
}
